"""What a publish job records in Prometheus: lateness, outcomes, token-bucket waits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget
from herald_common.platforms.errors import Rejected
from herald_common.ratelimit import acquire, buckets_for
from herald_common.settings import Settings
from herald_publisher.publish import publish_target
from tests.conftest import Tenant
from tests.factories import insert_due_targets
from tests.publisher.conftest import publisher_deps
from tests.publisher.test_publish import ScriptedPlatform, ok, raises


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def lateness_bucket(le: str) -> float:
    return sample("herald_publish_lateness_seconds_bucket", platform="sandbox", le=le)


@pytest.fixture
async def due_target(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> uuid.UUID:
    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
    )
    async with sessions.begin() as session:
        await session.execute(
            update(PostTarget).where(PostTarget.id == target_id).values(status="enqueued")
        )
    return target_id


async def test_a_publication_observes_its_lateness(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    due_target: uuid.UUID,
) -> None:
    before = {le: lateness_bucket(le) for le in ("300.0", "900.0", "+Inf")}
    published_before = sample("herald_publish_total", platform="sandbox", outcome="published")
    # The worker picks the job up ten minutes after its time (a backlog, say).
    clock.advance(timedelta(minutes=10))

    platform = ScriptedPlatform(settings, [ok], lambda: None)
    assert await publish_target(
        publisher_deps(settings, sessions, redis, platform), due_target, 1
    ) == ("published")

    after = {le: lateness_bucket(le) for le in before}
    assert after["300.0"] == before["300.0"]
    assert after["900.0"] == before["900.0"] + 1
    assert after["+Inf"] == before["+Inf"] + 1
    assert sample("herald_publish_total", platform="sandbox", outcome="published") == (
        published_before + 1
    )


async def test_failures_are_counted_by_error_kind_without_lateness(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    due_target: uuid.UUID,
) -> None:
    rejected_before = sample("herald_publish_total", platform="sandbox", outcome=Rejected.kind)
    observed_before = lateness_bucket("+Inf")

    platform = ScriptedPlatform(settings, [raises(Rejected("no links allowed"))], lambda: None)
    assert await publish_target(
        publisher_deps(settings, sessions, redis, platform), due_target, 1
    ) == (Rejected.kind)

    assert sample("herald_publish_total", platform="sandbox", outcome=Rejected.kind) == (
        rejected_before + 1
    )
    assert lateness_bucket("+Inf") == observed_before


async def test_an_empty_token_bucket_observes_the_wait(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
    due_target: uuid.UUID,
) -> None:
    platform = ScriptedPlatform(settings, [ok], lambda: None)
    async with sessions() as session:
        target = await session.get(PostTarget, due_target)
        assert target is not None
        account_id = target.account_id
    # Someone else spent this account's two tokens per hour.
    buckets = buckets_for("sandbox", platform.limits, account_id)
    assert await acquire(redis, buckets) == 0
    assert await acquire(redis, buckets) == 0
    waits_before = sample("herald_ratelimit_wait_seconds_count", platform="sandbox")
    long_waits_before = sample(
        "herald_ratelimit_wait_seconds_bucket", platform="sandbox", le="900.0"
    )

    assert await publish_target(
        publisher_deps(settings, sessions, redis, platform), due_target, 1
    ) == ("rate_limited")

    assert sample("herald_ratelimit_wait_seconds_count", platform="sandbox") == waits_before + 1
    # A refill of one token takes half an hour: not within the 15-minute bucket.
    assert (
        sample("herald_ratelimit_wait_seconds_bucket", platform="sandbox", le="900.0")
        == long_waits_before
    )
