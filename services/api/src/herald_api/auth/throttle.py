"""Slowing down password guessing without letting anyone lock the owner out.

- Token buckets (herald_common.ratelimit: Redis, Redis's clock) per client source, and per
  source and account.
- A lockout per source and account: ``lockout_threshold`` failed logins in a row from one
  source for one email lock that source out of that account for ``lockout_seconds``. The
  owner signing in from anywhere else is not affected.
- A global ceiling per account: ``lockout_ceiling`` failures from all sources within
  ``lockout_seconds`` (guessing spread over many addresses) lock the account for every source
  that has not signed in to it successfully within ``login_known_source_seconds``; the owner
  still gets in from where they signed in before, or by resetting the password.

A source is the client's IP address (an IPv6 client's /64, which one host or customer
typically holds whole), as the API sees it: X-Forwarded-For counts only from
``HERALD_TRUSTED_PROXIES``. Accounts are keyed by a digest of the email whether or not an
account exists, so a throttled or locked answer says nothing about which emails are
registered.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import math

from redis.asyncio import Redis

from herald_common import clock
from herald_common.ratelimit import KEY_PREFIX, TokenBucket, acquire
from herald_common.settings import Settings

_FAILURES = "herald:auth:failures:"  # + account:source, failures in a row
_LOCKED = "herald:auth:locked:"  # + account:source
_LOCKED_SOURCES = "herald:auth:locked-sources:"  # + account: which pairs to lift on a reset
_ACCOUNT_FAILURES = "herald:auth:account-failures:"  # + account, from every source
_ACCOUNT_LOCKED = "herald:auth:account-locked:"  # + account, the ceiling was reached
_KNOWN = "herald:auth:known:"  # + account: sources that signed in, scored by when
_NOTIFIED = "herald:auth:notified:"  # + lockout:account: the owner was told, this window
# An IPv6 client gets a /64 (RFC 6177), so counting its single addresses apart would give it
# 2^64 sources.
IPV6_SOURCE_PREFIX = 64


class Throttled(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.1f} s")
        self.retry_after = max(1, math.ceil(retry_after))


def account_digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def source_of(ip: str) -> str:
    """The source a client address counts as: an IPv4 address, or an IPv6 /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # "unknown" (no peer address): one source
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 client
            return str(address.ipv4_mapped)
        return ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False).compressed
    return str(address)


def _pair(account: str, source: str) -> str:
    return f"{account}:{hashlib.sha256(source.encode()).hexdigest()[:16]}"


async def check_login(
    redis: Redis, settings: Settings, ip: str, email: str, *, lockout: bool = True
) -> None:
    """Raise Throttled when this source has tried too often, for any account or for this one,
    or (with ``lockout``) is locked out of this account. Asking for a password reset shares
    the buckets but not the locks: resetting is how the owner of a locked account gets in."""
    source, account = source_of(ip), account_digest(email)
    pair = _pair(account, source)
    if lockout:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.pttl(_LOCKED + pair)
            pipe.pttl(_ACCOUNT_LOCKED + account)
            pipe.zscore(_KNOWN + account, source)
            source_locked_ms, account_locked_ms, known_at = await pipe.execute()
        if source_locked_ms > 0:
            raise Throttled(source_locked_ms / 1000)
        if account_locked_ms > 0 and not _recent(settings, known_at):
            raise Throttled(account_locked_ms / 1000)
    wait = await acquire(
        redis,
        [
            TokenBucket(
                f"{KEY_PREFIX}login:ip:{source}",
                settings.login_per_ip,
                settings.login_per_ip_seconds,
            ),
            TokenBucket(
                f"{KEY_PREFIX}login:acct:{pair}",
                settings.login_per_account,
                settings.login_per_account_seconds,
            ),
        ],
    )
    if wait > 0:
        raise Throttled(wait)


def _recent(settings: Settings, signed_in_at: float | None) -> bool:
    if signed_in_at is None:
        return False
    return clock.now().timestamp() - signed_in_at < settings.login_known_source_seconds


async def check_signup(redis: Redis, settings: Settings, ip: str) -> None:
    bucket = TokenBucket(
        f"{KEY_PREFIX}signup:ip:{source_of(ip)}",
        settings.signup_per_ip,
        settings.signup_per_ip_seconds,
    )
    wait = await acquire(redis, [bucket])
    if wait > 0:
        raise Throttled(wait)


class Lockout(enum.StrEnum):
    """What a failed login locked: one source out of the account, or the account for every
    source not known to it (the global ceiling)."""

    SOURCE = "source"
    NEW_SOURCES = "new-sources"


async def record_failure(redis: Redis, settings: Settings, ip: str, email: str) -> Lockout | None:
    """Count a failed login from ``ip``; what it locked, when that is news to the owner (each
    kind of lock is reported once per window), else None."""
    source, account = source_of(ip), account_digest(email)
    pair = _pair(account, source)
    window_ms = round(settings.lockout_seconds * 1000)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(_FAILURES + pair)
        pipe.pexpire(_FAILURES + pair, window_ms)
        # The account's window starts at its first failure and is not stretched by later ones.
        pipe.set(_ACCOUNT_FAILURES + account, 0, px=window_ms, nx=True)
        pipe.incr(_ACCOUNT_FAILURES + account)
        in_a_row, _, _, from_everywhere = await pipe.execute()
    locked: Lockout | None = None
    if int(in_a_row) >= settings.lockout_threshold:
        # NX: of concurrent failures crossing the threshold, one locks.
        if await redis.set(_LOCKED + pair, b"1", px=window_ms, nx=True):
            locked = Lockout.SOURCE
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(_FAILURES + pair)
            pipe.sadd(_LOCKED_SOURCES + account, pair)
            pipe.pexpire(_LOCKED_SOURCES + account, window_ms)
            await pipe.execute()
    if int(from_everywhere) >= settings.lockout_ceiling and await redis.set(
        _ACCOUNT_LOCKED + account, b"1", px=window_ms, nx=True
    ):
        locked = Lockout.NEW_SOURCES
    if locked is None:
        return None
    told = await redis.set(f"{_NOTIFIED}{locked}:{account}", b"1", px=window_ms, nx=True)
    return locked if told else None


async def record_success(redis: Redis, settings: Settings, ip: str, email: str) -> None:
    """The source signed in: its failures are forgotten, and it is known to the account (the
    global ceiling does not stop it) for ``login_known_source_seconds``."""
    source, account = source_of(ip), account_digest(email)
    now = clock.now().timestamp()
    known = _KNOWN + account
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(_FAILURES + _pair(account, source))
        pipe.zadd(known, {source: now})
        pipe.zremrangebyscore(known, "-inf", now - settings.login_known_source_seconds)
        pipe.pexpire(known, round(settings.login_known_source_seconds * 1000))
        await pipe.execute()


async def unlock(redis: Redis, email: str) -> None:
    """Lift every lock on the account (after a password reset)."""
    account = account_digest(email)
    members: set[bytes] = await redis.smembers(  # type: ignore[misc]  # redis-py: sync|async
        _LOCKED_SOURCES + account
    )
    pairs = [p.decode() for p in members]
    await redis.delete(
        _ACCOUNT_FAILURES + account,
        _ACCOUNT_LOCKED + account,
        _LOCKED_SOURCES + account,
        *(_LOCKED + p for p in pairs),
        *(_FAILURES + p for p in pairs),
    )
