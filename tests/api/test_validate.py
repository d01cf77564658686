"""POST /v1/posts/validate: every problem, per target, with a field path; nothing written."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.test_bad_input import _counts, _post
from tests.conftest import Tenant


async def test_a_valid_post_has_no_problems(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post("/v1/posts/validate", json=_post(tenant.account_id))
    assert response.status_code == 200, response.text
    assert response.json() == {"valid": True, "problems": []}


async def test_every_problem_of_every_target_at_once(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    mastodon_account: uuid.UUID,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    body = _post(
        tenant.account_id,
        content="a" * 501,
        scheduled_at="2001-01-01T00:00:00Z",
        targets=[
            {"account_id": str(tenant.account_id)},
            {"account_id": str(mastodon_account)},
            {"account_id": str(other_tenant.account_id)},
            {"account_id": str(uuid.uuid4())},
        ],
    )
    response = await client.post("/v1/posts/validate", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["valid"] is False
    fields = [p["field"] for p in result["problems"]]
    assert fields == ["scheduled_at", "targets[2].account_id", "targets[3].account_id", "content"]
    assert "500" in result["problems"][-1]["message"]
    assert await _counts(sessions) == (0, 0)


async def test_a_per_target_override_is_checked_against_its_own_platform(
    client: httpx.AsyncClient, mastodon_account: uuid.UUID
) -> None:
    body = _post(
        mastodon_account, targets=[{"account_id": str(mastodon_account), "content": "b" * 600}]
    )
    result = (await client.post("/v1/posts/validate", json=body)).json()
    assert [p["field"] for p in result["problems"]] == ["targets[0].content"]


async def test_platform_options_are_checked_by_the_targets_platform_with_their_paths(
    client: httpx.AsyncClient, tenant: Tenant, mastodon_account: uuid.UUID
) -> None:
    """Mastodon takes a content warning and its own four visibilities but has no reply
    threads here; the sandbox takes anything."""
    options = {"content_warning": "spoilers", "visibility": "everyone", "thread": ["more"]}
    body = _post(
        tenant.account_id,
        targets=[
            {"account_id": str(tenant.account_id), **options},
            {"account_id": str(mastodon_account), **options},
        ],
    )
    result = (await client.post("/v1/posts/validate", json=body)).json()
    assert sorted(p["field"] for p in result["problems"]) == [
        "targets[1].thread",
        "targets[1].visibility",
    ]


async def test_a_post_keeps_each_targets_platform_options(
    client: httpx.AsyncClient, mastodon_account: uuid.UUID
) -> None:
    target = {"account_id": str(mastodon_account), "content_warning": "cw", "visibility": "private"}
    created = await client.post("/v1/posts", json=_post(mastodon_account, targets=[target]))
    assert created.status_code == 201, created.text
    post_id = created.json()["id"]
    [stored] = (await client.get(f"/v1/posts/{post_id}")).json()["targets"]
    assert (stored["content_warning"], stored["visibility"], stored["thread"]) == (
        "cw",
        "private",
        [],
    )
    refused = await client.post(
        "/v1/posts",
        json=_post(mastodon_account, targets=[{**target, "visibility": "friends-only"}]),
    )
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["targets[0].visibility"]
