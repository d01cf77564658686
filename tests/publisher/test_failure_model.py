"""The failure model end to end against a fake Mastodon: retries on the clock, held posts for
expired logins, notifications, and a person's retry from the API."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.accounts.refresh import TokenRefresher
from herald_common.crypto import TokenCipher
from herald_common.db.models import Notification, Post, SocialAccount
from herald_common.db.repositories.targets import resume_held_targets
from herald_common.http import create_http_client
from herald_common.platforms.registry import build_platforms
from herald_common.queue import deserialize, queue_name
from herald_common.settings import Settings
from herald_publisher.publish import PublisherDeps, publish_targets
from herald_scheduler.enqueue import enqueue_due
from tests.conftest import Tenant
from tests.factories import load_target
from tests.fakes.mastodon import FakeMastodon

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


async def scheduled_target(
    client: httpx.AsyncClient, account: uuid.UUID, at: datetime | None = None
) -> tuple[uuid.UUID, uuid.UUID]:
    at = at or clock.now() + timedelta(seconds=30)
    response = await client.post(
        "/v1/posts",
        json={
            "content": "Hello",
            "scheduled_at": at.isoformat(),
            "targets": [{"account_id": str(account)}],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return uuid.UUID(body["id"]), uuid.UUID(body["targets"][0]["id"])


async def run_queued_jobs(deps: PublisherDeps, redis: Redis) -> list[str]:
    """Fire every job that is due by Herald's (movable) clock, as an arq worker would."""
    results: list[str] = []
    now_ms = clock.now().timestamp() * 1000
    for job_id in await redis.zrangebyscore(queue_name("mastodon"), 0, now_ms):
        raw = await redis.get(b"arq:job:" + job_id)
        assert raw is not None
        await redis.zrem(queue_name("mastodon"), job_id)
        await redis.delete(b"arq:job:" + job_id)
        [targets] = deserialize(raw)["a"]
        wanted = [(uuid.UUID(target_id), revision) for target_id, revision in targets]
        results += (await publish_targets(deps, wanted)).values()
    return results


async def notifications(sessions: async_sessionmaker[AsyncSession]) -> list[Notification]:
    async with sessions() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.id)))


async def test_transient_503_then_success_is_published_once_after_a_retry_of_seconds(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    _, target_id = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    clock.advance(timedelta(seconds=31))
    fake.fail_next(1, status_code=503)
    first = settings.publisher_retry_delays_seconds[0]
    most = first * (1 + settings.publisher_retry_jitter) + 0.1  # rounded up to 100 ms

    before = clock.now()
    assert await run_queued_jobs(deps, redis) == ["transient"]
    target = await load_target(sessions, target_id)
    assert target.status == "retrying"
    assert target.next_attempt_at is not None
    assert before + timedelta(seconds=first) <= target.next_attempt_at
    assert target.next_attempt_at <= clock.now() + timedelta(seconds=most)
    assert fake.statuses == []
    clock.advance(timedelta(seconds=first - 0.5))
    assert await run_queued_jobs(deps, redis) == []  # not before its delay
    clock.advance(timedelta(seconds=most))
    assert await run_queued_jobs(deps, redis) == ["published"]

    target = await load_target(sessions, target_id)
    assert (target.status, target.attempts) == ("published", 2)
    assert [s.idempotency_key for s in fake.statuses] == [f"herald-{target_id}"]
    assert await notifications(sessions) == []


async def test_a_retry_waits_as_long_as_the_platform_asked(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    _, target_id = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    clock.advance(timedelta(seconds=31))
    fake.fail_next(1, status_code=503, retry_after="120")
    before = clock.now()

    assert await run_queued_jobs(deps, redis) == ["transient"]
    target = await load_target(sessions, target_id)
    assert target.next_attempt_at is not None
    assert target.next_attempt_at >= before + timedelta(seconds=120)
    clock.advance(timedelta(seconds=60))
    assert await run_queued_jobs(deps, redis) == []
    clock.advance(timedelta(seconds=61))
    assert await run_queued_jobs(deps, redis) == ["published"]


async def test_retries_run_out_into_failed_with_a_notification(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    post_id, target_id = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    retries = len(settings.publisher_retry_delays_seconds)
    fake.fail_next(retries + 1, status_code=502)
    outcomes = []
    for minutes in (1, 1, 2, 8, 23):  # each past its jittered delay (at most 1.5 times)
        clock.advance(timedelta(minutes=minutes))
        outcomes += await run_queued_jobs(deps, redis)
    assert outcomes == ["transient"] * (retries + 1)
    target = await load_target(sessions, target_id)
    assert target.status == "failed"
    [note] = await notifications(sessions)
    assert (note.kind, note.target_id, note.post_id) == ("publish_failed", target_id, post_id)

    listed = (await client.get("/v1/notifications", params={"unread": True})).json()["items"]
    assert [n["id"] for n in listed] == [str(note.id)]
    read = await client.post(f"/v1/notifications/{note.id}/read")
    assert read.status_code == 200
    assert read.json()["read_at"] is not None
    assert (await client.get("/v1/notifications", params={"unread": True})).json()["items"] == []

    # A person retries it: it goes out at once.
    retried = await client.post(f"/v1/posts/{post_id}/targets/{target_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["targets"][0]["status"] == "pending"
    await enqueue_due(sessions, redis, settings)
    assert await run_queued_jobs(deps, redis) == ["published"]
    assert len(fake.statuses) == 1
    again = await client.post(f"/v1/posts/{post_id}/targets/{target_id}/retry")
    assert again.status_code == 409


async def test_rejected_content_fails_at_once_with_the_platforms_reason(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    _, target_id = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    clock.advance(timedelta(seconds=31))
    fake.fail_next(1, status_code=422, error="Validation failed: Text has a forbidden word")
    assert await run_queued_jobs(deps, redis) == ["rejected"]
    target = await load_target(sessions, target_id)
    assert target.status == "failed"
    assert "Validation failed: Text has a forbidden word" in (target.error or "")
    assert [n.kind for n in await notifications(sessions)] == ["publish_failed"]


async def test_expired_login_holds_posts_until_reconnected(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    post_a, first = await scheduled_target(client, account)
    post_b, second = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    clock.advance(timedelta(seconds=31))
    fake.revoke_token(TOKEN)
    assert sorted(await run_queued_jobs(deps, redis)) == ["auth_expired", "auth_expired"]
    for target_id in (first, second):
        target = await load_target(sessions, target_id)
        assert (target.status, target.scheduled_at, target.error_kind) == (
            "pending",
            None,
            "auth_expired",
        )
    async with sessions() as session:
        row = await session.get(SocialAccount, account)
        assert row is not None and row.status == "requires_reauth"
        posts = list(
            await session.scalars(select(Post.status).where(Post.id.in_([post_a, post_b])))
        )
    assert posts == ["scheduled", "scheduled"]  # kept, never deleted
    assert [n.kind for n in await notifications(sessions)] == ["account_requires_reauth"]
    # Held targets are not due: the scheduler leaves them alone.
    assert await enqueue_due(sessions, redis, settings) == 0

    # The person reconnects (a new token); the held posts go out.
    fake.add_account("new-token", "alice")
    async with sessions.begin() as session:
        row = await session.get(SocialAccount, account)
        assert row is not None
        row.status = "active"
        row.access_token_enc = TokenCipher.from_settings(settings).encrypt("new-token")
        assert await resume_held_targets(session, account, clock.now()) == 2
    assert await enqueue_due(sessions, redis, settings) == 2
    assert await run_queued_jobs(deps, redis) == ["published", "published"]
    assert sorted(str(s.idempotency_key) for s in fake.statuses) == sorted(
        f"herald-{t}" for t in (first, second)
    )


async def test_a_lost_answer_whose_re_send_fails_is_asked_again_and_published_once(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    """Issue 17's case: accepted, answer lost, the idempotent re-send got a 5xx. Asking again
    is safe while Mastodon remembers the key, so it is asked again, seconds later."""
    post_id, target_id = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    clock.advance(timedelta(seconds=31))
    fake.drop_next(1)
    fake.fail_next(1, status_code=503)

    assert await run_queued_jobs(deps, redis) == ["transient"]
    target = await load_target(sessions, target_id)
    assert (target.status, target.sent_at is not None) == ("retrying", True)
    assert "asking mastodon whether it was posted failed" in (target.error or "")
    clock.advance(timedelta(seconds=10))
    assert await run_queued_jobs(deps, redis) == ["published"]

    [status] = fake.statuses
    target = await load_target(sessions, target_id)
    assert (target.status, target.remote_id, target.sent_at) == ("published", status.id, None)
    assert [r.idempotency_key for r in fake.requests] == [f"herald-{target_id}"] * 3
    assert await notifications(sessions) == []
    async with sessions() as session:
        post = await session.get(Post, post_id)
    assert post is not None and post.status == "published"


async def test_asking_that_keeps_failing_ends_unknown_not_failed(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    post_id, target_id = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    retries = len(settings.publisher_retry_delays_seconds)
    fake.drop_next(1)
    fake.fail_next(retries + 1, status_code=503)
    outcomes = []
    for minutes in (1, 1, 2, 8, 23):
        clock.advance(timedelta(minutes=minutes))
        outcomes += await run_queued_jobs(deps, redis)

    assert outcomes == ["transient"] * retries + ["outcome_unknown"]
    target = await load_target(sessions, target_id)
    assert target.status == "unknown"  # it may be live: never "failed"
    assert len(fake.statuses) == 1  # the one that landed; never a blind second
    assert [n.kind for n in await notifications(sessions)] == ["outcome_unknown"]
    async with sessions() as session:
        post = await session.get(Post, post_id)
    assert post is not None and post.status == "needs_attention"


async def test_once_mastodon_may_have_forgotten_the_key_the_target_is_unknown(
    client: httpx.AsyncClient,
    deps: PublisherDeps,
    redis: Redis,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake: FakeMastodon,
    account: uuid.UUID,
) -> None:
    _, target_id = await scheduled_target(client, account)
    await enqueue_due(sessions, redis, settings)
    clock.advance(timedelta(seconds=31))
    fake.drop_next(1)
    fake.rate_limit_next(1, reset_after=timedelta(minutes=56))
    assert await run_queued_jobs(deps, redis) == ["rate_limited"]
    requests = len(fake.requests)

    clock.advance(timedelta(minutes=57))
    assert await run_queued_jobs(deps, redis) == ["outcome_unknown"]
    target = await load_target(sessions, target_id)
    assert target.status == "unknown"
    assert "forgets idempotency keys after one hour" in (target.error or "")
    assert len(fake.requests) == requests  # not asked: a re-send now could post twice
    assert [n.kind for n in await notifications(sessions)] == ["outcome_unknown"]
