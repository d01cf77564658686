"""Slowing down password guessing: token buckets per client IP and per account, and a
lockout after repeated failures.

Buckets are herald_common.ratelimit's (Redis, Redis's clock). The per-account bucket and the
lockout are keyed by a digest of the email whether or not an account exists, so a throttled
or locked answer says nothing about which emails are registered.
"""

from __future__ import annotations

import hashlib
import math

from redis.asyncio import Redis

from herald_common.ratelimit import KEY_PREFIX, TokenBucket, acquire
from herald_common.settings import Settings

_FAILURES = "herald:auth:failures:"
_LOCKED = "herald:auth:locked:"


class Throttled(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.1f} s")
        self.retry_after = max(1, math.ceil(retry_after))


def account_digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


async def check_login(
    redis: Redis, settings: Settings, ip: str, email: str, *, lockout: bool = True
) -> None:
    """Raise Throttled when this IP or this account has tried too often, or (with
    ``lockout``) is locked out. Asking for a password reset shares the buckets but not the
    lock: resetting is how the owner of a locked account gets back in."""
    account = account_digest(email)
    locked_ms = await redis.pttl(_LOCKED + account) if lockout else 0
    if locked_ms > 0:
        raise Throttled(locked_ms / 1000)
    wait = await acquire(
        redis,
        [
            TokenBucket(
                f"{KEY_PREFIX}login:ip:{ip}", settings.login_per_ip, settings.login_per_ip_seconds
            ),
            TokenBucket(
                f"{KEY_PREFIX}login:acct:{account}",
                settings.login_per_account,
                settings.login_per_account_seconds,
            ),
        ],
    )
    if wait > 0:
        raise Throttled(wait)


async def check_signup(redis: Redis, settings: Settings, ip: str) -> None:
    bucket = TokenBucket(
        f"{KEY_PREFIX}signup:ip:{ip}", settings.signup_per_ip, settings.signup_per_ip_seconds
    )
    wait = await acquire(redis, [bucket])
    if wait > 0:
        raise Throttled(wait)


async def record_failure(redis: Redis, settings: Settings, email: str) -> bool:
    """Count a failed login; True when this failure locks the account (tell its owner once)."""
    account = account_digest(email)
    window_ms = round(settings.lockout_seconds * 1000)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(_FAILURES + account)
        pipe.pexpire(_FAILURES + account, window_ms)
        failures, _ = await pipe.execute()
    if int(failures) < settings.lockout_threshold:
        return False
    # NX: of concurrent failures crossing the threshold, one locks and notifies.
    locked = await redis.set(_LOCKED + account, b"1", px=window_ms, nx=True)
    await redis.delete(_FAILURES + account)
    return bool(locked)


async def record_success(redis: Redis, email: str) -> None:
    await redis.delete(_FAILURES + account_digest(email))


async def unlock(redis: Redis, email: str) -> None:
    account = account_digest(email)
    await redis.delete(_FAILURES + account, _LOCKED + account)
