"""Connecting X and LinkedIn accounts through OAuth 2.0 with PKCE, against a real
authorization server (tests/fakes/oauth_server.py: Authlib's server classes, PKCE required)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.accounts.authorizations import STATE_KEY
from herald_api.main import create_app
from herald_common import clock
from herald_common.crypto import TokenCipher
from herald_common.db.models import PostTarget, SocialAccount
from herald_common.roles import Role
from herald_common.settings import Settings
from tests.api.test_bad_input import assert_problem
from tests.conftest import Tenant
from tests.fakes.oauth_server import FakeOAuthServer
from tests.members import make_member

PUBLIC_URL = "http://herald.test"


@pytest.fixture
def oauth_server() -> Iterator[FakeOAuthServer]:
    with FakeOAuthServer() as server:
        yield server


@asynccontextmanager
async def herald(
    settings: Settings, server: FakeOAuthServer, platform: str
) -> AsyncIterator[httpx.AsyncClient]:
    changes = {"public_url": PUBLIC_URL, **server.settings_for(platform)}
    scopes = " ".join(getattr(settings, f"{platform}_scopes"))
    server.register(f"{PUBLIC_URL}/v1/accounts/callback/{platform}", scopes)
    app = create_app(settings.model_copy(update=changes))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
            yield http


async def admin_headers(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, tenant: Tenant, role: Role
) -> dict[str, str]:
    member = await make_member(sessions, settings, tenant.workspace_id, role)
    return member.headers


@pytest.mark.parametrize("platform", ["x", "linkedin"])
async def test_pkce_authorization_connects_the_account_with_tokens_encrypted(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
    platform: str,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, Role.ADMIN)
    async with herald(settings, oauth_server, platform) as http:
        started = await http.post(f"/v1/accounts/connect/{platform}", headers=headers)
        assert started.status_code == 200, started.text
        url = started.json()["authorization_url"]
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["state"] == [started.json()["state"]]
        assert "code_verifier" not in url

        back = await oauth_server.authorize(url)
        callback = await http.get(f"/v1/accounts/callback/{platform}", params=back)
        assert callback.status_code == 200, callback.text
        account = callback.json()
        assert account["platform"] == platform
        assert account["status"] == "active"

        # The state is single use: the same redirect again is refused.
        again = await http.get(f"/v1/accounts/callback/{platform}", params=back)
        assert_problem(again, 400)
        assert again.json()["type"].endswith("/invalid-oauth-state")

        listed = await http.get("/v1/accounts", headers=headers)
        assert account["id"] in [a["id"] for a in listed.json()["items"]]

    async with sessions() as session:
        stored = await session.get(SocialAccount, uuid.UUID(account["id"]))
        assert stored is not None
        assert stored.workspace_id == tenant.workspace_id
        assert stored.external_id == oauth_server.user
        assert stored.access_token_enc is not None and stored.refresh_token_enc is not None
        cipher = TokenCipher.from_settings(settings)
        access = cipher.decrypt(stored.access_token_enc)
        assert access.encode() not in stored.access_token_enc
        assert any(t.access_token == access for t in oauth_server._state.tokens)
        assert stored.token_expires_at is not None
        assert stored.scopes
    assert [r.grant_type for r in oauth_server.token_requests] == ["authorization_code"]


async def test_a_wrong_state_is_a_problem_and_nothing_is_exchanged(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, Role.OWNER)
    async with herald(settings, oauth_server, "x") as http:
        started = await http.post("/v1/accounts/connect/x", headers=headers)
        back = await oauth_server.authorize(started.json()["authorization_url"])
        forged = await http.get(
            "/v1/accounts/callback/x", params={**back, "state": "not-the-state"}
        )
        assert_problem(forged, 400)
        assert forged.json()["type"].endswith("/invalid-oauth-state")
        missing = await http.get("/v1/accounts/callback/x", params={"code": back["code"]})
        assert_problem(missing, 400)
        # A state started for X is no good for LinkedIn's callback either.
        other = await http.get("/v1/accounts/callback/linkedin", params=back)
        assert_problem(other, 400)
    assert oauth_server.token_requests == []


async def test_a_wrong_code_verifier_is_refused_by_the_authorization_server(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
    redis: Redis,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, Role.ADMIN)
    async with herald(settings, oauth_server, "x") as http:
        started = await http.post("/v1/accounts/connect/x", headers=headers)
        back = await oauth_server.authorize(started.json()["authorization_url"])
        # Someone holding the code but not the verifier: swap the verifier Herald kept.
        [key] = [k async for k in redis.scan_iter(STATE_KEY + "*")]
        record = json.loads(await redis.get(key))
        record["code_verifier"] = "x" * 64
        await redis.set(key, json.dumps(record))
        callback = await http.get("/v1/accounts/callback/x", params=back)
        assert_problem(callback, 400)
        assert callback.json()["type"].endswith("/authorization-failed")
    assert [(r.grant_type, r.status) for r in oauth_server.token_requests] == [
        ("authorization_code", 400)
    ]
    async with sessions() as session:
        accounts = await session.get(SocialAccount, tenant.account_id)
        assert accounts is not None  # only the sandbox account; nothing connected


async def test_a_declined_authorization_connects_nothing(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, Role.ADMIN)
    async with herald(settings, oauth_server, "x") as http:
        started = await http.post("/v1/accounts/connect/x", headers=headers)
        declined = await http.get(
            "/v1/accounts/callback/x",
            params={"error": "access_denied", "state": started.json()["state"]},
        )
        assert_problem(declined, 400)
        assert declined.json()["type"].endswith("/authorization-denied")


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
async def test_only_admins_and_owners_connect_accounts(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
    role: Role,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, role)
    async with herald(settings, oauth_server, "x") as http:
        response = await http.post("/v1/accounts/connect/x", headers=headers)
        assert_problem(response, 403)


@pytest.mark.parametrize("body", [None, {}])
async def test_an_unconfigured_platform_is_a_conflict(
    settings: Settings, tenant: Tenant, api_url: str, body: dict[str, str] | None
) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=tenant.headers) as http:
        response = await http.post("/v1/accounts/connect/linkedin", json=body)
        assert_problem(response, 409)
        assert response.json()["type"].endswith("/platform-not-configured")


async def test_an_empty_object_is_taken_as_no_body(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, Role.ADMIN)
    async with herald(settings, oauth_server, "x") as http:
        started = await http.post("/v1/accounts/connect/x", headers=headers, json={})
        assert started.status_code == 200, started.text
        assert started.json()["authorization_url"].startswith(oauth_server.base_url)
        credentials = await http.post(
            "/v1/accounts/connect/x", headers=headers, json={"instance_url": "https://a.test"}
        )
        assert_problem(credentials, 422)


async def test_reconnecting_an_account_needing_reauth_makes_it_active(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, Role.ADMIN)
    async with herald(settings, oauth_server, "x") as http:
        started = await http.post("/v1/accounts/connect/x", headers=headers)
        back = await oauth_server.authorize(started.json()["authorization_url"])
        first = (await http.get("/v1/accounts/callback/x", params=back)).json()
        post = await http.post(
            "/v1/posts",
            headers=tenant.headers,
            json={
                "content": "held while X needs re-authorization",
                "scheduled_at": (clock.now() + timedelta(hours=1)).isoformat(),
                "targets": [{"account_id": first["id"]}],
            },
        )
        assert post.status_code == 201, post.text
        target_id = uuid.UUID(post.json()["targets"][0]["id"])
        # What the publisher does on AuthExpired: the account needs reauth, the target is held.
        async with sessions.begin() as session:
            account = await session.get(SocialAccount, uuid.UUID(first["id"]))
            assert account is not None
            account.status = "requires_reauth"
            target = await session.get(PostTarget, target_id)
            assert target is not None
            target.scheduled_at = None
            target.error_kind = "auth_expired"
        started = await http.post("/v1/accounts/connect/x", headers=headers)
        back = await oauth_server.authorize(started.json()["authorization_url"])
        second = await http.get("/v1/accounts/callback/x", params=back)
        assert second.status_code == 200, second.text
        assert second.json()["id"] == first["id"]
        assert second.json()["status"] == "active"
    async with sessions() as session:
        target = await session.get(PostTarget, target_id)
        assert target is not None
        assert target.status == "pending"
        assert target.scheduled_at is not None  # back on schedule


async def test_disconnecting_an_x_account_revokes_its_tokens(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    oauth_server: FakeOAuthServer,
) -> None:
    headers = await admin_headers(sessions, settings, tenant, Role.ADMIN)
    async with herald(settings, oauth_server, "x") as http:
        started = await http.post("/v1/accounts/connect/x", headers=headers)
        back = await oauth_server.authorize(started.json()["authorization_url"])
        account = (await http.get("/v1/accounts/callback/x", params=back)).json()
        [token] = oauth_server._state.tokens
        gone = await http.delete(f"/v1/accounts/{account['id']}", headers=headers)
        assert gone.status_code == 200, gone.text
        assert gone.json()["status"] == "disconnected"
    assert token.refresh_token and oauth_server.refresh_token_revoked(token.refresh_token)
    async with sessions() as session:
        stored = await session.get(SocialAccount, uuid.UUID(account["id"]))
        assert stored is not None
        assert stored.access_token_enc is None and stored.refresh_token_enc is None
