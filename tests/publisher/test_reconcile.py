"""The reconciliation pass: unknown targets on platforms that can be asked later are looked
for again, only by reading, and settle as published once found; the others stay unknown."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import ClassVar

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.accounts.refresh import TokenRefresher
from herald_common.crypto import TokenCipher
from herald_common.db.models import (
    Notification,
    Post,
    PostTarget,
    PublishAttempt,
    SandboxPublication,
    SocialAccount,
)
from herald_common.http import create_http_client
from herald_common.platforms.base import (
    ContentProblem,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
)
from herald_common.platforms.errors import CannotTell, Transient
from herald_common.platforms.registry import build_platforms
from herald_common.queue import (
    PUBLISH_TARGETS,
    RECONCILE_TARGETS,
    deserialize,
    queue_name,
)
from herald_common.settings import Settings
from herald_publisher.publish import PublisherDeps, publish_targets
from herald_publisher.reconcile import reconcile_targets
from herald_scheduler.enqueue import enqueue_due
from herald_scheduler.repair import enqueue_due_looks
from tests.conftest import Tenant
from tests.factories import insert_due_targets, load_target
from tests.fakes.mastodon import FakeMastodon
from tests.services import running_publisher, running_scheduler, wait_for

TOKEN = "alice-token"


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon(tokens={TOKEN: "alice"}, domain="mastodon.test") as server:
        yield server


@pytest.fixture
async def deps(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> AsyncIterator[PublisherDeps]:
    http = create_http_client(settings)
    yield PublisherDeps(
        settings=settings,
        sessions=sessions,
        redis=redis,
        platforms=build_platforms(settings, http, sessions),
        tokens=TokenRefresher(settings, sessions, redis, httpx.AsyncClient()),
        worker=socket.gethostname(),
    )
    await http.aclose()


@pytest.fixture
async def account(
    tenant: Tenant,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> uuid.UUID:
    async with sessions.begin() as session:
        row = SocialAccount(
            workspace_id=tenant.workspace_id,
            platform="mastodon",
            external_id=fake.account_for(TOKEN).id,
            handle="alice@mastodon.test",
            instance_url=fake.base_url,
            access_token_enc=TokenCipher.from_settings(settings).encrypt(TOKEN),
        )
        session.add(row)
        await session.flush()
        return row.id


async def run_queued_jobs(deps: PublisherDeps, redis: Redis, platform: str) -> list[str]:
    """Fire every job due by Herald's (movable) clock, as an arq worker would: publishes and
    looks alike."""
    functions = {PUBLISH_TARGETS: publish_targets, RECONCILE_TARGETS: reconcile_targets}
    results: list[str] = []
    now_ms = clock.now().timestamp() * 1000
    for job_id in await redis.zrangebyscore(queue_name(platform), 0, now_ms):
        raw = await redis.get(b"arq:job:" + job_id)
        assert raw is not None
        await redis.zrem(queue_name(platform), job_id)
        await redis.delete(b"arq:job:" + job_id)
        job = deserialize(raw)
        wanted = [(uuid.UUID(target_id), revision) for target_id, revision in job["a"][0]]
        results += (await functions[job["f"]](deps, wanted)).values()
    return results


async def statuses_of(sessions: async_sessionmaker[AsyncSession], post_id: uuid.UUID) -> str:
    async with sessions() as session:
        post = await session.get(Post, post_id)
        assert post is not None
        return post.status


async def notification_kinds(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list(await session.scalars(select(Notification.kind).order_by(Notification.id)))


async def test_a_mastodon_post_left_unknown_is_found_later_and_settles_as_published(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    """Accepted, answer lost, then held off past the hour Mastodon remembers the key: the
    target is unknown (a re-send could post twice), and the post is live. The pass reads
    the account's statuses and settles it, sending nothing."""
    created = await client.post(
        "/v1/posts",
        json={
            "content": "Hello, later",
            "scheduled_at": (clock.now() + timedelta(seconds=30)).isoformat(),
            "targets": [{"account_id": str(account)}],
        },
    )
    post_id = uuid.UUID(created.json()["id"])
    target_id = uuid.UUID(created.json()["targets"][0]["id"])
    await enqueue_due(sessions, redis, settings)
    clock.advance(timedelta(seconds=31))
    fake.drop_next(1)
    fake.rate_limit_next(1, reset_after=timedelta(minutes=56))
    assert await run_queued_jobs(deps, redis, "mastodon") == ["rate_limited"]
    clock.advance(timedelta(minutes=57))
    assert await run_queued_jobs(deps, redis, "mastodon") == ["outcome_unknown"]
    target = await load_target(sessions, target_id)
    assert target.status == "unknown"
    assert target.next_attempt_at is not None
    assert "Herald looks for it on mastodon again for a while" in (target.error or "")
    assert await statuses_of(sessions, post_id) == "needs_attention"
    posts_sent = [r for r in fake.requests if r.method == "POST"]

    # Not due yet: nothing to look at.
    assert await enqueue_due_looks(sessions, redis, settings) == 0
    clock.advance(timedelta(seconds=settings.reconcile_delays_seconds[0] + 1))
    assert await enqueue_due_looks(sessions, redis, settings) == 1
    assert await enqueue_due_looks(sessions, redis, settings) == 0  # its job is queued
    assert await run_queued_jobs(deps, redis, "mastodon") == ["found_later"]

    [status] = fake.statuses
    target = await load_target(sessions, target_id)
    assert (target.status, target.remote_id, target.remote_url) == (
        "published",
        status.id,
        f"https://mastodon.test/@alice/{status.id}",
    )
    assert (target.sent_at, target.next_attempt_at, target.error) == (None, None, None)
    assert [r for r in fake.requests if r.method == "POST"] == posts_sent  # nothing sent
    assert await statuses_of(sessions, post_id) == "published"
    assert await notification_kinds(sessions) == ["outcome_unknown", "outcome_settled"]
    async with sessions() as session:
        outcomes = list(
            await session.scalars(
                select(PublishAttempt.outcome)
                .where(PublishAttempt.target_id == target_id)
                .order_by(PublishAttempt.id)
            )
        )
    assert outcomes[-1] == "found_later"
    assert await enqueue_due_looks(sessions, redis, settings) == 0


class LateIndexer(Platform):
    """A platform that can be asked later, where a post never shows up (or shows up only
    after ``listed_after`` looks); it records every look and never expects a publish."""

    name = "sandbox"
    limits: ClassVar[tuple[RateLimit, ...]] = ()
    reconcilable = True

    def __init__(self, settings: Settings, *, listed_after: int | None = None) -> None:
        super().__init__(settings, httpx.AsyncClient())
        self.listed_after = listed_after
        self.looks = 0
        self.fail_next_look = False

    def validate(self, content: PostContent) -> list[ContentProblem]:
        return []

    async def publish(self, request: PublishRequest) -> Published:
        raise AssertionError("a look must never send the post")

    async def find_published(self, request: PublishRequest) -> Published | None:
        self.looks += 1
        if self.fail_next_look:
            self.fail_next_look = False
            raise Transient("503 while listing")
        if self.listed_after is not None and self.looks > self.listed_after:
            return Published("remote-late", "https://example.test/late")
        return None


class NoLookup(LateIndexer):
    """Like Telegram and Discord: nothing sent can be listed."""

    reconcilable = False

    async def find_published(self, request: PublishRequest) -> Published | None:
        self.looks += 1
        raise CannotTell("bots cannot list the messages they sent")


async def unknown_target(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, *, look_at: datetime | None
) -> uuid.UUID:
    """A target whose outcome was left unknown, as the publisher leaves one."""
    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
    )
    async with sessions.begin() as session:
        await session.execute(
            update(PostTarget)
            .where(PostTarget.id == target_id)
            .values(
                status="unknown",
                attempts=1,
                error_kind="outcome_unknown",
                error="The connection closed after the request was sent",
                sent_at=clock.now() - timedelta(minutes=1),
                next_attempt_at=look_at,
            )
        )
    return target_id


def pass_deps(deps: PublisherDeps, platform: Platform, settings: Settings) -> PublisherDeps:
    return PublisherDeps(
        settings=settings,
        sessions=deps.sessions,
        redis=deps.redis,
        platforms={"sandbox": platform},
        tokens=deps.tokens,
        worker=deps.worker,
    )


async def test_a_post_never_found_is_looked_for_on_the_schedule_then_left_to_a_person(
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
) -> None:
    settings = settings.model_copy(update={"reconcile_delays_seconds": [60.0, 300.0, 900.0]})
    platform = LateIndexer(settings)
    deps = pass_deps(deps, platform, settings)
    target_id = await unknown_target(sessions, tenant, look_at=clock.now())
    results = []
    platform.fail_next_look = True  # one look gets no answer: it counts, and the next comes
    for minutes in (0, 5, 15):
        clock.advance(timedelta(minutes=minutes, seconds=1))
        assert await enqueue_due_looks(sessions, redis, settings) == 1
        results += await run_queued_jobs(deps, redis, "sandbox")
        assert await enqueue_due_looks(sessions, redis, settings) == 0

    assert results == ["lookup_failed", "not_found_yet", "not_found_yet"]
    assert platform.looks == 3
    target = await load_target(sessions, target_id)
    assert (target.status, target.lookups, target.next_attempt_at) == ("unknown", 3, None)
    assert "looked for the post on sandbox 3 times" in (target.error or "")
    clock.advance(timedelta(days=1))
    assert await enqueue_due_looks(sessions, redis, settings) == 0


async def test_a_post_indexed_late_is_settled_on_a_later_look(
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
) -> None:
    platform = LateIndexer(settings, listed_after=1)
    deps = pass_deps(deps, platform, settings)
    target_id = await unknown_target(sessions, tenant, look_at=clock.now())
    results = []
    for delay in settings.reconcile_delays_seconds[:2]:
        clock.advance(timedelta(seconds=delay + 1))
        await enqueue_due_looks(sessions, redis, settings)
        results += await run_queued_jobs(deps, redis, "sandbox")

    assert results == ["not_found_yet", "found_later"]
    target = await load_target(sessions, target_id)
    assert (target.status, target.remote_id) == ("published", "remote-late")


async def test_a_platform_that_cannot_be_asked_later_is_never_looked_at(
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
) -> None:
    """Telegram and Discord cannot list what was sent: their unknowns get no look at all."""
    platform = NoLookup(settings)
    deps = pass_deps(deps, platform, settings)
    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
    )
    async with sessions.begin() as session:
        await session.execute(
            update(PostTarget)
            .where(PostTarget.id == target_id)
            .values(status="publishing", attempts=1, claim_id=uuid.uuid4(),
                    claimed_at=clock.now() - timedelta(hours=1),
                    sent_at=clock.now() - timedelta(hours=1))
        )  # fmt: skip

    # A dead worker's request may have left, and this platform cannot tell.
    assert await publish_targets(deps, [(target_id, 1)]) == {target_id: "outcome_unknown"}
    target = await load_target(sessions, target_id)
    assert (target.status, target.next_attempt_at) == ("unknown", None)
    clock.advance(timedelta(days=1))
    assert await enqueue_due_looks(sessions, redis, settings) == 0
    assert platform.looks == 1  # the reclaim's own question, nothing after


async def test_a_look_queued_before_a_person_retried_changes_nothing(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
) -> None:
    platform = LateIndexer(settings, listed_after=0)
    deps = pass_deps(deps, platform, settings)
    target_id = await unknown_target(sessions, tenant, look_at=clock.now())
    assert await enqueue_due_looks(sessions, redis, settings) == 1
    target = await load_target(sessions, target_id)
    retried = await client.post(
        f"/v1/posts/{target.post_id}/targets/{target_id}/retry",
        json={"accept_duplicate_risk": True},
    )
    assert retried.status_code == 200, retried.text

    assert await run_queued_jobs(deps, redis, "sandbox") == ["stale"]
    assert platform.looks == 0
    assert (await load_target(sessions, target_id)).status == "pending"


async def test_the_running_scheduler_and_publisher_settle_an_unknown_target(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    tenant: Tenant,
) -> None:
    """The same with the services running as they do in production: the scheduler's repair
    pass notices the look is due, a publisher's arq worker looks, on the sandbox's own
    record."""
    settings = settings.model_copy(update={"scheduler_repair_interval_seconds": 0.2})
    target_id = await unknown_target(sessions, tenant, look_at=clock.now())
    target = await load_target(sessions, target_id)
    async with sessions.begin() as session:
        publication = SandboxPublication(
            workspace_id=tenant.workspace_id,
            account_id=target.account_id,
            idempotency_key=f"herald-{target_id}",
            text="bulk post 0",
        )
        session.add(publication)

    async with running_scheduler(settings, sessions), running_publisher(settings):

        async def settled() -> bool:
            return (await load_target(sessions, target_id)).status == "published"

        await wait_for(settled, timeout=30)
    target = await load_target(sessions, target_id)
    assert target.remote_id == str(publication.id)
    async with sessions() as session:
        copies = await session.scalars(
            select(SandboxPublication).where(
                SandboxPublication.idempotency_key == f"herald-{target_id}"
            )
        )
        assert len(list(copies)) == 1
