"""The publisher's probes and log context.

Liveness and readiness come from arq's own poll loop: every worker rewrites its queue's
health-check key (``{queue}:health-check``) from that loop every
``HERALD_PUBLISHER_HEARTBEAT_SECONDS``, and keeps the time it last did in
``Worker._last_health_check`` (epoch seconds). A worker whose loop stopped turning stops
refreshing both, so the pod's probes and the API's /readyz see the same heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from arq.worker import Worker
from sqlalchemy import text

from herald_common.metrics import refresh_queue_depth
from herald_common.probe_server import Probes
from herald_common.settings import Settings
from herald_publisher.publish import PublisherDeps


def last_poll(worker: Worker) -> float:
    """Epoch seconds of the worker's last recorded heartbeat (0 before the first).

    A private attribute of arq (pinned in uv.lock): the only record of its poll loop turning.
    """
    last: float = getattr(worker, "_last_health_check", 0.0)
    return last


def publisher_probes(settings: Settings, workers: Sequence[Worker], deps: PublisherDeps) -> Probes:
    started = time.time()
    stall = settings.health_stall_seconds

    async def polling() -> str | None:
        for worker in workers:
            since = time.time() - max(last_poll(worker), started)
            if since > stall:
                return f"{worker.queue_name} has not polled for {since:.0f} s"
        return None

    async def taking_jobs() -> str | None:
        for worker in workers:
            if not worker.allow_pick_jobs:
                return "shutting down"
            if last_poll(worker) == 0:
                return f"{worker.queue_name} has not polled yet"
        return await polling()

    async def database() -> str | None:
        async with deps.sessions() as session:
            await session.execute(text("SELECT 1"))
        return None

    async def queue_depth() -> None:
        await refresh_queue_depth(deps.redis, settings.publisher_platforms)

    return Probes(
        live={"poll": polling},
        ready={"poll": taking_jobs, "database": database},
        before_scrape=queue_depth,
    )


@contextmanager
def job_log_context(ctx: Mapping[str, Any], targets: int) -> Iterator[None]:
    """Bind the arq job id (``pub:{target}:{revision}:{attempt}`` for a job of one target,
    ``pubs:{platform}:{due ms}:{digest}`` for several) and its size to every log line the job
    writes (each target's lines add its target_id); each job runs in a task of its own, so
    the binding ends with it."""
    with structlog.contextvars.bound_contextvars(
        job_id=ctx.get("job_id"), job_try=ctx.get("job_try"), job_targets=targets
    ):
        yield
