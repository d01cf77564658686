"""Token buckets in Redis, shared by every worker (DESIGN.md, "Rate limits").

A call checks several buckets (app-wide per platform, per account, per endpoint) in one Lua
script, so either every bucket is debited or none is, and no two workers can both spend the
last token. Time comes from Redis (``TIME``) and never from a worker's clock, so clock skew
between machines cannot mint tokens.

A bucket is a Redis hash ``{tokens, ts}``: the tokens held at ``ts`` (epoch microseconds).
A ``ts`` in the future means the bucket is drained until then (a platform's 429): it holds
no tokens and starts refilling only at ``ts``. An absent key is a full bucket, so each hash
expires once it would have refilled and idle buckets cost nothing.

Nothing here sleeps: :func:`acquire` reports the wait and the caller re-defers its job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID
from weakref import WeakKeyDictionary

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from herald_common.platforms.base import RateLimit

KEY_PREFIX = "herald:rl:"

# Times cross into Lua as integer microseconds: Lua numbers are doubles, which hold epoch
# microseconds (~2**51) exactly, while seconds as floats would lose precision on the way.
_MICROS = 1_000_000

# Takes tokens for several requests in turn (a publisher job asks for all its targets at once).
# ARGV: the number of requests, then per request its number of buckets n and, per bucket,
# capacity, per (µs), cost; KEYS: every request's buckets in order. Returns, per request, 0
# after debiting every one of its buckets, else the wait in µs until all of them would hold
# enough, having debited none. A request sees the debits of the requests before it.
_ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function take(k0, a0, n)
  local held, stamps, wait = {}, {}, 0
  for i = 1, n do
    local capacity = tonumber(ARGV[a0 + 3 * i - 2])
    local rate = capacity / tonumber(ARGV[a0 + 3 * i - 1])
    local cost = tonumber(ARGV[a0 + 3 * i])
    local state = redis.call('HMGET', KEYS[k0 + i], 'tokens', 'ts')
    local tokens = tonumber(state[1]) or capacity
    local ts = tonumber(state[2]) or now
    -- A ts in the future is a drain: the bucket gives nothing before it.
    if ts > now then
      wait = math.max(wait, ts - now + math.max(0, cost - tokens) / rate)
    else
      tokens = math.min(capacity, tokens + (now - ts) * rate)
      ts = now
      if tokens < cost then
        wait = math.max(wait, (cost - tokens) / rate)
      end
    end
    held[i], stamps[i] = tokens, ts
  end
  if wait > 0 then
    return math.ceil(wait)
  end
  for i = 1, n do
    local capacity = tonumber(ARGV[a0 + 3 * i - 2])
    local per = tonumber(ARGV[a0 + 3 * i - 1])
    local left = held[i] - tonumber(ARGV[a0 + 3 * i])
    -- %.17g and %.0f: Redis would otherwise store numbers with 14 digits, truncating ts.
    redis.call('HSET', KEYS[k0 + i], 'tokens', string.format('%.17g', left),
               'ts', string.format('%.0f', stamps[i]))
    -- Once full again the hash says nothing an absent key would not.
    local refill = stamps[i] - now + (capacity - left) * per / capacity
    redis.call('PEXPIRE', KEYS[k0 + i], math.max(1, math.ceil(refill / 1000)))
  end
  return 0
end

local waits, k, a = {}, 0, 2
for r = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  waits[r] = take(k, a, n)
  k, a = k + n, a + 1 + 3 * n
end
return waits
"""

# ARGV: capacity, per (µs), cost, block for (µs from Redis's now), block until (epoch µs).
# Blocks the bucket until the later of the two, never shortening a longer drain another worker
# already recorded; at the reset it is full again, as the platform's window is. Returns the
# wait in µs until it gives tokens again.
_DRAIN_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local capacity, per, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked = math.max(now, now + tonumber(ARGV[4]), tonumber(ARGV[5]))
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts'))
if ts and ts > blocked then
  blocked = ts
end
-- The platform's window starts afresh at its reset, so the bucket is full again then.
redis.call('HSET', KEYS[1], 'tokens', string.format('%d', capacity),
           'ts', string.format('%.0f', blocked))
redis.call('PEXPIRE', KEYS[1], math.ceil((blocked - now) / 1000) + 1)
return math.ceil(blocked - now)
"""

# register_script sends only the SHA (EVALSHA), loading the source when a server lacks it.
# Script objects are bound to a client, hence one pair per client, dropped along with it.
_scripts: WeakKeyDictionary[Redis, dict[str, AsyncScript]] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """``capacity`` tokens refilling evenly over ``per_seconds``; one call spends ``cost``."""

    key: str
    capacity: int
    per_seconds: float
    cost: int = 1

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_seconds <= 0:
            raise ValueError(f"{self.key}: capacity and per_seconds must be positive")
        # A cost above capacity could never be paid; the caller would wait forever.
        if not 1 <= self.cost <= self.capacity:
            raise ValueError(f"{self.key}: cost must be between 1 and capacity")


def bucket_key(platform: str, limit: RateLimit, account_id: UUID) -> str:
    """``herald:rl:{platform}:{name}:app`` or ``...:acct:{account_id}``, by the limit's scope."""
    base = f"{KEY_PREFIX}{platform}:{limit.name}"
    if limit.scope == "app":
        return f"{base}:app"
    if limit.scope == "account":
        return f"{base}:acct:{account_id}"
    raise ValueError(f"{platform}/{limit.name}: unknown rate-limit scope {limit.scope!r}")


def buckets_for(platform: str, limits: Sequence[RateLimit], account_id: UUID) -> list[TokenBucket]:
    """The buckets one call to ``platform`` on behalf of ``account_id`` must pass."""
    return [
        TokenBucket(
            bucket_key(platform, limit, account_id), limit.capacity, limit.per_seconds, limit.cost
        )
        for limit in limits
    ]


async def acquire(redis: Redis, buckets: Sequence[TokenBucket]) -> float:
    """Take ``cost`` tokens from every bucket, or from none.

    Returns 0.0 when taken, else the seconds until all buckets would hold enough (nothing
    taken; the caller re-defers rather than sleeping).
    """
    [wait] = await acquire_many(redis, [buckets])
    return wait


async def acquire_many(redis: Redis, requests: Sequence[Sequence[TokenBucket]]) -> list[float]:
    """:func:`acquire` for several requests in one round trip, in order: each request's wait
    (0.0 when its tokens were taken)."""
    keys: list[str] = []
    args: list[int] = [len(requests)]
    for buckets in requests:
        request_keys = [bucket.key for bucket in buckets]
        # The script reads every bucket of a request before writing any, so a repeated key
        # would be debited once while checked as if it were two buckets.
        if len(set(request_keys)) != len(request_keys):
            raise ValueError(f"duplicate rate-limit buckets: {request_keys}")
        keys += request_keys
        args.append(len(buckets))
        for bucket in buckets:
            args += [bucket.capacity, _per_micros(bucket), bucket.cost]
    if not keys:
        return [0.0] * len(requests)
    waits = cast(list[int], await _run(redis, _ACQUIRE_SCRIPT, keys, args))
    return [wait / _MICROS for wait in waits]


async def drain_until(redis: Redis, bucket: TokenBucket, until_epoch_seconds: float) -> float:
    """Empty ``bucket`` and stop its refill until a platform's announced reset time.

    For headers like ``x-rate-limit-reset``. The reset is on the platform's clock; it is
    compared with Redis's, the one clock all workers share. Returns the seconds until the
    bucket yields ``bucket.cost`` again.
    """
    return await _drain(redis, bucket, 0, round(until_epoch_seconds * _MICROS))


async def drain_for(redis: Redis, bucket: TokenBucket, retry_after_seconds: float) -> float:
    """Like :func:`drain_until`, for a ``Retry-After`` counted from now (Redis's now)."""
    return await _drain(redis, bucket, round(max(0.0, retry_after_seconds) * _MICROS), 0)


def _per_micros(bucket: TokenBucket) -> int:
    return max(1, round(bucket.per_seconds * _MICROS))


async def _drain(redis: Redis, bucket: TokenBucket, for_micros: int, until_micros: int) -> float:
    args = [bucket.capacity, _per_micros(bucket), bucket.cost, for_micros, until_micros]
    wait_micros = cast(int, await _run(redis, _DRAIN_SCRIPT, [bucket.key], args))
    return wait_micros / _MICROS


async def _run(redis: Redis, source: str, keys: list[str], args: list[int]) -> Any:
    scripts = _scripts.setdefault(redis, {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = redis.register_script(source)
    # redis-py leaves a script's result untyped: the callers know their script's reply.
    return await script(keys, args)
