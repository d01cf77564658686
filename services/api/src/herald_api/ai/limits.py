"""The model's app-wide budgets: requests and tokens per minute, as Redis token buckets
shared by every API replica and AI worker (herald_common.ratelimit), so Herald as a whole
stays inside the limits of its key however many processes call the model.

The model server's own word wins: ``x-ratelimit-remaining-*`` at zero drains the bucket
until its ``x-ratelimit-reset-*``, and a 429 drains the bucket it names (OpenAI's error
``type`` is ``requests`` or ``tokens``) for its ``retry-after``, as the platform buckets are
drained by a platform's 429. Every use of the rate-limit module is in this file.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping

from redis.asyncio import Redis

from herald_common.ratelimit import KEY_PREFIX, TokenBucket, acquire, drain_for
from herald_common.settings import Settings

REQUESTS_KEY = f"{KEY_PREFIX}openai:requests:app"
TOKENS_KEY = f"{KEY_PREFIX}openai:tokens:app"
# Both limits are per minute (OpenAI's RPM and TPM).
WINDOW_SECONDS = 60.0
# OpenAI's rule of thumb: a token is about four characters of English text
# (help.openai.com, "What are tokens and how to count them?"). Used only to reserve a
# call's share of the tokens-per-minute budget before the model has counted it.
CHARACTERS_PER_TOKEN = 4
# When a 429 says neither how long to wait nor when the window resets.
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# "1s", "6m0s", "20ms", "1h2m3.5s": how OpenAI writes x-ratelimit-reset-* durations.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class BudgetExhausted(Exception):
    """No budget within the wait allowed; ``retry_after`` seconds until there is."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the model's budget is spent for {retry_after:.1f} s")
        self.retry_after = retry_after


def estimate_tokens(characters: int) -> int:
    return max(1, math.ceil(characters / CHARACTERS_PER_TOKEN))


def _buckets(settings: Settings, tokens: int) -> tuple[TokenBucket, TokenBucket]:
    requests = TokenBucket(REQUESTS_KEY, settings.openai_requests_per_minute, WINDOW_SECONDS)
    capacity = settings.openai_tokens_per_minute
    # A call larger than the whole budget could never be paid for: it takes all of it.
    tokens_bucket = TokenBucket(TOKENS_KEY, capacity, WINDOW_SECONDS, min(tokens, capacity))
    return requests, tokens_bucket


async def take(redis: Redis, settings: Settings, tokens: int, max_wait: float | None) -> None:
    """Take one request and ``tokens`` tokens, waiting for them up to ``max_wait`` seconds
    (``None``: as long as it takes, for background work). Raises BudgetExhausted otherwise."""
    loop = asyncio.get_running_loop()
    deadline = None if max_wait is None else loop.time() + max_wait
    buckets = _buckets(settings, tokens)
    while True:
        wait = await acquire(redis, buckets)
        if wait == 0:
            return
        if deadline is not None and loop.time() + wait > deadline:
            raise BudgetExhausted(wait)
        await asyncio.sleep(wait)


def reset_seconds(value: str | None) -> float | None:
    """An ``x-ratelimit-reset-*`` duration (``6m0s``) or plain seconds, or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` (OpenAI's, more precise) or ``retry-after`` in seconds."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return reset_seconds(headers.get("retry-after"))


async def note_headers(redis: Redis, settings: Settings, headers: Mapping[str, str]) -> None:
    """Drain a bucket whose remaining count the model server says is zero, until its reset."""
    for kind, bucket in zip(("requests", "tokens"), _buckets(settings, 1), strict=True):
        remaining = headers.get(f"x-ratelimit-remaining-{kind}")
        if remaining is None or remaining.strip() not in ("0", "0.0"):
            continue
        reset = reset_seconds(headers.get(f"x-ratelimit-reset-{kind}"))
        await drain_for(redis, bucket, DEFAULT_RETRY_AFTER_SECONDS if reset is None else reset)


async def note_rate_limited(
    redis: Redis, settings: Settings, headers: Mapping[str, str], limit_type: str | None
) -> float:
    """A 429: drain the bucket it names (both when it names neither) for the wait it
    announces; returns the seconds until the model may be asked again."""
    requests, tokens = _buckets(settings, 1)
    kind = limit_type if limit_type in ("requests", "tokens") else None
    wait = retry_after(headers)
    if wait is None:
        resets = [
            reset_seconds(headers.get(f"x-ratelimit-reset-{k}"))
            for k in ((kind,) if kind else ("requests", "tokens"))
        ]
        known = [r for r in resets if r is not None]
        wait = max(known) if known else DEFAULT_RETRY_AFTER_SECONDS
    drained = {"requests": [requests], "tokens": [tokens]}.get(kind or "", [requests, tokens])
    waits = [await drain_for(redis, bucket, wait) for bucket in drained]
    return max(waits)
