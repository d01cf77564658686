"""A job carrying many targets: each is claimed, published and recorded on its own terms."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar

import httpx
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import Notification, Post, PostTarget, PublishAttempt
from herald_common.platforms.base import (
    ContentProblem,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
)
from herald_common.platforms.errors import RateLimited, Rejected, Transient
from herald_common.queue import deserialize, queue_name
from herald_common.settings import Settings
from herald_publisher.publish import PublisherDeps, publish_targets
from tests.conftest import Tenant
from tests.factories import insert_due_targets

Behaviour = Callable[[PublishRequest], Published]


def ok(request: PublishRequest) -> Published:
    return Published(f"remote-{request.target_id}", f"https://example.test/{request.target_id}")


def raises(exc: Exception) -> Behaviour:
    def behaviour(_request: PublishRequest) -> Published:
        raise exc

    return behaviour


class KeyedPlatform(Platform):
    """A platform double answering each target its own way (jobs publish concurrently, so
    the order of calls says nothing), after a short delay like a real network."""

    name = "sandbox"
    limits: ClassVar[tuple[RateLimit, ...]] = ()

    def __init__(
        self,
        settings: Settings,
        behaviours: dict[uuid.UUID, Behaviour] | None = None,
        found: set[uuid.UUID] | None = None,
    ) -> None:
        super().__init__(settings, httpx.AsyncClient())
        self.behaviours = behaviours or {}
        self.found = found or set()
        self.calls: Counter[uuid.UUID] = Counter()
        self.asked: Counter[uuid.UUID] = Counter()

    def validate(self, content: PostContent) -> list[ContentProblem]:
        return []

    async def publish(self, request: PublishRequest) -> Published:
        assert request.target_id is not None
        self.calls[request.target_id] += 1
        await asyncio.sleep(0.01)
        return self.behaviours.get(request.target_id, ok)(request)

    async def find_published(self, request: PublishRequest) -> Published | None:
        assert request.target_id is not None
        self.asked[request.target_id] += 1
        return ok(request) if request.target_id in self.found else None


async def enqueued_targets(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, count: int
) -> list[uuid.UUID]:
    ids = await insert_due_targets(
        sessions, tenant.workspace_id, count=count, accounts=3, due_at=clock.now()
    )
    async with sessions.begin() as session:
        await session.execute(
            update(PostTarget).where(PostTarget.id.in_(ids)).values(status="enqueued")
        )
    return ids


async def rows(sessions: async_sessionmaker[AsyncSession]) -> dict[uuid.UUID, PostTarget]:
    async with sessions() as session:
        return {t.id: t for t in (await session.scalars(select(PostTarget))).all()}


async def test_a_job_of_many_targets_publishes_and_records_each_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    targets = await enqueued_targets(sessions, tenant, 30)
    platform = KeyedPlatform(settings)
    results = await publish_targets(make_deps(platform), [(t, 1) for t in targets])

    assert results == dict.fromkeys(targets, "published")
    assert platform.calls == Counter(targets)
    saved = await rows(sessions)
    assert {(t.status, t.remote_id, t.attempts, t.claim_id) for t in saved.values()} == {
        ("published", f"remote-{t}", 1, None) for t in targets
    }
    async with sessions() as session:
        attempts = Counter(await session.scalars(select(PublishAttempt.target_id)))
        posts = set(await session.scalars(select(Post.status)))
    assert attempts == Counter(targets)
    assert posts == {"published"}


async def test_each_target_of_a_job_keeps_its_own_outcome(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    tenant: Tenant,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    published, rejected, flaky, limited, stale = await enqueued_targets(sessions, tenant, 5)
    async with sessions.begin() as session:  # rescheduled after its job was enqueued
        await session.execute(
            update(PostTarget).where(PostTarget.id == stale).values(revision=2, status="pending")
        )
    platform = KeyedPlatform(
        settings,
        {
            rejected: raises(Rejected("text refused", http_status=422)),
            flaky: raises(Transient("503 from the platform", http_status=503)),
            limited: raises(RateLimited("slow down", retry_after=30.0, http_status=429)),
        },
    )
    results = await publish_targets(
        make_deps(platform), [(t, 1) for t in (published, rejected, flaky, limited, stale)]
    )

    assert results == {
        published: "published",
        rejected: "rejected",
        flaky: "transient",
        limited: "rate_limited",
        stale: "stale",
    }
    saved = await rows(sessions)
    assert saved[published].status == "published"
    assert (saved[rejected].status, saved[rejected].error_kind) == ("failed", "rejected")
    assert (saved[flaky].status, saved[flaky].attempts) == ("retrying", 1)
    # A rate-limited hand-back keeps its attempt for later.
    assert (saved[limited].status, saved[limited].attempts) == ("enqueued", 0)
    assert (saved[stale].status, saved[stale].revision) == ("pending", 2)
    assert platform.calls[stale] == 0
    async with sessions() as session:
        notified = set(await session.scalars(select(Notification.target_id)))
    assert notified == {rejected}
    # The retry and the rate-limit wait each have a job at their own time.
    jobs = await redis.zrange(queue_name("sandbox"), 0, -1, withscores=True)
    carried = {}
    for job_id, score in jobs:
        [targets] = deserialize(await redis.get(b"arq:job:" + job_id) or b"")["a"]
        for target_id, revision in targets:
            carried[uuid.UUID(target_id)] = (revision, score)
    assert carried.keys() == {flaky, limited}
    flaky_due, limited_due = saved[flaky].next_attempt_at, saved[limited].next_attempt_at
    assert flaky_due is not None and limited_due is not None
    assert carried[flaky] == (1, int(flaky_due.timestamp() * 1000))
    assert carried[limited] == (1, int(limited_due.timestamp() * 1000))


class LimitedPlatform(KeyedPlatform):
    limits: ClassVar[tuple[RateLimit, ...]] = (
        RateLimit("posts", capacity=2, per_seconds=86_400, scope="account"),
    )


async def test_a_job_spends_each_accounts_tokens_once_per_target(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    targets = await insert_due_targets(
        sessions, tenant.workspace_id, count=5, accounts=1, due_at=clock.now()
    )
    platform = LimitedPlatform(settings)
    results = await publish_targets(make_deps(platform), [(t, 1) for t in targets])

    # One account, two tokens: two go out, three wait for the bucket, none is sent.
    assert Counter(results.values()) == {"published": 2, "rate_limited": 3}
    assert platform.calls == Counter(t for t, r in results.items() if r == "published")


async def test_copies_of_a_job_running_at_once_publish_each_target_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    """Overlapping jobs (a repeated scheduler pass, a repair) claim in one lock order: they
    wait for each other rather than deadlock, and each target goes out once."""
    targets = await enqueued_targets(sessions, tenant, 40)
    platform = KeyedPlatform(settings)
    deps = make_deps(platform)
    wanted = [(t, 1) for t in targets]
    runs = await asyncio.gather(
        publish_targets(deps, wanted),
        publish_targets(deps, wanted[::-1]),
        publish_targets(deps, wanted[10:30]),
        *(publish_targets(deps, [w]) for w in wanted[::7]),
    )

    assert platform.calls == Counter(targets)
    outcomes = Counter(result for run in runs for result in run.values())
    assert outcomes == {"published": 40, "stale": 40 + 20 + len(wanted[::7])}
    assert {t.status for t in (await rows(sessions)).values()} == {"published"}


async def test_a_lapsed_claim_is_asked_about_only_if_its_request_may_have_left(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    landed, absent, never_left, fresh = await enqueued_targets(sessions, tenant, 4)
    lapsed_at = clock.now() - timedelta(seconds=settings.publisher_claim_lease_seconds + 5)
    async with sessions.begin() as session:  # a worker died mid-publish on these three ...
        await session.execute(
            update(PostTarget)
            .where(PostTarget.id.in_([landed, absent, never_left]))
            .values(status="publishing", attempts=1, claim_id=uuid.uuid4(), claimed_at=lapsed_at)
        )
        # ... after the requests of two had (perhaps) gone out.
        await session.execute(
            update(PostTarget)
            .where(PostTarget.id.in_([landed, absent]))
            .values(sent_at=lapsed_at + timedelta(seconds=1))
        )
    platform = KeyedPlatform(settings, found={landed})
    wanted = [(t, 1) for t in (landed, absent, never_left, fresh)]
    results = await publish_targets(make_deps(platform), wanted)

    assert results == dict.fromkeys((landed, absent, never_left, fresh), "published")
    # Only the two whose requests may have left were asked about; the dead worker's request
    # for `landed` had reached the platform, so it is not sent again.
    assert platform.asked == Counter([landed, absent])
    assert platform.calls == Counter([absent, never_left, fresh])
    saved = await rows(sessions)
    assert [saved[t].attempts for t in (landed, absent, never_left, fresh)] == [2, 2, 2, 1]
    assert {saved[t].sent_at for t in saved} == {None}


async def test_the_request_may_have_left_is_committed_before_it_is_sent(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    """What a worker killed mid-request would leave behind: each request's "may have left"
    already committed when it goes out, and a target whose attempt stopped before sending
    (here a bug of ours in validation) without one, so a reclaim simply sends it."""
    *sent, broken = await enqueued_targets(sessions, tenant, 5)
    committed_when_sent: dict[uuid.UUID, bool] = {}

    class Watching(KeyedPlatform):
        def validate(self, content: PostContent) -> list[ContentProblem]:
            if content.text == "boom":
                raise RuntimeError("a bug of ours, before sending")
            return []

        async def publish(self, request: PublishRequest) -> Published:
            async with sessions() as session:  # another connection: sees commits only
                row = await session.get(PostTarget, request.target_id)
                committed_when_sent[request.target_id] = row is not None and row.sent_at is not None
            return await super().publish(request)

    async with sessions.begin() as session:
        await session.execute(
            update(PostTarget).where(PostTarget.id == broken).values(content_override="boom")
        )
    results = await publish_targets(
        make_deps(Watching(settings)), [(t, 1) for t in [*sent, broken]]
    )

    assert results == {**dict.fromkeys(sent, "published"), broken: "crashed"}
    assert committed_when_sent == dict.fromkeys(sent, True)
    saved = await rows(sessions)
    assert (saved[broken].status, saved[broken].sent_at) == ("publishing", None)
    assert {saved[t].sent_at for t in sent} == {None}  # cleared once published


async def test_a_crashed_attempt_stays_claimed_while_the_rest_of_its_job_is_recorded(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: Tenant,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    broken, fine = await enqueued_targets(sessions, tenant, 2)
    platform = KeyedPlatform(settings, {broken: raises(RuntimeError("a bug of ours"))})
    results = await publish_targets(make_deps(platform), [(broken, 1), (fine, 1)])

    # Whether `broken` went out is unknown to us: it waits for its lease and a reclaim, which
    # asks the platform before sending anything.
    assert results == {broken: "crashed", fine: "published"}
    saved = await rows(sessions)
    assert saved[broken].status == "publishing" and saved[broken].claim_id is not None
    assert saved[fine].status == "published"
