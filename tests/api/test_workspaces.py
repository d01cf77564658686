"""Workspaces, roles and API keys: who may do what (docs/permissions.md), invitations,
choosing a workspace per request, and keys shown once, scoped, revocable."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.mail import Outbox
from herald_common import clock
from herald_common.db.models import ApiKey
from herald_common.roles import ApiKeyScope, Role
from herald_common.settings import Settings
from tests.api.test_auth import PASSWORD, mail_to, new_email, sign_up, token_of
from tests.api.test_bad_input import assert_problem
from tests.conftest import Tenant, make_tenant
from tests.members import Member, make_member


def post_body(account_id: uuid.UUID) -> dict[str, Any]:
    when = (clock.now() + timedelta(hours=1)).isoformat()
    return {"content": "Hi", "scheduled_at": when, "targets": [{"account_id": str(account_id)}]}


async def member(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, tenant: Tenant, role: Role
) -> Member:
    return await make_member(sessions, settings, tenant.workspace_id, role)


# (what, method, path, body) -> the roles allowed; docs/permissions.md is the same table.
ACTIONS: list[tuple[str, str, str, Any, set[Role]]] = [
    ("read posts", "GET", "/v1/posts", None, set(Role)),
    ("read the workspace", "GET", "/v1/workspace", None, set(Role)),
    ("list members", "GET", "/v1/workspace/members", None, set(Role)),
    ("schedule a post", "POST", "/v1/posts", "post", {Role.EDITOR, Role.ADMIN, Role.OWNER}),
    (
        "add an account",
        "POST",
        "/v1/accounts",
        "account",
        {Role.ADMIN, Role.OWNER},
    ),
    ("list API keys", "GET", "/v1/api-keys", None, {Role.ADMIN, Role.OWNER}),
    ("create an API key", "POST", "/v1/api-keys", {"name": "ci"}, {Role.ADMIN, Role.OWNER}),
    (
        "invite an editor",
        "POST",
        "/v1/workspace/invitations",
        "invite",
        {Role.ADMIN, Role.OWNER},
    ),
    ("rename the workspace", "PATCH", "/v1/workspace", {"name": "Renamed"}, {Role.OWNER}),
]


def _body(kind: Any, tenant: Tenant) -> Any:
    if kind == "post":
        return post_body(tenant.account_id)
    if kind == "account":
        return {"platform": "sandbox", "handle": f"h{uuid.uuid4().hex[:8]}"}
    if kind == "invite":
        return {"email": new_email(), "role": "editor"}
    return kind


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_may_do_what_the_permission_matrix_says(
    api_url: str,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    role: Role,
) -> None:
    person = await member(sessions, settings, tenant, role)
    async with httpx.AsyncClient(base_url=api_url, headers=person.headers) as http:
        for what, method, path, body, allowed in ACTIONS:
            response = await http.request(method, path, json=_body(body, tenant))
            if role in allowed:
                assert response.status_code < 300, (what, role, response.text)
            else:
                assert_problem(response, 403)


async def test_only_an_owner_deletes_the_workspace_and_everything_in_it_goes(
    api_url: str, tenant: Tenant, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    admin = await member(sessions, settings, tenant, Role.ADMIN)
    owner = await member(sessions, settings, tenant, Role.OWNER)
    async with httpx.AsyncClient(base_url=api_url) as http:
        assert_problem(await http.delete("/v1/workspace", headers=admin.headers), 403)
        assert (await http.delete("/v1/workspace", headers=owner.headers)).status_code == 204
        assert_problem(await http.get("/v1/posts", headers=tenant.headers), 401)
        assert_problem(await http.get("/v1/workspace", headers=owner.headers), 404)


@pytest.mark.parametrize(
    ("scopes", "can_read", "can_write"),
    [(["read"], True, False), (["write"], True, True), (["read", "write"], True, True)],
)
async def test_api_keys_act_with_their_scopes_and_never_manage(
    api_url: str,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    scopes: list[str],
    can_read: bool,
    can_write: bool,
) -> None:
    owner = await member(sessions, settings, tenant, Role.OWNER)
    async with httpx.AsyncClient(base_url=api_url) as http:
        created = await http.post(
            "/v1/api-keys", headers=owner.headers, json={"name": "bot", "scopes": scopes}
        )
        assert created.status_code == 201, created.text
        key = {"X-API-Key": created.json()["key"]}
        assert (await http.get("/v1/posts", headers=key)).status_code == (200 if can_read else 403)
        write = await http.post("/v1/posts", headers=key, json=post_body(tenant.account_id))
        assert write.status_code == (201 if can_write else 403), write.text
        assert_problem(await http.get("/v1/api-keys", headers=key), 403)
        assert_problem(await http.get("/v1/workspace/members", headers=key), 403)
        invite = {"email": new_email(), "role": "viewer"}
        assert_problem(await http.post("/v1/workspace/invitations", headers=key, json=invite), 403)


async def test_a_key_is_shown_once_kept_as_a_hash_and_stops_when_revoked(
    api_url: str, tenant: Tenant, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    admin = await member(sessions, settings, tenant, Role.ADMIN)
    async with httpx.AsyncClient(base_url=api_url, headers=admin.headers) as http:
        created = await http.post("/v1/api-keys", json={"name": "ci", "scopes": ["write"]})
        assert created.headers["cache-control"] == "no-store"
        body = created.json()
        key = body["key"]
        assert key.startswith("hk_") and key.startswith(body["prefix"])
        assert body["created_by"] == str(admin.user_id)
        listed = (await http.get("/v1/api-keys")).json()["items"]
        assert key not in str(listed)
        assert {k["id"] for k in listed} >= {body["id"]}
        async with sessions() as session:
            stored = await session.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(body["id"])))
            assert stored is not None and key.encode() not in stored.key_hash

        assert (await http.get("/v1/posts", headers={"Authorization": f"Bearer {key}"})).is_success
        revoked = await http.delete(f"/v1/api-keys/{body['id']}")
        assert revoked.json()["revoked_at"] is not None
    async with httpx.AsyncClient(base_url=api_url, headers={"X-API-Key": key}) as as_key:
        assert_problem(await as_key.get("/v1/posts"), 401)


async def test_last_used_is_recorded_after_the_request_at_most_once_a_minute(
    api_url: str, api_app: FastAPI, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    usage = api_app.state.resources.key_usage

    async def last_used() -> datetime | None:
        await usage.drain()  # the write runs after the request, on its own
        async with sessions() as session:
            return await session.scalar(
                select(ApiKey.last_used_at).where(ApiKey.workspace_id == tenant.workspace_id)
            )

    async with httpx.AsyncClient(base_url=api_url, headers=tenant.headers) as http:
        await http.get("/v1/posts")
        first = await last_used()
        assert first is not None
        clock.advance(timedelta(seconds=30))
        await http.get("/v1/posts")
        await http.get("/v1/accounts")
        assert await last_used() == first
        clock.advance(timedelta(seconds=31))
        await http.get("/v1/posts")
        second = await last_used()
        assert second is not None and second - first >= timedelta(seconds=60)


async def test_invited_person_signs_up_into_the_workspace_with_the_role(
    api_url: str,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    outbox: Outbox,
) -> None:
    admin = await member(sessions, settings, tenant, Role.ADMIN)
    email = new_email().lower()
    async with httpx.AsyncClient(base_url=api_url) as http:
        invited = await http.post(
            "/v1/workspace/invitations",
            headers=admin.headers,
            json={"email": email, "role": "viewer"},
        )
        assert invited.status_code == 201, invited.text
        pending = (await http.get("/v1/workspace/invitations", headers=admin.headers)).json()
        assert [i["email"] for i in pending["items"]] == [email]
        token = token_of(await mail_to(outbox, email, "invited"))

        joined = await sign_up(http, email, invitation_token=token)
        assert joined["workspace"] == {
            "workspace_id": str(tenant.workspace_id),
            "workspace_name": "acme",
            "role": "viewer",
        }
        assert joined["user"]["email_verified"] is True
        headers = {"Authorization": f"Bearer {joined['tokens']['access_token']}"}
        assert (await http.get("/v1/posts", headers=headers)).status_code == 200
        assert_problem(
            await http.post("/v1/posts", headers=headers, json=post_body(tenant.account_id)), 403
        )
        # Used once.
        again = await http.post(
            "/v1/auth/signup",
            json={"email": new_email(), "password": PASSWORD, "invitation_token": token},
        )
        assert_problem(again, 400)


async def test_an_existing_user_accepts_an_invitation_sent_to_their_email_only(
    api_url: str,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    outbox: Outbox,
) -> None:
    owner = await member(sessions, settings, tenant, Role.OWNER)
    elsewhere = await make_member(sessions, settings, other_tenant.workspace_id, Role.OWNER)
    stranger = await make_member(sessions, settings, other_tenant.workspace_id, Role.EDITOR)
    async with httpx.AsyncClient(base_url=api_url) as http:
        await http.post(
            "/v1/workspace/invitations",
            headers=owner.headers,
            json={"email": elsewhere.email, "role": "admin"},
        )
        token = token_of(await mail_to(outbox, elsewhere.email, "invited"))
        wrong_person = await http.post(
            "/v1/invitations/accept", headers=stranger.headers, json={"token": token}
        )
        assert_problem(wrong_person, 400)
        accepted = await http.post(
            "/v1/invitations/accept", headers=elsewhere.headers, json={"token": token}
        )
        assert accepted.json()["role"] == "admin"

        # Two workspaces now: each request names one.
        assert_problem(await http.get("/v1/posts", headers=elsewhere.headers), 400)
        for workspace_id in (tenant.workspace_id, other_tenant.workspace_id):
            chosen = {**elsewhere.headers, "X-Workspace-ID": str(workspace_id)}
            assert (await http.get("/v1/workspace", headers=chosen)).json()["id"] == str(
                workspace_id
            )
        mine = (await http.get("/v1/workspaces", headers=elsewhere.headers)).json()["items"]
        assert {w["role"] for w in mine} == {"owner", "admin"}
        # A workspace that is not theirs is not found, whatever its id.
        third = await make_tenant(sessions, "initech")
        not_mine = {**elsewhere.headers, "X-Workspace-ID": str(third.workspace_id)}
        assert_problem(await http.get("/v1/posts", headers=not_mine), 404)


async def test_owner_role_is_managed_by_owners_and_the_last_owner_stays(
    api_url: str, tenant: Tenant, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    owner = await member(sessions, settings, tenant, Role.OWNER)
    admin = await member(sessions, settings, tenant, Role.ADMIN)
    editor = await member(sessions, settings, tenant, Role.EDITOR)
    async with httpx.AsyncClient(base_url=api_url) as http:

        async def set_role(by: Member, who: Member, role: str) -> httpx.Response:
            return await http.patch(
                f"/v1/workspace/members/{who.user_id}", headers=by.headers, json={"role": role}
            )

        assert (await set_role(admin, editor, "viewer")).json()["role"] == "viewer"
        assert_problem(await set_role(admin, editor, "owner"), 403)
        assert_problem(await set_role(admin, owner, "editor"), 403)
        assert_problem(
            await http.delete(f"/v1/workspace/members/{owner.user_id}", headers=admin.headers),
            403,
        )
        assert_problem(await set_role(owner, owner, "admin"), 409)
        assert_problem(
            await http.delete(f"/v1/workspace/members/{owner.user_id}", headers=owner.headers),
            409,
        )
        assert (await set_role(owner, admin, "owner")).json()["role"] == "owner"
        assert (await set_role(owner, owner, "editor")).json()["role"] == "editor"
        removed = await http.delete(
            f"/v1/workspace/members/{editor.user_id}", headers=admin.headers
        )
        assert removed.status_code == 204
        assert_problem(await http.get("/v1/posts", headers=editor.headers), 404)


async def test_a_user_creates_more_workspaces_and_owns_them(
    api_url: str, tenant: Tenant, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    person = await member(sessions, settings, tenant, Role.VIEWER)
    async with httpx.AsyncClient(base_url=api_url, headers=person.headers) as http:
        created = await http.post("/v1/workspaces", json={"name": "Side project"})
        assert created.status_code == 201
        assert created.json()["role"] == "owner"
        chosen = {"X-Workspace-ID": created.json()["workspace_id"]}
        renamed = await http.patch("/v1/workspace", headers=chosen, json={"name": "Main"})
        assert renamed.json()["name"] == "Main"
        keys = await http.post("/v1/api-keys", headers=chosen, json={"name": "k"})
        assert keys.json()["scopes"] == [ApiKeyScope.READ]
