"""The scheduler's pass: exact deferral, deterministic job ids, and crash safety."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget, SandboxPublication
from herald_common.queue import PublishJob, deserialize, enqueue_publish_jobs, queue_name
from herald_common.settings import Settings
from herald_scheduler import enqueue
from tests.conftest import Tenant
from tests.factories import insert_due_targets, queued_targets
from tests.locks import wait_until_blocked
from tests.services import running_publisher, wait_for


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(PostTarget.status, func.count()).group_by(PostTarget.status)
        )
        return dict(rows.all())


async def test_due_targets_are_enqueued_at_their_exact_time_and_far_ones_wait(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    soon = clock.now() + timedelta(minutes=10)
    later = clock.now() + timedelta(minutes=20)
    [due_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=soon
    )
    await insert_due_targets(sessions, tenant.workspace_id, count=1, accounts=1, due_at=later)

    assert await enqueue.enqueue_due(sessions, redis, settings) == 1
    queued = await redis.zrange(queue_name("sandbox"), 0, -1, withscores=True)
    assert queued == [(f"pub:{due_id}:1:1".encode(), int(soon.timestamp() * 1000))]
    assert await statuses(sessions) == {"enqueued": 1, "pending": 1}


async def test_two_scheduler_passes_at_once_take_disjoint_targets(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    due = clock.now() + timedelta(seconds=30)
    await insert_due_targets(sessions, tenant.workspace_id, count=300, accounts=3, due_at=due)
    small = settings.model_copy(update={"scheduler_batch_size": 50})
    moved = await asyncio.gather(*(enqueue.enqueue_due(sessions, redis, small) for _ in range(4)))
    assert sum(moved) == 300
    carried = await queued_targets(redis)
    assert len(carried) == len(set(carried)) == 300
    assert await statuses(sessions) == {"enqueued": 300}


async def test_targets_due_together_share_jobs_of_the_configured_size(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    due = clock.now() + timedelta(seconds=30)
    other = due + timedelta(milliseconds=1)
    together = await insert_due_targets(
        sessions, tenant.workspace_id, count=45, accounts=5, due_at=due
    )
    [alone] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=other
    )
    sized = settings.model_copy(update={"publisher_job_size": 20})
    assert await enqueue.enqueue_due(sessions, redis, sized) == 46
    queued = await redis.zrange(queue_name("sandbox"), 0, -1, withscores=True)
    # 45 due at one instant: jobs of 20, 20 and 5 at that instant; the one due a millisecond
    # later keeps a job (and its plain id) of its own, at its own time.
    scores = sorted(score for _, score in queued)
    assert scores == [int(due.timestamp() * 1000)] * 3 + [int(other.timestamp() * 1000)]
    sizes = []
    for job_id, _ in queued:
        [targets] = deserialize(await redis.get(b"arq:job:" + job_id) or b"")["a"]
        sizes.append(len(targets))
    assert sorted(sizes) == [1, 5, 20, 20]
    assert f"pub:{alone}:1:1".encode() in {job_id for job_id, _ in queued}
    assert sorted(await queued_targets(redis)) == sorted(map(str, [*together, alone]))


async def test_crash_between_enqueue_and_commit_leads_to_no_duplicate(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    due = clock.now() + timedelta(seconds=1)
    targets = await insert_due_targets(
        sessions, tenant.workspace_id, count=20, accounts=2, due_at=due
    )

    async def enqueue_then_die(redis: Redis, jobs: Sequence[PublishJob]) -> int:
        await enqueue_publish_jobs(redis, jobs)
        raise ConnectionResetError("scheduler lost its database connection")

    with monkeypatch.context() as patch:
        patch.setattr(enqueue, "enqueue_publish_jobs", enqueue_then_die)
        with pytest.raises(ConnectionResetError):
            await enqueue.enqueue_due(sessions, redis, settings)
    # The jobs reached Redis, the transaction did not commit: still pending.
    jobs = await redis.zrange(queue_name("sandbox"), 0, -1)
    assert sorted(await queued_targets(redis)) == sorted(map(str, targets))
    assert await statuses(sessions) == {"pending": 20}

    # The next pass enqueues the same job ids again: Redis keeps one job per id.
    assert await enqueue.enqueue_due(sessions, redis, settings) == 20
    assert await redis.zrange(queue_name("sandbox"), 0, -1) == jobs
    assert sorted(await queued_targets(redis)) == sorted(map(str, targets))

    async with running_publisher(settings):

        async def done() -> bool:
            return await statuses(sessions) == {"published": 20}

        await wait_for(done, timeout=20)
    async with sessions() as session:
        counts = (
            await session.execute(
                select(SandboxPublication.idempotency_key, func.count()).group_by(
                    SandboxPublication.idempotency_key
                )
            )
        ).all()
    assert sorted(key for key, _ in counts) == sorted(f"herald-{t}" for t in targets)
    assert {n for _, n in counts} == {1}


async def test_job_that_fires_before_a_crashed_pass_committed_publishes_once(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job due at once can run while the pass that enqueued it still holds the row lock. Its
    claim waits for that pass; when the pass dies instead of committing, the job publishes the
    still-pending target, and the next pass neither re-enqueues nor publishes it again."""
    due = clock.now() - timedelta(seconds=1)
    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=due
    )
    async with running_publisher(settings):
        with monkeypatch.context() as patch:

            async def slow_death(redis: Redis, jobs: Sequence[PublishJob]) -> int:
                await enqueue_publish_jobs(redis, jobs)
                # The job fires and its claim waits on this pass's row lock: only then does
                # the pass die, so the claim is proven to overlap it.
                await wait_until_blocked(sessions)
                raise ConnectionResetError("scheduler died")

            patch.setattr(enqueue, "enqueue_publish_jobs", slow_death)
            with pytest.raises(ConnectionResetError):
                await enqueue.enqueue_due(sessions, redis, settings)

        async def published() -> bool:
            return await statuses(sessions) == {"published": 1}

        await wait_for(published, timeout=10)
        assert await enqueue.enqueue_due(sessions, redis, settings) == 0
    async with sessions() as session:
        n = await session.scalar(
            select(func.count())
            .select_from(SandboxPublication)
            .where(SandboxPublication.idempotency_key == f"herald-{target_id}")
        )
    assert n == 1
