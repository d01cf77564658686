"""SIGTERM on a publisher: it stops taking jobs, finishes what it started, and exits; the jobs
it had not started are published by the next publisher, once."""

from __future__ import annotations

import signal

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget, SandboxPublication
from herald_common.settings import Settings
from herald_scheduler.enqueue import enqueue_due
from tests.conftest import Tenant
from tests.factories import insert_due_targets, queued_targets
from tests.services import service_env, spawn, stop, wait_for

TARGETS = 6


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(PostTarget.status, func.count()).group_by(PostTarget.status)
        )
        return {str(status): int(count) for status, count in rows.all()}


async def test_sigterm_finishes_in_flight_publishes_and_leaves_the_rest_queued(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    await insert_due_targets(
        sessions, tenant.workspace_id, count=TARGETS, accounts=1, due_at=clock.now()
    )
    # A job per target, two at a time: two in flight, four never started.
    await enqueue_due(sessions, redis, settings.model_copy(update={"publisher_job_size": 1}))
    env = service_env(
        settings,
        HERALD_PUBLISHER_PLATFORMS="sandbox",
        HERALD_PUBLISHER_MAX_JOBS="2",
        HERALD_SANDBOX_LATENCY_MS="1500",
        HERALD_PUBLISHER_GRACE_SECONDS="10",
    )
    publisher = spawn("herald-publisher", env)
    try:

        async def two_in_flight() -> bool:
            return (await statuses(sessions)).get("publishing", 0) == 2

        await wait_for(two_in_flight, timeout=20, interval=0.02)
        publisher.send_signal(signal.SIGTERM)
        assert publisher.wait(timeout=15) == 0
    finally:
        stop([publisher])
    after_stop = await statuses(sessions)
    # The two it had started went out; it took nothing new once told to stop.
    assert after_stop.get("published") == 2
    assert after_stop.get("publishing", 0) == 0
    assert after_stop.get("enqueued") == TARGETS - 2

    successor = spawn("herald-publisher", env | {"HERALD_SANDBOX_LATENCY_MS": "0"})
    try:

        async def all_published() -> bool:
            return await statuses(sessions) == {"published": TARGETS}

        await wait_for(all_published, timeout=30)
    finally:
        stop([successor])
    async with sessions() as session:
        counts = await session.execute(
            select(func.count())
            .select_from(SandboxPublication)
            .group_by(SandboxPublication.idempotency_key)
        )
        assert [n for (n,) in counts.all()] == [1] * TARGETS


async def test_sigterm_lets_the_scheduler_finish_its_batch_and_exit(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    await insert_due_targets(
        sessions, tenant.workspace_id, count=3000, accounts=10, due_at=clock.now()
    )
    env = service_env(settings, HERALD_SCHEDULER_BATCH_SIZE="100")
    scheduler = spawn("herald-scheduler", env)
    try:

        async def started() -> bool:
            return (await statuses(sessions)).get("enqueued", 0) > 0

        await wait_for(started, timeout=20, interval=0.01)
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(timeout=15) == 0
    finally:
        stop([scheduler])
    after = await statuses(sessions)
    # Whole batches only: every enqueued target has its job, the rest are still pending.
    assert after.get("enqueued", 0) % 100 == 0
    assert sum(after.values()) == 3000
    assert len(set(await queued_targets(redis))) == after.get("enqueued", 0)
