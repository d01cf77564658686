"""``herald-ai-worker``: the arq worker that turns content plans into drafts (tasks.py).

AI code of the API package, run as a process of its own so a month of drafts never holds an
API request. It drains ``herald:ai`` only. On SIGTERM it stops taking batches, gives those
running the grace period, then cancels them; a cancelled or killed batch is run again from
where its rows say it stopped (tasks.py), after arq's lease on it lapses.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from arq import func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker
from sqlalchemy import text

from herald_api.ai.model import Model, build_client
from herald_api.ai.tasks import AI_QUEUE, RUN_BATCH, BatchDeps, run_batch
from herald_common import loop
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.http import create_http_client
from herald_common.logging import configure_logging, get_logger
from herald_common.loop import settle_garbage_collector, stop_signals
from herald_common.platforms.registry import build_platforms
from herald_common.probe_server import Probes, start_probe_server
from herald_common.queue import deserialize, serialize
from herald_common.settings import Settings, get_settings

log = get_logger(__name__)
DEPS = "herald"


async def _run_batch_job(ctx: dict[str, Any], batch_id: str) -> None:
    await run_batch(ctx[DEPS], uuid.UUID(batch_id))


@asynccontextmanager
async def open_deps(settings: Settings, redis: ArqRedis) -> AsyncIterator[BatchDeps]:
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    http = create_http_client(settings)
    client = build_client(settings, http)
    try:
        yield BatchDeps(
            settings=settings,
            sessions=sessions,
            platforms=build_platforms(settings, http, sessions),
            model=Model(settings, redis, sessions, client) if client else None,
        )
    finally:
        await http.aclose()
        await engine.dispose()


def build_worker(settings: Settings, redis: ArqRedis, deps: BatchDeps) -> Worker:
    return Worker(
        functions=[func(_run_batch_job, name=RUN_BATCH)],
        queue_name=AI_QUEUE,
        redis_pool=redis,
        handle_signals=False,
        max_jobs=settings.ai_worker_max_jobs,
        job_timeout=settings.ai_batch_timeout_seconds,
        keep_result=0,
        job_serializer=serialize,
        job_deserializer=deserialize,
        ctx={DEPS: deps},
        log_results=False,
        # Rewrites herald:ai:health-check, which the API's /readyz reports.
        health_check_interval=settings.publisher_heartbeat_seconds,
    )


def _probes(settings: Settings, worker: Worker, deps: BatchDeps) -> Probes:
    started = time.time()

    async def polling() -> str | None:
        last: float = max(getattr(worker, "_last_health_check", 0.0), started)
        since = time.time() - last
        return (
            f"has not polled for {since:.0f} s" if since > settings.health_stall_seconds else None
        )

    async def database() -> str | None:
        async with deps.sessions() as session:
            await session.execute(text("SELECT 1"))
        return None

    return Probes(live={"poll": polling}, ready={"poll": polling, "database": database})


async def serve(settings: Settings) -> None:
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    async with open_deps(settings, redis) as deps:
        if deps.model is None:
            log.warning("no AI model configured (HERALD_OPENAI_API_KEY): batches will fail")
        worker = build_worker(settings, redis, deps)
        probes = await start_probe_server(settings, "ai-worker", _probes(settings, worker, deps))
        running = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        async def stop() -> None:
            worker.allow_pick_jobs = False
            in_flight = [task for task in worker.tasks.values() if not task.done()]
            if in_flight:
                await asyncio.wait(in_flight, timeout=settings.publisher_grace_seconds)
            worker.handle_sig(signal.SIGTERM)

        def on_signal() -> None:
            if not stopping:
                log.info("ai worker stopping")
                stopping.append(running.create_task(stop()))

        with stop_signals(on_signal):
            settle_garbage_collector()
            log.info("ai worker started", queue=AI_QUEUE)
            # handle_sig cancels the run loop: that is how it ends.
            with suppress(asyncio.CancelledError):
                await worker.async_run()
        await probes.stop()
    await redis.aclose()
    log.info("ai worker stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "ai-worker")
    loop.run(serve(settings))
