"""The repair pass: jobs lost from Redis are re-created, a dead worker's claim is reconciled,
and a merely busy queue is left alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget, SandboxPublication
from herald_common.queue import queue_name
from herald_common.settings import Settings
from herald_scheduler.enqueue import enqueue_due
from herald_scheduler.repair import repair_stranded
from tests.conftest import Tenant
from tests.factories import insert_due_targets
from tests.services import running_publisher, wait_for


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(PostTarget.status, func.count()).group_by(PostTarget.status)
        )
        return dict(rows.all())


async def publications(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(SandboxPublication.idempotency_key, func.count()).group_by(
                SandboxPublication.idempotency_key
            )
        )
        return dict(rows.all())


def quick(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"scheduler_repair_grace_seconds": 1.0, "publisher_claim_lease_seconds": 2.0}
    )


async def test_jobs_lost_with_redis_are_re_created_and_published_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    settings = quick(settings)
    due = clock.now() - timedelta(seconds=5)
    targets = await insert_due_targets(
        sessions, tenant.workspace_id, count=30, accounts=3, due_at=due
    )
    assert await enqueue_due(sessions, redis, settings) == 30
    await redis.flushdb()  # Redis restarted empty

    assert await repair_stranded(sessions, redis, settings) == 30
    assert await redis.zcard(queue_name("sandbox")) == 30
    # A second pass finds the jobs in place: nothing more is added.
    assert await repair_stranded(sessions, redis, settings) == 0

    async with running_publisher(settings):

        async def done() -> bool:
            return await statuses(sessions) == {"published": 30}

        await wait_for(done, timeout=20)
    assert await publications(sessions) == {f"herald-{t}": 1 for t in targets}


async def test_more_stranded_targets_than_a_batch_are_all_repaired_in_one_pass(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    # Re-creating a job leaves its row as it was, so a pass that asked for the first batch
    # again would find the same targets for ever: it must page on past them.
    settings = quick(settings).model_copy(update={"scheduler_batch_size": 4})
    due = clock.now() - timedelta(seconds=5)
    for offset in range(10):  # ten due instants: ten jobs of one target each
        await insert_due_targets(
            sessions,
            tenant.workspace_id,
            count=1,
            accounts=1,
            due_at=due + timedelta(milliseconds=offset),
        )
    assert await enqueue_due(sessions, redis, settings) == 10
    await redis.flushdb()  # Redis restarted empty

    # The bound only turns a pass that never ends into a failure.
    assert await asyncio.wait_for(repair_stranded(sessions, redis, settings), 30) == 10
    assert await redis.zcard(queue_name("sandbox")) == 10
    assert await asyncio.wait_for(repair_stranded(sessions, redis, settings), 30) == 0


async def test_a_busy_queue_is_left_alone(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    due = clock.now() - timedelta(minutes=5)
    await insert_due_targets(sessions, tenant.workspace_id, count=10, accounts=1, due_at=due)
    await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=due + timedelta(seconds=1)
    )
    assert await enqueue_due(sessions, redis, settings) == 11
    queued = await redis.zrange(queue_name("sandbox"), 0, -1)
    # Both the job of one target and the job the other ten share are still there: repair
    # adds nothing, not even a job of its own for a target that shares one.
    assert len(queued) == 2
    assert await repair_stranded(sessions, redis, quick(settings)) == 0
    assert await redis.zrange(queue_name("sandbox"), 0, -1) == queued


async def _strand_as_publishing(
    sessions: async_sessionmaker[AsyncSession],
    target_id: uuid.UUID,
    claimed_ago: timedelta,
    *,
    sent: bool = True,
) -> None:
    """What a worker leaves behind when it is killed mid-publish (``sent``: after it marked
    the request as about to leave)."""
    claimed_at = clock.now() - claimed_ago
    async with sessions.begin() as session:
        await session.execute(
            update(PostTarget)
            .where(PostTarget.id == target_id)
            .values(
                status="publishing",
                attempts=1,
                claim_id=uuid.uuid4(),
                claimed_at=claimed_at,
                sent_at=claimed_at if sent else None,
            )
        )


async def test_dead_workers_claim_is_reconciled_not_published_again(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    settings = quick(settings)
    [landed, lost] = await insert_due_targets(
        sessions, tenant.workspace_id, count=2, accounts=1, due_at=clock.now()
    )
    for target_id in (landed, lost):
        await _strand_as_publishing(sessions, target_id, claimed_ago=timedelta(seconds=10))
    # The dead worker's request for `landed` reached the platform before it died.
    async with sessions.begin() as session:
        row = await session.get(PostTarget, landed)
        assert row is not None
        session.add(
            SandboxPublication(
                workspace_id=tenant.workspace_id,
                account_id=row.account_id,
                idempotency_key=f"herald-{landed}",
                text="bulk post",
            )
        )

    assert await repair_stranded(sessions, redis, settings) == 2
    async with running_publisher(settings):

        async def done() -> bool:
            return await statuses(sessions) == {"published": 2}

        await wait_for(done, timeout=20)
    assert await publications(sessions) == {f"herald-{landed}": 1, f"herald-{lost}": 1}


async def test_a_live_claim_within_its_lease_is_not_taken_over(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
    )
    await _strand_as_publishing(sessions, target_id, claimed_ago=timedelta(seconds=1))
    assert await repair_stranded(sessions, redis, settings) == 0
