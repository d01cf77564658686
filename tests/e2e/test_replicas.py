"""Two schedulers and two publishers, each its own OS process, over 500 due targets:
every target is published exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget, PublishAttempt, SandboxPublication
from herald_common.settings import Settings
from tests.conftest import Tenant, free_port
from tests.factories import insert_due_targets
from tests.services import (
    SPAWNING_TEST_TIMEOUT_SECONDS,
    service_env,
    spawn,
    stop,
    wait_for,
    wait_ready,
)

TARGETS = 500


@pytest.mark.timeout(SPAWNING_TEST_TIMEOUT_SECONDS)
async def test_two_schedulers_and_two_publishers_publish_each_target_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis, tenant: Tenant
) -> None:
    # Both publishers answer /readyz (their poll loops turn) before anything falls due, and
    # jobs of 10 make 50 jobs, more than one worker runs at once (max_jobs 10): neither copy
    # can drain the spike alone before the other starts.
    ports = [free_port(), free_port()]
    env = service_env(
        settings, HERALD_PUBLISHER_PLATFORMS="sandbox", HERALD_PUBLISHER_JOB_SIZE="10"
    )
    processes = [spawn("herald-scheduler", env) for _ in range(2)]
    processes += [
        spawn("herald-publisher", {**env, "HERALD_METRICS_PORT": str(port)}) for port in ports
    ]
    try:
        await wait_ready(processes[2:], [f"http://127.0.0.1:{port}" for port in ports])
    except BaseException:
        stop(processes)
        raise
    due = clock.now() + timedelta(seconds=1)
    target_ids = await insert_due_targets(
        sessions, tenant.workspace_id, count=TARGETS, accounts=20, due_at=due
    )

    async def all_published() -> bool:
        for process in processes:
            assert process.poll() is None, f"{process.args!r} exited with {process.returncode}"
        async with sessions() as session:
            published = await session.scalar(
                select(func.count())
                .select_from(PostTarget)
                .where(PostTarget.id.in_(target_ids), PostTarget.status == "published")
            )
        return published == TARGETS

    try:
        await wait_for(all_published, timeout=90, interval=0.2)
    finally:
        stop(processes)

    async with sessions() as session:
        per_target = dict(
            (
                await session.execute(
                    select(SandboxPublication.idempotency_key, func.count()).group_by(
                        SandboxPublication.idempotency_key
                    )
                )
            ).all()
        )
        attempts = await session.scalar(
            select(func.count())
            .select_from(PublishAttempt)
            .where(PublishAttempt.outcome == "published")
        )
        earliest = await session.scalar(select(func.min(SandboxPublication.published_at)))
    assert len(per_target) == TARGETS
    assert set(per_target.values()) == {1}
    assert attempts == TARGETS
    assert earliest is not None and earliest >= due
    # Both publisher processes took part (the work really was shared).
    async with sessions() as session:
        workers = await session.scalar(select(func.count(func.distinct(PublishAttempt.worker))))
    assert workers == 2
