"""The whole pipeline, through the HTTP API, with the real scheduler and real arq workers:
a post goes out once, on time; reschedules and cancels win over jobs already queued."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget, PublishAttempt, SandboxPublication
from tests.conftest import Tenant
from tests.services import wait_for


async def publications(
    sessions: async_sessionmaker[AsyncSession], target_id: uuid.UUID
) -> list[SandboxPublication]:
    async with sessions() as session:
        rows = await session.scalars(
            select(SandboxPublication).where(
                SandboxPublication.idempotency_key == f"herald-{target_id}"
            )
        )
        return list(rows)


async def target_status(sessions: async_sessionmaker[AsyncSession], target_id: uuid.UUID) -> str:
    async with sessions() as session:
        target = await session.get(PostTarget, target_id)
        assert target is not None
        return target.status


async def schedule(client: httpx.AsyncClient, tenant: Tenant, at: datetime) -> dict[str, object]:
    response = await client.post(
        "/v1/posts",
        json={
            "content": "On time, once.",
            "scheduled_at": at.isoformat(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def first_target_id(post: dict[str, object]) -> uuid.UUID:
    targets = post["targets"]
    assert isinstance(targets, list)
    return uuid.UUID(targets[0]["id"])


async def test_post_scheduled_two_seconds_ahead_is_published_once_on_time(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    pipeline: None,
) -> None:
    at = clock.now() + timedelta(seconds=2)
    post = await schedule(client, tenant, at)
    target_id = first_target_id(post)

    async def published() -> bool:
        body = (await client.get(f"/v1/posts/{post['id']}")).json()
        return bool(body["status"] == "published")

    await wait_for(published, timeout=20)
    body = (await client.get(f"/v1/posts/{post['id']}")).json()
    target = body["targets"][0]
    rows = await publications(sessions, target_id)
    assert len(rows) == 1
    assert target["status"] == "published"
    assert target["remote_id"] == str(rows[0].id)
    assert target["attempts"] == 1
    assert rows[0].published_at >= at
    assert datetime.fromisoformat(target["published_at"]) >= at
    async with sessions() as session:
        attempts = (
            await session.scalars(
                select(PublishAttempt).where(PublishAttempt.target_id == target_id)
            )
        ).all()
    assert [(a.outcome, a.started_at >= at) for a in attempts] == [("published", True)]


async def test_rescheduled_post_is_published_once_at_new_time(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    pipeline: None,
) -> None:
    old = clock.now() + timedelta(seconds=2)
    post = await schedule(client, tenant, old)
    target_id = first_target_id(post)

    async def enqueued() -> bool:
        return await target_status(sessions, target_id) == "enqueued"

    await wait_for(enqueued)
    new = old + timedelta(seconds=3)
    patched = await client.patch(
        f"/v1/posts/{post['id']}",
        json={"scheduled_at": new.isoformat()},
        headers={"If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text

    async def published() -> bool:
        return await target_status(sessions, target_id) == "published"

    await wait_for(published, timeout=20)
    rows = await publications(sessions, target_id)
    assert len(rows) == 1
    assert rows[0].published_at >= new


async def test_cancelled_after_enqueue_is_never_published(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    pipeline: None,
) -> None:
    at = clock.now() + timedelta(seconds=1.5)
    post = await schedule(client, tenant, at)
    target_id = first_target_id(post)

    async def enqueued() -> bool:
        return await target_status(sessions, target_id) == "enqueued"

    await wait_for(enqueued)
    assert (await client.delete(f"/v1/posts/{post['id']}")).status_code == 200

    # A second post due after the cancelled one proves the queue ran past its time.
    marker = await schedule(client, tenant, at + timedelta(seconds=0.5))

    async def marker_published() -> bool:
        return await target_status(sessions, first_target_id(marker)) == "published"

    await wait_for(marker_published, timeout=20)
    assert await publications(sessions, target_id) == []
    assert await target_status(sessions, target_id) == "cancelled"
    async with sessions() as session:
        attempts = await session.scalar(
            select(func.count())
            .select_from(PublishAttempt)
            .where(PublishAttempt.target_id == target_id)
        )
    assert attempts == 0


async def test_publish_now_goes_out_at_once(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    pipeline: None,
) -> None:
    post = await schedule(client, tenant, clock.now() + timedelta(days=1))
    target_id = first_target_id(post)
    now = await client.post(f"/v1/posts/{post['id']}/publish-now")
    assert now.status_code == 200, now.text

    async def published() -> bool:
        return await target_status(sessions, target_id) == "published"

    await wait_for(published, timeout=10)
    assert len(await publications(sessions, target_id)) == 1
    listed = (await client.get("/v1/sandbox/publications")).json()["items"]
    assert [item["text"] for item in listed] == ["On time, once."]
