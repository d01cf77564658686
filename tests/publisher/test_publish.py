"""The publisher's handling of one job: claim guard, rate limits, failures, reconciliation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import Post, PostTarget, PublishAttempt, SocialAccount
from herald_common.platforms.base import (
    ContentProblem,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
)
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.queue import queue_name
from herald_common.ratelimit import acquire, buckets_for
from herald_common.settings import Settings
from herald_publisher.publish import PublisherDeps, publish_target
from tests.conftest import Tenant
from tests.factories import insert_due_targets, load_target
from tests.locks import backend_pid, wait_until_blocked


class ScriptedPlatform(Platform):
    """A platform double: each publish call takes the next scripted behaviour."""

    name = "sandbox"
    limits: ClassVar[tuple[RateLimit, ...]] = (
        RateLimit("posts", capacity=2, per_seconds=3600, scope="account"),
    )

    def __init__(
        self,
        settings: Settings,
        script: list[Callable[[], Published]],
        found: Callable[[], Published | None],
    ) -> None:
        super().__init__(settings, httpx.AsyncClient())
        self.script = script
        self.found = found
        self.calls: list[PublishRequest] = []

    def validate(self, content: PostContent) -> list[ContentProblem]:
        return [ContentProblem("content", "too long")] if len(content.text) > 20 else []

    async def publish(self, request: PublishRequest) -> Published:
        self.calls.append(request)
        return self.script.pop(0)()

    async def find_published(self, request: PublishRequest) -> Published | None:
        return self.found()


class UnlimitedPlatform(ScriptedPlatform):
    limits: ClassVar[tuple[RateLimit, ...]] = ()


def ok() -> Published:
    return Published("remote-1", "https://example.test/1")


def raises(exc: Exception) -> Callable[[], Published]:
    def behaviour() -> Published:
        raise exc

    return behaviour


@pytest.fixture
async def target(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> uuid.UUID:
    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
    )
    async with sessions.begin() as session:
        row = await session.get(PostTarget, target_id)
        assert row is not None
        row.status = "enqueued"
    return target_id


async def test_published_target_records_remote_id_and_post_status(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    platform = ScriptedPlatform(settings, [ok], lambda: None)
    assert await publish_target(make_deps(platform), target, 1) == "published"
    row = await load_target(sessions, target)
    assert (row.status, row.remote_id, row.attempts, row.claim_id) == (
        "published",
        "remote-1",
        1,
        None,
    )
    assert platform.calls[0].idempotency_key == f"herald-{target}"
    async with sessions() as session:
        post = await session.get(Post, row.post_id)
        assert post is not None and post.status == "published"


async def test_stale_revision_and_duplicate_jobs_do_nothing(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    platform = ScriptedPlatform(settings, [ok, ok], lambda: None)
    deps = make_deps(platform)
    assert await publish_target(deps, target, 0) == "stale"
    assert await publish_target(deps, target, 1) == "published"
    assert await publish_target(deps, target, 1) == "stale"
    assert len(platform.calls) == 1


async def test_rate_limited_job_is_re_deferred_without_using_an_attempt(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    platform = ScriptedPlatform(settings, [ok], lambda: None)
    row = await load_target(sessions, target)
    # Someone else used this account's two tokens.
    buckets = buckets_for("sandbox", platform.limits, row.account_id)
    assert await acquire(redis, buckets) == 0
    assert await acquire(redis, buckets) == 0

    assert await publish_target(make_deps(platform), target, 1) == "rate_limited"
    assert platform.calls == []
    row = await load_target(sessions, target)
    assert (row.status, row.attempts, row.error_kind) == ("enqueued", 0, "rate_limited")
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > clock.now() + timedelta(minutes=20)
    queued = await redis.zrange(queue_name("sandbox"), 0, -1, withscores=True)
    assert len(queued) == 1
    job_id, score = queued[0]
    assert job_id.decode().startswith(f"pub:{target}:1:1:w")
    assert score == int(row.next_attempt_at.timestamp() * 1000)


async def test_platform_429_drains_the_bucket_and_re_defers(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    platform = ScriptedPlatform(
        settings, [raises(RateLimited("slow down", retry_after=120, http_status=429))], lambda: None
    )
    assert await publish_target(make_deps(platform), target, 1) == "rate_limited"
    row = await load_target(sessions, target)
    assert (row.status, row.attempts) == ("enqueued", 0)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= clock.now() + timedelta(seconds=100)
    # No other worker gets a token before the platform's reset.
    wait = await acquire(redis, buckets_for("sandbox", platform.limits, row.account_id))
    assert wait > 100


async def test_transient_failures_retry_on_schedule_then_fail(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    delays = settings.publisher_retry_delays_seconds
    failure = raises(Transient("503 from platform", http_status=503))
    platform = UnlimitedPlatform(settings, [failure] * (len(delays) + 1), lambda: None)
    deps = make_deps(platform)
    assert delays[0] < 10 < 60 == delays[1]  # seconds first, then minutes (1, 5, 15)
    for attempt, delay in enumerate(delays, start=1):
        before = clock.now()
        assert await publish_target(deps, target, 1) == "transient"
        row = await load_target(sessions, target)
        assert (row.status, row.attempts) == ("retrying", attempt)
        assert row.next_attempt_at is not None
        # Never sooner than its delay, at most the jitter's share later (then rounded up).
        waited = (row.next_attempt_at - before).total_seconds()
        assert delay <= waited <= delay * (1 + settings.publisher_retry_jitter) + 1
        assert (
            await redis.zscore(queue_name("sandbox"), f"pub:{target}:1:{attempt + 1}") is not None
        )
    assert await publish_target(deps, target, 1) == "transient"
    row = await load_target(sessions, target)
    assert (row.status, row.attempts, row.error) == ("failed", len(delays) + 1, "503 from platform")
    async with sessions() as session:
        outcomes = (
            await session.scalars(
                select(PublishAttempt.outcome).where(PublishAttempt.target_id == target)
            )
        ).all()
        post = await session.get(Post, row.post_id)
    assert outcomes == ["transient"] * (len(delays) + 1)
    assert post is not None and post.status == "failed"


async def test_rejected_fails_at_once_with_the_platforms_reason(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    platform = ScriptedPlatform(
        settings,
        [
            raises(
                Rejected("Validation failed: Text character limit of 500 exceeded", http_status=422)
            )
        ],
        lambda: None,
    )
    assert await publish_target(make_deps(platform), target, 1) == "rejected"
    row = await load_target(sessions, target)
    assert (row.status, row.error_kind) == ("failed", "rejected")
    assert row.error == "Validation failed: Text character limit of 500 exceeded"


async def test_content_invalid_at_publish_time_is_rejected_without_calling_the_platform(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    async with sessions.begin() as session:
        row = await session.get(PostTarget, target)
        assert row is not None
        row.content_override = "x" * 21
    platform = ScriptedPlatform(settings, [ok], lambda: None)
    assert await publish_target(make_deps(platform), target, 1) == "rejected"
    assert platform.calls == []


async def test_auth_expired_marks_the_account(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    platform = ScriptedPlatform(
        settings, [raises(AuthExpired("token revoked", http_status=401))], lambda: None
    )
    assert await publish_target(make_deps(platform), target, 1) == "auth_expired"
    row = await load_target(sessions, target)
    async with sessions() as session:
        account = await session.get(SocialAccount, row.account_id)
    assert account is not None and account.status == "requires_reauth"


@pytest.mark.parametrize(
    ("found", "status"),
    [
        (lambda: Published("remote-9", None), "published"),
        (lambda: None, "retrying"),
        (raises(CannotTell("no lookup")), "unknown"),
    ],
)
async def test_unknown_outcome_asks_the_platform_and_never_posts_blindly(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
    found: Callable[[], Published | None],
    status: str,
) -> None:
    platform = ScriptedPlatform(
        settings, [raises(OutcomeUnknown("connection dropped after send"))], found
    )
    await publish_target(make_deps(platform), target, 1)
    row = await load_target(sessions, target)
    assert row.status == status
    assert len(platform.calls) == 1
    if status == "published":
        assert row.remote_id == "remote-9"


@pytest.mark.parametrize(("sent", "status"), [(False, "published"), (True, "unknown")])
async def test_a_dead_workers_target_on_a_platform_that_cannot_tell_is_unknown_only_if_sent(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    target: uuid.UUID,
    make_deps: Callable[..., PublisherDeps],
    sent: bool,
    status: str,
) -> None:
    """Issue 17: on Telegram or Discord every reclaimed target became unknown, even those
    whose request had never left; only one that may have left must."""
    lapsed = clock.now() - timedelta(seconds=settings.publisher_claim_lease_seconds + 1)
    async with sessions.begin() as session:
        row = await session.get(PostTarget, target)
        assert row is not None
        row.status, row.attempts, row.claim_id, row.claimed_at = (
            "publishing",
            1,
            uuid.uuid4(),
            lapsed,
        )
        row.sent_at = lapsed if sent else None
    platform = ScriptedPlatform(settings, [ok], raises(CannotTell("bots cannot list messages")))

    await publish_target(make_deps(platform), target, 1)

    row = await load_target(sessions, target)
    assert row.status == status
    assert len(platform.calls) == (0 if sent else 1)
    if sent:
        assert (row.error or "").startswith("The attempt that sent the request was cut off")


async def test_claim_waits_for_an_uncommitted_enqueue(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    make_deps: Callable[..., PublisherDeps],
) -> None:
    """A job that fires before the scheduler's batch commits must wait on the row lock and
    then publish, not skip the row."""
    import asyncio

    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
    )
    platform = ScriptedPlatform(settings, [ok], lambda: None)
    async with sessions() as scheduler_session:
        row = await scheduler_session.get(PostTarget, target_id, with_for_update=True)
        assert row is not None
        job = asyncio.create_task(publish_target(make_deps(platform), target_id, 1))
        # The claim waits on the row lock the scheduler's uncommitted batch holds.
        await wait_until_blocked(sessions, holder=await backend_pid(scheduler_session))
        assert not job.done()
        row.status = "enqueued"
        await scheduler_session.commit()
    assert await job == "published"
