"""The posts API: create, read, list, edit, cancel, publish-now, and clear errors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import Post, PostTarget
from tests.conftest import Tenant


def iso(dt: datetime) -> str:
    return dt.isoformat()


def later(minutes: float = 60) -> datetime:
    return clock.now() + timedelta(minutes=minutes)


async def count_posts(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Post)) or 0)


async def test_created_post_reads_back_with_its_targets(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    when = later()
    created = await client.post(
        "/v1/posts",
        json={
            "content": "Hello",
            "scheduled_at": iso(when),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "scheduled"
    assert body["revision"] == 1
    assert created.headers["etag"] == '"1"'
    assert body["scheduled_at"].endswith("Z")
    assert body["targets"][0]["status"] == "pending"

    fetched = await client.get(f"/v1/posts/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_local_time_with_timezone_is_stored_in_utc(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    year = clock.now().year + 1
    created = await client.post(
        "/v1/posts",
        json={
            "content": "Bonjour",
            "scheduled_at": f"{year}-07-01T09:00:00",
            "timezone": "Europe/Paris",
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["scheduled_at"] == f"{year}-07-01T07:00:00Z"
    assert created.json()["timezone"] == "Europe/Paris"


async def test_local_time_in_a_daylight_saving_gap_is_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    year = clock.now().year + 1
    # Find the spring-forward Sunday in March: 02:30 does not exist in Paris that day.
    day = max(d for d in range(25, 32) if datetime(year, 3, d).weekday() == 6)
    response = await client.post(
        "/v1/posts",
        json={
            "content": "x",
            "scheduled_at": f"{year}-03-{day:02d}T02:30:00",
            "timezone": "Europe/Paris",
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "scheduled_at"


async def test_idempotency_key_returns_the_first_post(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    payload = {
        "content": "Once",
        "scheduled_at": iso(later()),
        "targets": [{"account_id": str(tenant.account_id)}],
    }
    headers = {"Idempotency-Key": "abc-123"}
    first = await client.post("/v1/posts", json=payload, headers=headers)
    second = await client.post("/v1/posts", json=payload, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert await count_posts(sessions) == 1

    reused = await client.post("/v1/posts", json={**payload, "content": "Other"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("idempotency-key-reused")
    assert await count_posts(sessions) == 1


async def test_concurrent_creates_with_one_idempotency_key_make_one_post(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    payload = {
        "content": "Once, however often it is sent",
        "scheduled_at": iso(later()),
        "targets": [{"account_id": str(tenant.account_id)}],
    }
    headers = {"Idempotency-Key": "sent-at-once"}
    responses = await asyncio.gather(
        *(client.post("/v1/posts", json=payload, headers=headers) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert {r.headers["location"] for r in responses} == {f"/v1/posts/{ids.pop()}"}
    assert await count_posts(sessions) == 1


async def test_list_filters_by_status_and_pages_with_a_cursor(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ids = []
    for i in range(5):
        response = await client.post(
            "/v1/posts",
            json={
                "content": f"post {i}",
                "scheduled_at": iso(later(60 + i)),
                "draft": i == 4,
                "targets": [{"account_id": str(tenant.account_id)}],
            },
        )
        ids.append(response.json()["id"])
    page1 = (await client.get("/v1/posts", params={"limit": 2, "status": "scheduled"})).json()
    assert [p["id"] for p in page1["items"]] == [ids[3], ids[2]]
    page2 = (
        await client.get(
            "/v1/posts", params={"limit": 2, "status": "scheduled", "cursor": page1["next_cursor"]}
        )
    ).json()
    assert [p["id"] for p in page2["items"]] == [ids[1], ids[0]]
    assert page2["next_cursor"] is None
    drafts = (await client.get("/v1/posts", params={"status": "draft"})).json()
    assert [p["id"] for p in drafts["items"]] == [ids[4]]
    window = (
        await client.get(
            "/v1/posts",
            params={"scheduled_from": iso(later(61.5)), "scheduled_to": iso(later(63.5))},
        )
    ).json()
    assert {p["id"] for p in window["items"]} == {ids[2], ids[3]}


async def test_patch_needs_the_current_revision(client: httpx.AsyncClient, tenant: Tenant) -> None:
    post = (
        await client.post(
            "/v1/posts",
            json={
                "content": "v1",
                "scheduled_at": iso(later()),
                "targets": [{"account_id": str(tenant.account_id)}],
            },
        )
    ).json()
    url = f"/v1/posts/{post['id']}"
    missing = await client.patch(url, json={"content": "v2"})
    assert missing.status_code == 428
    stale = await client.patch(url, json={"content": "v2"}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    ok = await client.patch(url, json={"content": "v2"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["revision"] == 2
    assert ok.json()["content"] == "v2"
    assert ok.headers["etag"] == '"2"'


async def test_patch_and_cancel_refused_while_a_target_is_publishing(
    client: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    post = (
        await client.post(
            "/v1/posts",
            json={
                "content": "busy",
                "scheduled_at": iso(later()),
                "targets": [{"account_id": str(tenant.account_id)}],
            },
        )
    ).json()
    async with sessions.begin() as session:
        target = await session.get(PostTarget, uuid.UUID(post["targets"][0]["id"]))
        assert target is not None
        target.status = "publishing"
    url = f"/v1/posts/{post['id']}"
    patched = await client.patch(url, json={"content": "no"}, headers={"If-Match": '"1"'})
    assert patched.status_code == 409
    assert patched.json()["type"].endswith("post-publishing")
    assert (await client.delete(url)).status_code == 409
    assert (await client.post(f"{url}/publish-now")).status_code == 409
    assert (await client.get(url)).json()["content"] == "busy"


async def test_cancel_marks_every_target_cancelled(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    post = (
        await client.post(
            "/v1/posts",
            json={
                "content": "bye",
                "scheduled_at": iso(later()),
                "targets": [{"account_id": str(tenant.account_id)}],
            },
        )
    ).json()
    cancelled = await client.delete(f"/v1/posts/{post['id']}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert [t["status"] for t in cancelled.json()["targets"]] == ["cancelled"]


async def test_accounts_are_added_and_listed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post("/v1/accounts", json={"platform": "sandbox", "handle": "second"})
    assert created.status_code == 201, created.text
    listed = (await client.get("/v1/accounts")).json()["items"]
    assert {a["handle"] for a in listed} == {"acme-sandbox", "second"}
    duplicate = await client.post("/v1/accounts", json={"platform": "sandbox", "handle": "second"})
    assert duplicate.status_code == 409
    other = await client.post("/v1/accounts", json={"platform": "mastodon", "handle": "x"})
    assert other.status_code == 422


async def post_left_unknown(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> tuple[str, str]:
    """A post whose only target's outcome is unknown, as the publisher leaves it."""
    created = await client.post(
        "/v1/posts",
        json={
            "content": "Did it go out?",
            "scheduled_at": iso(later()),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    post_id, target_id = created.json()["id"], created.json()["targets"][0]["id"]
    async with sessions.begin() as session:
        target = await session.get(PostTarget, uuid.UUID(target_id))
        post = await session.get(Post, uuid.UUID(post_id))
        assert target is not None and post is not None
        target.status, target.attempts = "unknown", 1
        target.sent_at = clock.now()
        target.error_kind, target.error = "outcome_unknown", "The answer was lost"
        post.status = "needs_attention"
    return post_id, target_id


async def test_retrying_an_unknown_target_needs_the_person_to_accept_it_could_post_twice(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    post_id, target_id = await post_left_unknown(client, sessions, tenant)
    url = f"/v1/posts/{post_id}/targets/{target_id}/retry"

    for body in (None, {}, {"accept_duplicate_risk": False}):
        refused = await client.post(url) if body is None else await client.post(url, json=body)
        assert refused.status_code == 409, body
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"].endswith("/retry-may-post-twice")
        assert "could post it twice" in problem["detail"]
        assert '{"accept_duplicate_risk": true}' in problem["detail"]
    not_a_bool = await client.post(url, json={"accept_duplicate_risk": "yes"})
    assert not_a_bool.status_code == 422
    assert (await client.get(f"/v1/posts/{post_id}")).json()["targets"][0]["status"] == "unknown"

    accepted = await client.post(url, json={"accept_duplicate_risk": True})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "scheduled"
    assert accepted.json()["targets"][0]["status"] == "pending"
    async with sessions() as session:
        target = await session.get(PostTarget, uuid.UUID(target_id))
    assert target is not None and (target.sent_at, target.attempts) == (None, 0)


async def test_posts_needing_attention_have_a_status_of_their_own(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    post_id, _ = await post_left_unknown(client, sessions, tenant)
    await client.post(
        "/v1/posts",
        json={
            "content": "Fine",
            "scheduled_at": iso(later()),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )

    listed = (await client.get("/v1/posts", params={"status": "needs_attention"})).json()
    assert [p["id"] for p in listed["items"]] == [post_id]
    assert listed["items"][0]["status"] == "needs_attention"
    spec = (await client.get("/openapi.json")).json()
    assert "needs_attention" in spec["components"]["schemas"]["PostStatus"]["enum"]
    retry = spec["paths"]["/v1/posts/{post_id}/targets/{target_id}/retry"]["post"]
    assert retry["operationId"] == "retry_target"
    assert "409" in retry["responses"]


async def test_a_post_whose_request_may_have_landed_cannot_change_until_herald_knows(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """Its answer was lost and asking the platform failed: the target waits to ask again,
    and an edit or a cancel now could post the new text beside the old, or show a live post
    as cancelled."""
    created = await client.post(
        "/v1/posts",
        json={
            "content": "Asking first",
            "scheduled_at": iso(later()),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    post_id, target_id = created.json()["id"], created.json()["targets"][0]["id"]
    async with sessions.begin() as session:
        target = await session.get(PostTarget, uuid.UUID(target_id))
        assert target is not None
        target.status, target.attempts = "retrying", 1
        target.sent_at = clock.now()

    for method, path, body in (
        ("PATCH", f"/v1/posts/{post_id}", {"content": "edited"}),
        ("DELETE", f"/v1/posts/{post_id}", None),
        ("POST", f"/v1/posts/{post_id}/publish-now", None),
    ):
        refused = await client.request(method, path, headers={"If-Match": '"1"'}, json=body)
        assert refused.status_code == 409, (method, refused.text)
        assert refused.json()["type"].endswith("/post-being-checked")
    fetched = (await client.get(f"/v1/posts/{post_id}")).json()
    assert (fetched["content"], fetched["targets"][0]["status"]) == ("Asking first", "retrying")
