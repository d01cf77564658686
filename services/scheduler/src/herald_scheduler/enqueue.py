"""One scheduler pass: lock due targets, enqueue them with exact deferral, mark them enqueued.

Order matters. Jobs are enqueued *before* the commit, with deterministic ids: if the process
dies in between, the rows are still pending, the next pass enqueues the same ids again, and
Redis keeps one job per id, so nothing is published twice. A job that fires before the commit
finds its row locked and waits for it (see claim_target).
"""

from __future__ import annotations

from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.repositories.targets import lock_due_targets, mark_enqueued
from herald_common.logging import get_logger
from herald_common.queue import PublishJob, enqueue_publish_jobs
from herald_common.settings import Settings
from herald_scheduler.observability import observed_batch, observed_pass

log = get_logger(__name__)


@observed_batch
async def enqueue_batch(session: AsyncSession, redis: Redis, settings: Settings) -> int:
    """Move one batch of due targets into the queue; returns how many. Commits."""
    horizon_end = clock.now() + timedelta(seconds=settings.scheduler_horizon_seconds)
    due = await lock_due_targets(session, horizon_end, settings.scheduler_batch_size)
    if not due:
        await session.rollback()
        return 0
    jobs = [
        PublishJob(
            target_id=t.id,
            revision=t.revision,
            attempt=t.attempts + 1,
            platform=t.platform,
            defer_until=t.scheduled_at,
        )
        for t in due
    ]
    await enqueue_publish_jobs(redis, jobs)
    await mark_enqueued(session, [t.id for t in due])
    await session.commit()
    return len(due)


@observed_pass
async def enqueue_due(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, settings: Settings
) -> int:
    """Drain everything due within the horizon, batch after batch."""
    total = 0
    while True:
        async with sessions() as session:
            moved = await enqueue_batch(session, redis, settings)
        total += moved
        if moved < settings.scheduler_batch_size:
            break
    if total:
        log.info("enqueued due targets", count=total)
    return total
