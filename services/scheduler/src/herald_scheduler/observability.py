"""The scheduler's metrics and probes: pass duration and batch sizes, the pass loop's health,
and queue depth per platform (the scheduler always runs, so its gauges stay up even while a
platform's publishers are scaled to zero, which is what autoscaling on them needs)."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec

from redis.asyncio import Redis

from herald_common.metrics import (
    SCHEDULER_BATCH_SIZE,
    SCHEDULER_PASS_FAILURES,
    SCHEDULER_PASS_SECONDS,
    refresh_queue_depth,
)
from herald_common.platforms.registry import PLATFORM_NAMES
from herald_common.probe_server import LoopHealth, Probes
from herald_common.settings import Settings

P = ParamSpec("P")

# One per process, like the metrics: every Scheduler in it runs the same passes.
PASSES = LoopHealth("scheduler pass")


def observed_pass(
    run_pass: Callable[P, Awaitable[int]],
) -> Callable[P, Coroutine[Any, Any, int]]:
    """Time a pass and record whether it finished, for the metrics and the probes."""

    @functools.wraps(run_pass)
    async def observed(*args: P.args, **kwargs: P.kwargs) -> int:
        started = time.perf_counter()
        try:
            moved = await run_pass(*args, **kwargs)
        except Exception:  # counted here, then logged and retried by the scheduler loop
            SCHEDULER_PASS_FAILURES.inc()
            PASSES.record(ok=False)
            raise
        finally:
            SCHEDULER_PASS_SECONDS.observe(time.perf_counter() - started)
        PASSES.record(ok=True)
        return moved

    return observed


def observed_batch(
    run_batch: Callable[P, Awaitable[int]],
) -> Callable[P, Coroutine[Any, Any, int]]:
    """Observe the size of every batch that moved anything (idle polls would drown it)."""

    @functools.wraps(run_batch)
    async def observed(*args: P.args, **kwargs: P.kwargs) -> int:
        moved = await run_batch(*args, **kwargs)
        if moved:
            SCHEDULER_BATCH_SIZE.observe(moved)
        return moved

    return observed


def scheduler_probes(settings: Settings, redis: Redis) -> Probes:
    live, ready = PASSES.checks(settings.health_stall_seconds)

    async def queue_depth() -> None:
        await refresh_queue_depth(redis, PLATFORM_NAMES)

    return Probes(live={"passes": live}, ready={"passes": ready}, before_scrape=queue_depth)
