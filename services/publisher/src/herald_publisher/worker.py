"""The publisher process: one arq worker per platform queue, all in one event loop.

``HERALD_PUBLISHER_PLATFORMS`` picks the queues this process drains, so ops can run (and
scale) publisher pods per platform. On SIGTERM the workers stop taking jobs, in-flight
publishes get the grace period to finish, and anything not started stays in the queue for
another pod.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from herald_common import loop
from herald_common.accounts.refresh import TokenRefresher
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.http import create_http_client
from herald_common.logging import configure_logging, get_logger
from herald_common.loop import settle_garbage_collector, stop_signals
from herald_common.platforms.registry import PLATFORM_NAMES, build_platforms
from herald_common.probe_server import start_probe_server
from herald_common.queue import (
    PUBLISH_TARGETS,
    RECONCILE_TARGETS,
    deserialize,
    queue_name,
    serialize,
)
from herald_common.settings import Settings, get_settings
from herald_publisher.media import ByteBudget
from herald_publisher.observability import job_log_context, publisher_probes
from herald_publisher.publish import PublisherDeps, publish_targets
from herald_publisher.reconcile import reconcile_targets

log = get_logger(__name__)
DEPS = "herald"


async def _publish_targets_job(ctx: dict[str, Any], targets: list[list[Any]]) -> dict[str, str]:
    deps: PublisherDeps = ctx[DEPS]
    wanted = [(uuid.UUID(target_id), int(revision)) for target_id, revision in targets]
    with job_log_context(ctx, len(wanted)):
        results = await publish_targets(deps, wanted)
    return {str(target_id): result for target_id, result in results.items()}


async def _reconcile_targets_job(ctx: dict[str, Any], targets: list[list[Any]]) -> dict[str, str]:
    deps: PublisherDeps = ctx[DEPS]
    wanted = [(uuid.UUID(target_id), int(revision)) for target_id, revision in targets]
    with job_log_context(ctx, len(wanted)):
        results = await reconcile_targets(deps, wanted)
    return {str(target_id): result for target_id, result in results.items()}


@asynccontextmanager
async def open_deps(settings: Settings, redis: ArqRedis) -> AsyncIterator[PublisherDeps]:
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    http = create_http_client(settings)
    try:
        yield PublisherDeps(
            settings=settings,
            sessions=sessions,
            redis=redis,
            platforms=build_platforms(settings, http, sessions),
            tokens=TokenRefresher(settings, sessions, redis, http),
            worker=f"{socket.gethostname()}:{os.getpid()}",
            media_budget=ByteBudget(settings.publisher_media_budget_bytes),
        )
    finally:
        await http.aclose()
        await engine.dispose()


def build_workers(settings: Settings, redis: ArqRedis, deps: PublisherDeps) -> list[Worker]:
    unknown = set(settings.publisher_platforms) - set(PLATFORM_NAMES)
    if unknown:
        raise ValueError(f"unknown platforms in HERALD_PUBLISHER_PLATFORMS: {sorted(unknown)}")
    return [
        Worker(
            functions=[
                func(_publish_targets_job, name=PUBLISH_TARGETS),
                func(_reconcile_targets_job, name=RECONCILE_TARGETS),
            ],
            queue_name=queue_name(platform),
            redis_pool=redis,
            handle_signals=False,
            poll_delay=settings.publisher_poll_delay_seconds,
            max_jobs=settings.publisher_max_jobs,
            job_timeout=settings.publisher_job_timeout_seconds,
            # Results live in Postgres. Keeping none in Redis also lets a job id be enqueued
            # again after its job ran (e.g. a scheduler pass that died before committing).
            keep_result=0,
            job_serializer=serialize,
            job_deserializer=deserialize,
            ctx={DEPS: deps},
            log_results=False,
            # Rewrites {queue}:health-check: the probes' and the API's sign of a live poll loop.
            health_check_interval=settings.publisher_heartbeat_seconds,
        )
        for platform in settings.publisher_platforms
    ]


async def stop_workers(workers: list[Worker], grace_seconds: float) -> None:
    """Stop taking jobs, give in-flight ones ``grace_seconds``, then cancel what is left."""
    for worker in workers:
        worker.allow_pick_jobs = False
    in_flight = [task for worker in workers for task in worker.tasks.values() if not task.done()]
    if in_flight:
        await asyncio.wait(in_flight, timeout=grace_seconds)
    for worker in workers:
        worker.handle_sig(signal.SIGTERM)


async def serve(settings: Settings) -> None:
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    async with open_deps(settings, redis) as deps:
        workers = build_workers(settings, redis, deps)
        probes = await start_probe_server(
            settings, "publisher", publisher_probes(settings, workers, deps)
        )
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        def on_signal() -> None:
            if not stopping:
                log.info("publisher stopping", grace_seconds=settings.publisher_grace_seconds)
                stopping.append(
                    loop.create_task(stop_workers(workers, settings.publisher_grace_seconds))
                )

        with stop_signals(on_signal):
            settle_garbage_collector()
            log.info("publisher started", platforms=settings.publisher_platforms)
            results = await asyncio.gather(
                *(w.async_run() for w in workers), return_exceptions=True
            )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("worker stopped with an error", error=repr(result))
        await probes.stop()
    await redis.aclose()
    log.info("publisher stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "publisher")
    loop.run(serve(settings))
