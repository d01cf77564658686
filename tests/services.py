"""Running Herald's services inside the test process (real scheduler loop, real arq workers)
or as separate OS processes, and waiting on what they do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.settings import Settings
from herald_publisher.worker import build_workers, open_deps, stop_workers
from herald_scheduler.main import Scheduler


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it holds; fail the test with a clear message after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@asynccontextmanager
async def running_scheduler(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Scheduler]:
    redis = Redis.from_url(settings.redis_url)
    scheduler = Scheduler(settings, sessions, redis)
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        scheduler.stop()
        await task
        await redis.aclose()


@asynccontextmanager
async def running_publisher(settings: Settings) -> AsyncIterator[None]:
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    async with open_deps(settings, redis) as deps:
        workers = build_workers(settings, redis, deps)
        task = asyncio.gather(*(w.async_run() for w in workers), return_exceptions=True)
        try:
            yield
        finally:
            await stop_workers(workers, grace_seconds=5)
            await task
    await redis.aclose()


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HERALD_ENVIRONMENT": "test",
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_REDIS_URL": settings.redis_url,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_SCHEDULER_INTERVAL_SECONDS": str(settings.scheduler_interval_seconds),
        "HERALD_PUBLISHER_POLL_DELAY_SECONDS": str(settings.publisher_poll_delay_seconds),
        # Any free port for the probe server, so copies of a service never collide.
        "HERALD_METRICS_PORT": "0",
        **extra,
    }


def spawn(entry_point: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a Herald service the way production does: its console script, its own process."""
    script = os.path.join(os.path.dirname(sys.executable), entry_point)
    return subprocess.Popen([script], env=env)


# How long spawned services may take to be ready, as a failure bound only. Each one's imports
# alone cost ~10 s of CPU on a loaded 2-core machine; two schedulers and two publishers started
# together beside other test runs answered /readyz after 33 s (2026-12-04), past the 30 s
# that wait_for allows by default.
READY_WITHIN_SECONDS = 90.0
# The test timeout for a test that starts services and then waits on their work as well.
SPAWNING_TEST_TIMEOUT_SECONDS = 240


async def wait_ready(processes: list[subprocess.Popen[bytes]], probe_urls: list[str]) -> None:
    """Wait until every spawned service answers 200 on its /readyz (each was given its own
    ``HERALD_METRICS_PORT``); fail at once if one of them exits."""
    async with httpx.AsyncClient(timeout=5) as http:

        async def ready() -> bool:
            for process in processes:
                assert process.poll() is None, f"{process.args!r} exited with {process.returncode}"
            try:
                answers = [await http.get(f"{url}/readyz") for url in probe_urls]
            except httpx.TransportError:
                return False  # not listening yet
            return all(answer.status_code == 200 for answer in answers)

        await wait_for(ready, timeout=READY_WITHIN_SECONDS)


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
