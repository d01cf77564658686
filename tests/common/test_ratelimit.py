"""Token buckets against a real Redis: refill, all-or-nothing debits, drains, and the limit
holding across concurrent callers and processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections import Counter
from uuid import UUID

import pytest
from redis.asyncio import Redis

from herald_common.platforms.base import RateLimit
from herald_common.ratelimit import (
    TokenBucket,
    acquire,
    acquire_many,
    bucket_key,
    buckets_for,
    drain_for,
    drain_until,
)
from tests.services import wait_for

# Per-second limits so slow that no token can refill while a test runs (one per 28 minutes),
# which makes success counts exact.
DAY = 86_400.0


async def _server_now(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return float(seconds) + float(micros) / 1_000_000


async def _redis_time_passes(redis: Redis, moment: float) -> None:
    """Until Redis's clock, the one the buckets read, is past ``moment``."""

    async def passed() -> bool:
        return await _server_now(redis) > moment

    await wait_for(passed, interval=0.01)


def _windows(first: float) -> tuple[float, ...]:
    """A bucket is looked at within a window (before its reset, before a token refills);
    should the machine pause past it meanwhile, the look proves nothing, and it is made again
    on a fresh bucket with a window twice as long, up to 32 times the first."""
    return tuple(first * 2**n for n in range(6))


async def _tokens(redis: Redis, bucket: TokenBucket) -> float | None:
    raw = await redis.hget(bucket.key, "tokens")  # type: ignore[misc]  # redis-py: sync|async
    return None if raw is None else float(raw)


async def _successes(redis: Redis, bucket: TokenBucket, attempts: int) -> int:
    waits = [await acquire(redis, [bucket]) for _ in range(attempts)]
    return waits.count(0.0)


async def test_full_bucket_lets_exactly_capacity_through_then_reports_wait(redis: Redis) -> None:
    bucket = TokenBucket("t:posts", capacity=5, per_seconds=10)

    assert await _successes(redis, bucket, 5) == 5
    wait = await acquire(redis, [bucket])

    # One token refills every per_seconds / capacity = 2 s.
    assert 0 < wait <= 2.0
    # Refused calls take nothing: still no whole token.
    assert await _successes(redis, bucket, 10) == 0
    tokens = await _tokens(redis, bucket)
    assert tokens is not None
    assert tokens < 1


async def test_tokens_flow_again_after_the_reported_wait(redis: Redis) -> None:
    for window in _windows(0.1):  # here the time one token takes to refill
        bucket = TokenBucket(f"t:fast:{window}", capacity=2, per_seconds=2 * window)
        emptied_from = await _server_now(redis)
        assert await _successes(redis, bucket, 2) == 2

        wait = await acquire(redis, [bucket])
        if await _server_now(redis) < emptied_from + window:
            break  # no token can have refilled before the look, as meant
    else:
        pytest.fail(f"this machine never looked at an empty bucket within {window} s")

    assert 0 < wait <= window
    await _redis_time_passes(redis, await _server_now(redis) + wait)

    assert await acquire(redis, [bucket]) == 0.0


async def test_when_one_bucket_is_empty_no_bucket_is_debited(redis: Redis) -> None:
    app = TokenBucket("t:app", capacity=1, per_seconds=DAY)
    account = TokenBucket("t:acct", capacity=10, per_seconds=DAY)
    assert await acquire(redis, [app]) == 0.0

    for _ in range(5):
        assert await acquire(redis, [account, app]) > 0

    assert await _tokens(redis, account) is None  # never written: still full
    assert await _successes(redis, account, 11) == 10


async def test_a_cost_that_does_not_fit_takes_nothing(redis: Redis) -> None:
    big = TokenBucket("t:media", capacity=5, per_seconds=DAY, cost=3)
    small = TokenBucket("t:media", capacity=5, per_seconds=DAY, cost=2)

    assert await acquire(redis, [big]) == 0.0
    assert await acquire(redis, [big]) > 0  # 2 left, 3 needed

    assert await acquire(redis, [small]) == 0.0  # the 2 are still there
    assert await acquire(redis, [small]) > 0


async def test_drain_until_blocks_until_the_reset_then_tokens_flow(redis: Redis) -> None:
    for window in _windows(0.3):
        bucket = TokenBucket(f"t:drained:{window}", capacity=1000, per_seconds=1)
        assert await acquire(redis, [bucket]) == 0.0

        reset = await _server_now(redis) + window
        drained_wait = await drain_until(redis, bucket, reset)
        waits = [await acquire(redis, [bucket]) for _ in range(20)]
        if await _server_now(redis) < reset:
            break  # every look was while the bucket was drained, as meant
    else:
        pytest.fail(f"this machine never looked at a drained bucket within {window} s")

    assert 0 < drained_wait <= window + 0.01
    assert all(0 < wait <= window + 0.01 for wait in waits)

    await _redis_time_passes(redis, reset)
    assert await acquire(redis, [bucket]) == 0.0


async def test_drain_for_counts_from_redis_time(redis: Redis) -> None:
    bucket = TokenBucket("t:retry-after", capacity=10, per_seconds=10)

    wait = await drain_for(redis, bucket, 30)

    assert 29.9 < wait <= 30.01  # blocked 30 s, then full again as the platform's window
    assert 29 < await acquire(redis, [bucket]) <= 31


async def test_a_shorter_drain_never_shortens_a_longer_one(redis: Redis) -> None:
    bucket = TokenBucket("t:twice", capacity=10, per_seconds=1)
    await drain_for(redis, bucket, 60)

    # Another worker got a 429 announcing an earlier reset (or one already past).
    await drain_for(redis, bucket, 0)
    await drain_until(redis, bucket, await _server_now(redis) - 5)

    assert await acquire(redis, [bucket]) > 30


async def test_a_drained_bucket_refuses_combined_calls_without_debiting_others(
    redis: Redis,
) -> None:
    app = TokenBucket("t:app", capacity=3, per_seconds=DAY)
    account = TokenBucket("t:acct", capacity=3, per_seconds=DAY)
    await drain_for(redis, account, 60)

    assert await acquire(redis, [app, account]) > 30

    assert await _successes(redis, app, 4) == 3


async def test_buckets_expire_once_they_would_have_refilled(redis: Redis) -> None:
    bucket = TokenBucket("t:idle", capacity=10, per_seconds=100)

    await acquire(redis, [bucket])
    ttl_ms = await redis.pttl(bucket.key)
    assert 0 < ttl_ms <= 10_000  # one token back takes 10 s

    await drain_for(redis, bucket, 50)
    ttl_ms = await redis.pttl(bucket.key)
    assert 49_000 < ttl_ms <= 51_000  # until the reset; then full, as an absent key reads


async def test_no_more_than_capacity_passes_across_callers_and_processes(
    redis: Redis, redis_url: str
) -> None:
    bucket = TokenBucket("t:shared", capacity=50, per_seconds=DAY)
    processes, attempts_each = 4, 50
    # Each process connects, says "ready", then waits for "go" on stdin, so they all hammer
    # the bucket at the same moment as the callers in this process.
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            redis_url,
            bucket.key,
            str(bucket.capacity),
            str(bucket.per_seconds),
            str(attempts_each),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    try:
        async with asyncio.timeout(60):
            for worker in workers:
                assert worker.stdout is not None
                assert await worker.stdout.readline() == b"ready\n"
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
            local = await asyncio.gather(*(acquire(redis, [bucket]) for _ in range(200)))
            outputs = [await worker.communicate() for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()

    assert [worker.returncode for worker in workers] == [0] * processes
    remote = [int(stdout) for stdout, _ in outputs]
    assert local.count(0.0) + sum(remote) == bucket.capacity
    assert all(wait > 0 for wait in local if wait != 0.0)


async def test_app_bucket_caps_the_total_across_accounts_under_concurrency(
    redis: Redis,
) -> None:
    limits = [
        RateLimit("posts", capacity=30, per_seconds=DAY, scope="app"),
        RateLimit("posts", capacity=15, per_seconds=DAY, scope="account"),
    ]
    accounts = [uuid.uuid4() for _ in range(3)]
    calls = [accounts[i % 3] for i in range(300)]

    waits = await asyncio.gather(
        *(acquire(redis, buckets_for("x", limits, account)) for account in calls)
    )

    passed = Counter(account for account, wait in zip(calls, waits, strict=True) if wait == 0.0)
    assert sum(passed.values()) == 30
    for account in accounts:
        assert passed[account] <= 15
        # Each account bucket was debited exactly for its own successes, never for a refusal.
        account_bucket = buckets_for("x", limits[1:], account)[0]
        tokens = await _tokens(redis, account_bucket)
        left = 15.0 if tokens is None else tokens
        assert int(left) == 15 - passed[account]


def test_buckets_for_names_app_and_account_buckets() -> None:
    account = UUID("00000000-0000-0000-0000-00000000000a")
    limits = [
        RateLimit("tweets", capacity=300, per_seconds=10_800, scope="app"),
        RateLimit("media", capacity=50, per_seconds=900, scope="account", cost=5),
    ]

    assert buckets_for("x", limits, account) == [
        TokenBucket("herald:rl:x:tweets:app", 300, 10_800, 1),
        TokenBucket(f"herald:rl:x:media:acct:{account}", 50, 900, 5),
    ]


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="scope"):
        bucket_key("x", RateLimit("posts", 1, 1, scope="workspace"), uuid.uuid4())


@pytest.mark.parametrize(
    ("capacity", "per_seconds", "cost"),
    [(0, 60, 1), (10, 0, 1), (10, 60, 0), (10, 60, 11)],
)
def test_a_bucket_that_could_never_pay_is_refused(
    capacity: int, per_seconds: float, cost: int
) -> None:
    with pytest.raises(ValueError, match="t:bad"):
        TokenBucket("t:bad", capacity, per_seconds, cost)


async def test_the_same_bucket_twice_in_one_call_is_refused(redis: Redis) -> None:
    bucket = TokenBucket("t:dup", capacity=5, per_seconds=60)
    with pytest.raises(ValueError, match="duplicate"):
        await acquire(redis, [bucket, bucket])


async def test_no_buckets_means_no_wait(redis: Redis) -> None:
    assert await acquire(redis, []) == 0.0


# Run by each process of the cross-process test: prints how many of its calls got a token.
_WORKER = textwrap.dedent(
    """
    import asyncio
    import sys

    from redis.asyncio import Redis

    from herald_common.ratelimit import TokenBucket, acquire


    async def main(url: str, key: str, capacity: str, per_seconds: str, attempts: str) -> None:
        redis = Redis.from_url(url)
        bucket = TokenBucket(key, int(capacity), float(per_seconds))
        await redis.ping()
        print("ready", flush=True)
        sys.stdin.readline()  # "go": nothing else runs on this loop yet
        waits = await asyncio.gather(*(acquire(redis, [bucket]) for _ in range(int(attempts))))
        print(waits.count(0.0))
        await redis.aclose()


    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_after_a_platform_reset_the_bucket_is_full_again(redis: Redis) -> None:
    """The platform's window starts afresh at its reset: waiting a refill from empty would
    hold an account back far longer than the platform does (Mastodon: one post per 36 s)."""
    for window in _windows(0.3):
        bucket = TokenBucket(f"t:reset-full:{window}", capacity=5, per_seconds=3600)
        drained_from = await _server_now(redis)
        await drain_for(redis, bucket, window)
        reset_by = await _server_now(redis) + window  # the reset is no later than this
        before_reset = await acquire(redis, [bucket])
        if await _server_now(redis) < drained_from + window:
            break  # the look was while the bucket was drained, as meant
    else:
        pytest.fail(f"this machine never looked at a drained bucket within {window} s")

    assert before_reset > 0
    await _redis_time_passes(redis, reset_by)
    assert [await acquire(redis, [bucket]) for _ in range(5)] == [0.0] * 5
    assert await acquire(redis, [bucket]) > 0


async def test_requests_of_one_call_are_served_in_turn(redis: Redis) -> None:
    """A publisher job asks for all its targets at once: each request is all-or-nothing and
    sees the debits of the ones before it."""
    app = TokenBucket(f"herald:rl:test:{uuid.uuid4()}:app", capacity=3, per_seconds=DAY)
    one = TokenBucket(f"herald:rl:test:{uuid.uuid4()}:acct", capacity=1, per_seconds=DAY)
    two = TokenBucket(f"herald:rl:test:{uuid.uuid4()}:acct", capacity=2, per_seconds=DAY)
    waits = await acquire_many(
        redis, [[app, one], [app, one], [app, two], [], [app, two], [app, two]]
    )
    # one's second request finds it empty and takes nothing from app either, so app still
    # serves both of two's first requests; the third finds app and two both empty.
    assert [wait > 0 for wait in waits] == [False, True, False, False, False, True]
    assert await _tokens(redis, app) == pytest.approx(0, abs=0.01)


async def test_a_request_naming_a_bucket_twice_is_refused(redis: Redis) -> None:
    bucket = TokenBucket(f"herald:rl:test:{uuid.uuid4()}", capacity=5, per_seconds=DAY)
    with pytest.raises(ValueError, match="duplicate"):
        await acquire_many(redis, [[bucket], [bucket, bucket]])
