"""A change that changes nothing keeps the post's revision (its ETag) and writes nothing:
cancelling a cancelled or finished post, and a PATCH of the values the post already has."""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget
from tests.conftest import Tenant

WHEN = (clock.now() + timedelta(days=1)).replace(microsecond=0)


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/posts", json=body)
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()
    return post


async def set_target_status(
    sessions: async_sessionmaker[AsyncSession], target_id: str, status: str
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(PostTarget).where(PostTarget.id == uuid.UUID(target_id)).values(status=status)
        )


async def test_cancelling_a_cancelled_post_keeps_its_revision(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    post = await create(
        client,
        {
            "content": "bye",
            "scheduled_at": WHEN.isoformat(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    url = f"/v1/posts/{post['id']}"
    cancelled = await client.delete(url)
    assert (cancelled.status_code, cancelled.json()["revision"]) == (200, 2)

    again = await client.delete(url)
    assert again.status_code == 200
    assert again.headers["etag"] == '"2"'
    assert again.json() == cancelled.json()  # updated_at included: nothing was written
    assert (await client.get(url)).json() == cancelled.json()


async def test_cancelling_a_published_post_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    post = await create(
        client,
        {
            "content": "out already",
            "scheduled_at": WHEN.isoformat(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    await set_target_status(sessions, post["targets"][0]["id"], "published")
    url = f"/v1/posts/{post['id']}"
    before = (await client.get(url)).json()
    answer = await client.delete(url)
    assert answer.status_code == 200
    assert answer.json() == before
    assert answer.headers["etag"] == '"1"'


async def test_a_patch_with_the_values_the_post_has_keeps_its_revision_and_queue_place(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    targets = [{"account_id": str(tenant.account_id), "content": "for the sandbox"}]
    post = await create(
        client,
        {"content": "Hello", "scheduled_at": WHEN.isoformat(), "targets": targets},
    )
    # The scheduler has already queued it; an edit would put it back to pending.
    await set_target_status(sessions, post["targets"][0]["id"], "enqueued")
    url = f"/v1/posts/{post['id']}"
    before = (await client.get(url)).json()
    same_instant_elsewhere = WHEN.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    unchanged: list[dict[str, Any]] = [
        {},
        {"content": "Hello"},
        {"scheduled_at": same_instant_elsewhere, "draft": False},
        {"content": "Hello", "media_ids": [], "targets": targets},
    ]
    for body in unchanged:
        answer = await client.patch(url, json=body, headers={"If-Match": '"1"'})
        assert answer.status_code == 200, (body, answer.text)
        assert answer.headers["etag"] == '"1"', body
        assert answer.json() == before, body
    assert (await client.get(url)).json() == before

    # A stale If-Match is still refused, even with nothing to change.
    stale = await client.patch(url, json={"content": "Hello"}, headers={"If-Match": '"0"'})
    assert stale.status_code == 412

    # Any real change still bumps the revision and re-queues the target.
    changes: list[dict[str, Any]] = [
        {"content": "Hello!"},
        {"targets": [{"account_id": str(tenant.account_id)}]},
        {"draft": True},
    ]
    for body in changes:
        revision = (await client.get(url)).json()["revision"]
        changed = await client.patch(url, json=body, headers={"If-Match": f'"{revision}"'})
        assert changed.status_code == 200, (body, changed.text)
        assert changed.json()["revision"] == revision + 1, body
    assert changed.json()["targets"][0]["status"] == "pending"


async def test_taking_an_account_off_and_back_on_are_changes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    second = await client.post("/v1/accounts", json={"platform": "sandbox", "handle": "second"})
    assert second.status_code == 201, second.text
    both = [{"account_id": str(tenant.account_id)}, {"account_id": second.json()["id"]}]
    post = await create(
        client, {"content": "to both", "scheduled_at": WHEN.isoformat(), "targets": both}
    )
    url = f"/v1/posts/{post['id']}"
    off = await client.patch(url, json={"targets": both[:1]}, headers={"If-Match": '"1"'})
    assert off.json()["revision"] == 2
    assert sorted(t["status"] for t in off.json()["targets"]) == ["cancelled", "pending"]
    # Back on with the very same per-account values: only its status changes, and that counts.
    on = await client.patch(url, json={"targets": both}, headers={"If-Match": '"2"'})
    assert on.status_code == 200, on.text
    assert on.json()["revision"] == 3
    assert [t["status"] for t in on.json()["targets"]] == ["pending", "pending"]
