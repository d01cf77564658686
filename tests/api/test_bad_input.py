"""Bad input gets a clear 4xx problem+json saying what is wrong, never a 500, and changes
nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import Post, PostTarget
from tests.conftest import Tenant


async def _counts(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessions() as session:
        posts = await session.scalar(select(func.count()).select_from(Post))
        targets = await session.scalar(select(func.count()).select_from(PostTarget))
        return int(posts or 0), int(targets or 0)


def _post(account_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
    when = (clock.now() + timedelta(hours=1)).isoformat()
    return {"content": "Hi", "scheduled_at": when, "targets": [{"account_id": str(account_id)}]} | (
        overrides
    )


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body


async def test_unknown_account(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post("/v1/posts", json=_post(uuid.uuid4()))
    assert_problem(response, 422, "targets[0].account_id")
    assert await _counts(sessions) == (0, 0)


async def test_another_workspaces_account_is_as_unknown_as_a_random_id(
    client: httpx.AsyncClient, other_tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post("/v1/posts", json=_post(other_tenant.account_id))
    assert_problem(response, 422, "targets[0].account_id")
    assert "No account with this id" in response.json()["errors"][0]["message"]
    assert await _counts(sessions) == (0, 0)


async def test_another_workspaces_post_is_not_found(
    client: httpx.AsyncClient, api_url: str, other_tenant: Tenant, tenant: Tenant
) -> None:
    created = await client.post("/v1/posts", json=_post(tenant.account_id))
    post_id = created.json()["id"]
    async with httpx.AsyncClient(base_url=api_url, headers=other_tenant.headers) as other:
        assert_problem(await other.get(f"/v1/posts/{post_id}"), 404)
        assert_problem(await other.delete(f"/v1/posts/{post_id}"), 404)
        assert_problem(
            await other.patch(
                f"/v1/posts/{post_id}", json={"content": "x"}, headers={"If-Match": '"1"'}
            ),
            404,
        )
        assert_problem(await other.post(f"/v1/posts/{post_id}/publish-now"), 404)
        assert (await other.get("/v1/posts")).json()["items"] == []
    assert (await client.get(f"/v1/posts/{post_id}")).json()["status"] == "scheduled"


async def test_over_length_content_for_mastodon(
    client: httpx.AsyncClient,
    mastodon_account: uuid.UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await client.post("/v1/posts", json=_post(mastodon_account, content="a" * 501))
    assert_problem(response, 422, "content")
    assert "500" in response.json()["errors"][0]["message"]
    override = await client.post(
        "/v1/posts",
        json=_post(mastodon_account)
        | {"targets": [{"account_id": str(mastodon_account), "content": "b" * 600}]},
    )
    assert_problem(override, 422, "targets[0].content")
    assert await _counts(sessions) == (0, 0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scheduled_at": "2030-01-01T09:00:00", "timezone": "Mars/Olympus"}, "timezone"),
        ({"scheduled_at": "2030-01-01T09:00:00"}, "scheduled_at"),
        ({"scheduled_at": "2030-01-01T09:00:00+01:00", "timezone": "Europe/Paris"}, "scheduled_at"),
        ({"scheduled_at": "not a time"}, "scheduled_at"),
        ({"scheduled_at": "2001-01-01T09:00:00Z"}, "scheduled_at"),
        ({"content": ""}, "content"),
        ({"targets": []}, "targets"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_invalid_fields(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    overrides: dict[str, Any],
    field: str,
) -> None:
    response = await client.post("/v1/posts", json=_post(tenant.account_id, **overrides))
    assert_problem(response, 422, field)
    assert await _counts(sessions) == (0, 0)


async def test_duplicate_targets(client: httpx.AsyncClient, tenant: Tenant) -> None:
    target = {"account_id": str(tenant.account_id)}
    response = await client.post(
        "/v1/posts", json=_post(tenant.account_id, targets=[target, target])
    )
    assert_problem(response, 422, "targets")


async def test_malformed_json(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post(
        "/v1/posts", content=b'{"content": "Hi",', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    assert "JSON" in response.json()["detail"]
    assert await _counts(sessions) == (0, 0)


async def test_missing_and_wrong_api_key(
    api_url: str, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        missing = await anonymous.post("/v1/posts", json=_post(tenant.account_id))
        assert_problem(missing, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await anonymous.get("/v1/posts", headers={"Authorization": "Bearer hk_nope"})
        assert_problem(wrong, 401)
        assert (await anonymous.get("/v1/accounts")).status_code == 401
    assert await _counts(sessions) == (0, 0)


async def test_bad_ids_and_cursors(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/posts/not-a-uuid"), 404)  # ids are UUIDs: no such post
    assert_problem(await client.get(f"/v1/posts/{uuid.uuid4()}"), 404)
    assert_problem(await client.get("/v1/posts", params={"cursor": "!!"}), 422, "cursor")
    assert_problem(await client.get("/v1/posts", params={"status": "nope"}), 422, "status[0]")
    assert_problem(await client.get("/v1/posts", params={"limit": 0}), 422, "limit")


async def test_openapi_has_named_schemas_and_stable_operation_ids(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation_ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "create_post",
        "get_post",
        "list_posts",
        "update_post",
        "cancel_post",
        "publish_post_now",
        "create_account",
        "list_accounts",
        "upload_media",
        "get_media",
        "delete_media",
        "healthz",
        "readyz",
    } <= operation_ids
    create = spec["paths"]["/v1/posts"]["post"]
    assert {"401", "422"} <= set(create["responses"])
    schemas = spec["components"]["schemas"]
    assert "Problem" in schemas
    # Every schema has a name chosen for SDKs, none of FastAPI's generated "Body_..." ones.
    assert not [name for name in schemas if name.startswith("Body_")]
    upload = spec["paths"]["/v1/media"]["post"]
    assert {"413", "415"} <= set(upload["responses"])
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form == {"$ref": "#/components/schemas/MediaUpload"}
