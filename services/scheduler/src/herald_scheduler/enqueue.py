"""One scheduler pass: take due targets (locked and marked enqueued in one statement), enqueue
their jobs with exact deferral, commit.

Order matters. Jobs are enqueued *before* the commit, with deterministic ids: if the process
dies in between, the rows are still pending, the next pass enqueues the same ids again, and
Redis keeps one job per id, so nothing is published twice. A job that fires before the commit
finds its row locked and waits for it (see claims.claim_targets).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.repositories.targets import take_due_targets
from herald_common.logging import get_logger
from herald_common.queue import JobTarget, enqueue_publish_jobs, group_jobs
from herald_common.settings import Settings
from herald_scheduler.observability import observed_batch, observed_pass

log = get_logger(__name__)


@observed_batch
async def enqueue_batch(session: AsyncSession, redis: Redis, settings: Settings) -> int:
    """Move one batch of due targets into the queue; returns how many. Commits."""
    horizon_end = clock.now() + timedelta(seconds=settings.scheduler_horizon_seconds)
    due = await take_due_targets(session, horizon_end, settings.scheduler_batch_size)
    if not due:
        await session.rollback()
        return 0
    jobs = group_jobs(
        ((t.platform, t.scheduled_at, JobTarget(t.id, t.revision, t.attempts + 1)) for t in due),
        settings.publisher_job_size,
    )
    await enqueue_publish_jobs(redis, jobs)
    await session.commit()
    return len(due)


@observed_pass
async def enqueue_due(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, settings: Settings
) -> int:
    """Drain everything due within the horizon, batch after batch.

    The first batch runs alone: when it is not full it was everything, taken in one order, so
    a pass repeated after a crash makes the same jobs. Only when more is due do
    ``scheduler_concurrency`` batches run at a time (SKIP LOCKED keeps them apart, as it does
    separate schedulers); their split is not repeatable, and a target grouped differently on a
    repeat sits in two jobs, of which the first to claim it publishes and the other finds
    nothing."""

    async def batch() -> int:
        async with sessions() as session:
            return await enqueue_batch(session, redis, settings)

    async def drain() -> int:
        moved_here = 0
        while True:
            moved = await batch()
            moved_here += moved
            if moved < settings.scheduler_batch_size:
                return moved_here

    total = await batch()
    if total == settings.scheduler_batch_size:
        total += sum(
            await asyncio.gather(*(drain() for _ in range(settings.scheduler_concurrency)))
        )
    if total:
        log.info("enqueued due targets", count=total)
    return total
