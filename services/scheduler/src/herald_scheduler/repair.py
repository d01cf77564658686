"""The repair pass: nothing waits for a human when the system can decide.

Redis only triggers, so it may lose jobs (restarted empty, flushed, evicted) and workers may
die mid-publish. Postgres still knows every in-flight target, so this pass re-creates the job
each one should have:

- ``enqueued`` / ``retrying`` targets overdue by the grace period get their job again, under
  the same deterministic id: where the job still exists, or a live job carries the target
  with others (a busy queue, not a lost one), the enqueue is a no-op;
- ``publishing`` targets past the claim lease get a reclaim job, which takes the claim over
  and, if its request may have left, asks the platform whether the post went out before
  sending anything;
- ``unknown`` targets whose next look is due get a look job (herald_publisher.reconcile),
  which asks the platform again, only reading, and settles the target once the post is
  found. The publisher runs it because it holds the adapters and the accounts' tokens; the
  scheduler only notices it is due, as it does for every other job.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.repositories.lookups import DueLook, lock_due_looks
from herald_common.db.repositories.targets import StrandedTarget, lock_stranded_targets
from herald_common.logging import get_logger
from herald_common.queue import (
    RECONCILE_TARGETS,
    JobTarget,
    PublishJob,
    enqueue_publish_jobs,
    lookup_job_id,
    publish_job_id,
    reclaim_job_id,
    single_job,
    waiting_job_id,
)
from herald_common.settings import Settings
from herald_common.statuses import TargetStatus

log = get_logger(__name__)


def job_for(target: StrandedTarget) -> PublishJob:
    """The job this target should have in the queue, with the id its enqueuer gave it."""
    now = clock.now()
    if target.status == TargetStatus.PUBLISHING:
        job_id = reclaim_job_id(target.id, target.revision, target.attempts)
    elif target.status == TargetStatus.ENQUEUED and target.error_kind == "rate_limited":
        job_id = waiting_job_id(target.id, target.revision, target.attempts + 1, target.due_at)
    else:
        job_id = publish_job_id(target.id, target.revision, target.attempts + 1)
    return single_job(
        target.platform,
        max(target.due_at, now),
        JobTarget(target.id, target.revision, target.attempts + 1, job_id),
    )


async def repair_stranded(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, settings: Settings
) -> int:
    """Re-create the jobs of stranded targets; returns how many jobs were actually missing."""
    now = clock.now()
    restored = 0
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session:
            stranded = await lock_stranded_targets(
                session,
                overdue_before=now - timedelta(seconds=settings.scheduler_repair_grace_seconds),
                lease_expired_before=now
                - timedelta(seconds=settings.publisher_claim_lease_seconds),
                limit=settings.scheduler_batch_size,
                after=after,
            )
            # Enqueued while the rows are locked: a job firing at once waits for the commit.
            restored += await enqueue_publish_jobs(redis, [job_for(t) for t in stranded])
            await session.commit()
        if len(stranded) < settings.scheduler_batch_size:
            break
        # The rows stay as they were, so the next batch starts past this one.
        after = stranded[-1].id
    if restored:
        log.warning("re-created lost publish jobs", count=restored)
    return restored


def look_job_for(target: DueLook) -> PublishJob:
    """The look this unknown target is due for: one job each (looks are rare), its id naming
    the look, so a job still queued is not doubled and the next look is a new job."""
    job_id = lookup_job_id(target.id, target.revision, target.lookups)
    return PublishJob(
        platform=target.platform,
        defer_until=clock.now(),
        targets=(JobTarget(target.id, target.revision, target.lookups, job_id),),
        function=RECONCILE_TARGETS,
    )


async def enqueue_due_looks(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, settings: Settings
) -> int:
    """Enqueue a look for the unknown targets whose next look is due, a batch per pass (the
    oldest due first; a target stays due until its look has run, so the next pass takes up
    the rest); returns how many jobs were new."""
    async with sessions() as session:
        due = await lock_due_looks(session, clock.now(), settings.scheduler_batch_size)
        added = await enqueue_publish_jobs(redis, [look_job_for(t) for t in due])
        await session.commit()
    if added:
        log.info("enqueued looks for unknown targets", count=added)
    return added
