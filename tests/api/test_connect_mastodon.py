"""Connecting Mastodon accounts through OAuth: Herald registers its application on the instance
once, sends the person to the instance's authorization page (state + PKCE S256), exchanges the
code at the callback, and revokes the token when the account is disconnected. Against a fake
Mastodon over real HTTP (tests/fakes/mastodon_oauth.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import Fernet
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.accounts.apps import save_app
from herald_api.accounts.authorizations import STATE_KEY
from herald_api.main import create_app
from herald_common.accounts.base import RegisteredApp
from herald_common.accounts.refresh import TokenRefresher
from herald_common.crypto import TokenCipher
from herald_common.http import create_http_client
from herald_common.roles import Role
from herald_common.settings import Settings
from tests.api.test_bad_input import assert_problem
from tests.conftest import Tenant, make_tenant
from tests.fakes.mastodon import FakeMastodon
from tests.locks import backend_pid, wait_until_blocked
from tests.members import make_member

PUBLIC_URL = "http://herald.test"
CALLBACK = f"{PUBLIC_URL}/v1/accounts/callback/mastodon"


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon(tokens={"pasted-token": "carol"}) as server:
        yield server


@asynccontextmanager
async def herald(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"public_url": PUBLIC_URL, **changes}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
            yield http


async def admin(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, tenant: Tenant
) -> dict[str, str]:
    return (await make_member(sessions, settings, tenant.workspace_id, Role.ADMIN)).headers


async def connect(
    http: httpx.AsyncClient, fake: FakeMastodon, headers: dict[str, str], username: str
) -> dict[str, Any]:
    """The whole flow: start, the person approves at the instance, the callback."""
    started = await http.post(
        "/v1/accounts/connect/mastodon", json={"instance_url": fake.base_url}, headers=headers
    )
    assert started.status_code == 200, started.text
    back = await fake.oauth.authorize(started.json()["authorization_url"], username)
    callback = await http.get("/v1/accounts/callback/mastodon", params=back)
    assert callback.status_code == 200, callback.text
    account: dict[str, Any] = callback.json()
    return account


async def raw_row(sessions: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> Any:
    async with sessions() as session:
        return (await session.execute(text(sql), params)).one()


async def disconnect(http: httpx.AsyncClient, account_id: str, headers: dict[str, str]) -> None:
    gone = await http.delete(f"/v1/accounts/{account_id}", headers=headers)
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "disconnected"


async def assert_tokens_wiped(sessions: async_sessionmaker[AsyncSession], account_id: str) -> None:
    row = await raw_row(
        sessions,
        "SELECT access_token_enc, status FROM social_accounts WHERE id = :id",
        id=uuid.UUID(account_id),
    )
    assert row.access_token_enc is None and row.status == "disconnected"


async def app_rows(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(text("SELECT * FROM mastodon_apps"))).all())


def paths(fake: FakeMastodon, path: str) -> list[int | None]:
    return [r.status_code for r in fake.requests if r.path == path]


async def test_oauth_connects_the_account_with_its_token_encrypted(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        started = await http.post(
            "/v1/accounts/connect/mastodon", json={"instance_url": fake.base_url}, headers=headers
        )
        assert started.status_code == 200, started.text
        url = started.json()["authorization_url"]
        [app] = fake.oauth.apps
        assert (app.name, app.redirect_uris) == ("Herald", (CALLBACK,))
        assert app.scopes == tuple(settings.mastodon_scopes)
        assert url.startswith(f"{fake.base_url}/oauth/authorize?")
        query = parse_qs(urlsplit(url).query)
        assert query["client_id"] == [app.client_id]
        assert query["redirect_uri"] == [CALLBACK]
        assert query["scope"] == [" ".join(settings.mastodon_scopes)]
        assert query["state"] == [started.json()["state"]]
        assert query["code_challenge_method"] == ["S256"]
        assert "client_secret" not in url and "code_verifier" not in url

        back = await fake.oauth.authorize(url, "alice")
        callback = await http.get("/v1/accounts/callback/mastodon", params=back)
        assert callback.status_code == 200, callback.text
        account = callback.json()
        host = urlsplit(fake.base_url).netloc
        assert account["platform"] == "mastodon"
        assert account["handle"] == f"@alice@{host}"
        assert account["status"] == "active"

        again = await http.get("/v1/accounts/callback/mastodon", params=back)
        assert_problem(again, 400)
        assert again.json()["type"].endswith("/invalid-oauth-state")

    [issued] = fake.oauth.tokens
    assert issued.username == "alice" and issued.client_id == app.client_id
    assert paths(fake, "/oauth/token") == [200]
    row = await raw_row(
        sessions,
        "SELECT workspace_id, external_id, instance_url, access_token_enc, refresh_token_enc,"
        " token_expires_at, scopes FROM social_accounts WHERE id = :id",
        id=uuid.UUID(account["id"]),
    )
    cipher = TokenCipher.from_settings(settings)
    assert row.workspace_id == tenant.workspace_id
    assert row.external_id == f"{fake.account_for(issued.token).id}@{host}"
    assert row.instance_url == fake.base_url
    assert issued.token.encode() not in bytes(row.access_token_enc)
    assert cipher.decrypt(bytes(row.access_token_enc)) == issued.token
    # Mastodon tokens do not expire and come without a refresh token.
    assert row.refresh_token_enc is None and row.token_expires_at is None
    assert row.scopes == list(issued.scopes)
    [stored_app] = await app_rows(sessions)
    assert stored_app.instance_url == fake.base_url
    assert stored_app.client_id == app.client_id
    assert app.client_secret.encode() not in bytes(stored_app.client_secret_enc)
    assert cipher.decrypt(bytes(stored_app.client_secret_enc)) == app.client_secret


async def test_the_token_is_used_as_is_without_refreshing(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
    redis: Redis,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        account = await connect(http, fake, headers, "alice")
    async with create_http_client(settings) as client:
        refresher = TokenRefresher(settings, sessions, redis, client)
        fresh = await refresher.ensure_fresh(uuid.UUID(account["id"]))
    [issued] = fake.oauth.tokens
    assert fresh.access_token == issued.token
    assert not fresh.refreshed


async def test_the_application_is_registered_once_per_instance(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    with FakeMastodon() as other_instance:
        other_url = other_instance.base_url
        async with herald(settings) as http:
            alice = await connect(http, fake, headers, "alice")
            bob = await connect(http, fake, headers, "bob")
            elsewhere = await connect(http, other_instance, headers, "alice")
    assert len({alice["id"], bob["id"], elsewhere["id"]}) == 3
    assert paths(fake, "/api/v1/apps") == [200]
    assert paths(other_instance, "/api/v1/apps") == [200]
    [app] = fake.oauth.apps
    assert {t.client_id for t in fake.oauth.tokens} == {app.client_id}
    rows = await app_rows(sessions)
    assert sorted(r.instance_url for r in rows) == sorted([fake.base_url, other_url])


async def test_concurrent_first_connections_register_one_application(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    fake.oauth.registration_delay = 0.3  # the first registration is still in flight
    async with herald(settings) as http:
        started = await asyncio.gather(
            *(
                http.post(
                    "/v1/accounts/connect/mastodon",
                    json={"instance_url": fake.base_url},
                    headers=headers,
                )
                for _ in range(5)
            )
        )
    assert [r.status_code for r in started] == [200] * 5, [r.text for r in started]
    [app] = fake.oauth.apps
    client_ids = {
        parse_qs(urlsplit(r.json()["authorization_url"]).query)["client_id"][0] for r in started
    }
    assert client_ids == {app.client_id}
    assert len(await app_rows(sessions)) == 1


async def test_two_registrations_stored_at_once_keep_one_row(
    settings: Settings, db: None, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Without the lock (it timed out), two processes that both registered store one row, and
    both use it: the second insert waits on the first's key, then keeps the first's row."""
    cipher = TokenCipher.from_settings(settings)
    instance = "https://mastodon.example"
    first = RegisteredApp("client-1", "secret-1", CALLBACK, ("read:accounts",))
    second = RegisteredApp("client-2", "secret-2", CALLBACK, ("read:accounts",))
    async with sessions() as one, sessions() as two:
        assert (await save_app(one, cipher, instance, first)).client_id == "client-1"
        racing = asyncio.create_task(save_app(two, cipher, instance, second))
        # The second insert waits on the uncommitted row's unique key, held by the first.
        await wait_until_blocked(sessions, holder=await backend_pid(one))
        assert not racing.done()
        await one.commit()
        kept = await racing
        await two.commit()
    assert (kept.client_id, kept.client_secret) == ("client-1", "secret-1")
    [row] = await app_rows(sessions)
    assert row.client_id == "client-1"

    # A registration made for another redirect URI (HERALD_PUBLIC_URL changed) is replaced.
    moved = RegisteredApp("client-3", "secret-3", "https://new.example/cb", ("read:accounts",))
    async with sessions.begin() as session:
        assert (await save_app(session, cipher, instance, moved)).client_id == "client-3"
    [row] = await app_rows(sessions)
    assert (row.client_id, row.redirect_uri) == ("client-3", "https://new.example/cb")


async def test_a_new_public_url_registers_the_application_again(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        await connect(http, fake, headers, "alice")
    moved = "https://herald.example"
    app = create_app(settings.model_copy(update={"public_url": moved}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=moved) as http:
            started = await http.post(
                "/v1/accounts/connect/mastodon",
                json={"instance_url": fake.base_url},
                headers=headers,
            )
    assert started.status_code == 200, started.text
    assert [a.redirect_uris for a in fake.oauth.apps] == [
        (CALLBACK,),
        (f"{moved}/v1/accounts/callback/mastodon",),
    ]
    [row] = await app_rows(sessions)
    assert row.client_id == fake.oauth.apps[1].client_id


async def test_a_forged_or_missing_state_is_refused_and_nothing_is_exchanged(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        started = await http.post(
            "/v1/accounts/connect/mastodon", json={"instance_url": fake.base_url}, headers=headers
        )
        back = await fake.oauth.authorize(started.json()["authorization_url"], "alice")
        forged = await http.get(
            "/v1/accounts/callback/mastodon", params={**back, "state": "not-the-state"}
        )
        assert_problem(forged, 400)
        assert forged.json()["type"].endswith("/invalid-oauth-state")
        missing = await http.get("/v1/accounts/callback/mastodon", params={"code": back["code"]})
        assert_problem(missing, 400)
        # A Mastodon state is no good at another platform's callback, and that spends it.
        other = await http.get("/v1/accounts/callback/x", params=back)
        assert_problem(other, 400)
        spent = await http.get("/v1/accounts/callback/mastodon", params=back)
        assert_problem(spent, 400)
    assert paths(fake, "/oauth/token") == []
    assert fake.oauth.tokens == []


async def test_a_wrong_code_verifier_is_refused_by_the_instance(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
    redis: Redis,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        started = await http.post(
            "/v1/accounts/connect/mastodon", json={"instance_url": fake.base_url}, headers=headers
        )
        back = await fake.oauth.authorize(started.json()["authorization_url"], "alice")
        [key] = [k async for k in redis.scan_iter(STATE_KEY + "*")]
        record = json.loads(await redis.get(key))
        record["code_verifier"] = "y" * 64
        await redis.set(key, json.dumps(record))
        callback = await http.get("/v1/accounts/callback/mastodon", params=back)
        assert_problem(callback, 400)
        assert callback.json()["type"].endswith("/authorization-failed")
        assert "invalid_grant" in callback.json()["detail"]
    assert paths(fake, "/oauth/token") == [400]
    assert fake.oauth.tokens == []


async def test_a_declined_authorization_connects_nothing(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        started = await http.post(
            "/v1/accounts/connect/mastodon", json={"instance_url": fake.base_url}, headers=headers
        )
        declined = await http.get(
            "/v1/accounts/callback/mastodon",
            params={"error": "access_denied", "state": started.json()["state"]},
        )
        assert_problem(declined, 400)
        assert declined.json()["type"].endswith("/authorization-denied")


async def test_an_instance_refusing_registration_is_a_problem_naming_the_token_path(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    fake.oauth.registrations_open = False
    async with herald(settings) as http:
        started = await http.post(
            "/v1/accounts/connect/mastodon", json={"instance_url": fake.base_url}, headers=headers
        )
        assert_problem(started, 422)
        assert started.json()["type"].endswith("/app-registration-refused")
        assert "access_token" in started.json()["detail"]
        # The pasted token still connects such an account.
        pasted = await http.post(
            "/v1/accounts/connect/mastodon",
            json={"instance_url": fake.base_url, "access_token": "pasted-token"},
            headers=headers,
        )
        assert pasted.status_code == 201, pasted.text
    assert await app_rows(sessions) == []


async def test_an_instance_rate_limiting_the_registration_says_when_to_try_again(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    fake.oauth.registrations_throttled_for = timedelta(seconds=90)
    async with herald(settings) as http:
        started = await http.post(
            "/v1/accounts/connect/mastodon", json={"instance_url": fake.base_url}, headers=headers
        )
    assert_problem(started, 502)
    assert started.json()["type"].endswith("/platform-unavailable")
    assert "rate limiting" in started.json()["detail"]
    # X-RateLimit-Reset, an ISO 8601 time, as seconds from now.
    assert 85 <= int(started.headers["Retry-After"]) <= 90
    assert paths(fake, "/api/v1/apps") == [429]
    assert fake.oauth.apps == [] and await app_rows(sessions) == []


async def test_disconnecting_revokes_the_token_at_the_instance(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        account = await connect(http, fake, headers, "alice")
        [issued] = fake.oauth.tokens
        await disconnect(http, account["id"], headers)
    assert paths(fake, "/oauth/revoke") == [200]
    assert fake.oauth.is_revoked(issued.token)
    async with httpx.AsyncClient() as client:
        me = await client.get(
            f"{fake.base_url}/api/v1/accounts/verify_credentials",
            headers={"Authorization": f"Bearer {issued.token}"},
        )
    assert me.status_code == 401
    assert me.json() == {"error": "The access token was revoked"}
    await assert_tokens_wiped(sessions, account["id"])


async def test_disconnecting_goes_ahead_when_the_instance_cannot_revoke(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    headers = await admin(sessions, settings, tenant)
    async with herald(settings) as http:
        account = await connect(http, fake, headers, "alice")
        fake.stop()  # the instance is down
        await disconnect(http, account["id"], headers)
    await assert_tokens_wiped(sessions, account["id"])


async def test_a_token_another_workspace_still_uses_is_not_revoked(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    """Mastodon answers the same live token to the same person and application, so the same
    Mastodon account connected in two workspaces shares one token."""
    other = await make_tenant(sessions, "initech")
    async with herald(settings) as http:
        first = await connect(http, fake, await admin(sessions, settings, tenant), "alice")
        await connect(http, fake, await admin(sessions, settings, other), "alice")
        [shared] = fake.oauth.tokens
        gone = await http.delete(
            f"/v1/accounts/{first['id']}", headers=await admin(sessions, settings, tenant)
        )
        assert gone.status_code == 200, gone.text
    assert paths(fake, "/oauth/revoke") == []
    assert not fake.oauth.is_revoked(shared.token)


async def test_production_refuses_instances_inside_the_network(
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeMastodon,
) -> None:
    production = {
        "environment": "production",
        "jwt_signing_key": SecretStr("a-production-signing-key-of-forty-bytes!"),
        "encryption_keys": [SecretStr(Fernet.generate_key().decode())],
    }
    headers = tenant.headers  # an API key: access tokens are signed with the dev key here
    port = urlsplit(fake.base_url).port
    refused = {
        fake.base_url: "must use https",
        f"https://127.0.0.1:{port}": "loopback",
        f"https://localhost:{port}": "loopback",
        "https://10.0.0.8": "private",
        "https://169.254.169.254": "link-local",
        "https://[::1]": "loopback",
        "https://[::ffff:127.0.0.1]": "loopback",
        "https://someone:secret@mastodon.example": "user name or password",
    }
    async with herald(settings, **production) as http:
        for url, why in refused.items():
            response = await http.post(
                "/v1/accounts/connect/mastodon", json={"instance_url": url}, headers=headers
            )
            assert_problem(response, 422)
            assert response.json()["type"].endswith("/url-not-allowed"), url
            assert why in response.json()["detail"], (url, response.json())
        pasted = await http.post(
            "/v1/accounts/connect/mastodon",
            json={"instance_url": f"https://localhost:{port}", "access_token": "pasted-token"},
            headers=headers,
        )
        assert_problem(pasted, 422)
        assert pasted.json()["type"].endswith("/url-not-allowed")
        pds = await http.post(
            "/v1/accounts/connect/bluesky",
            json={
                "handle": "h.test",
                "app_password": "abcd-efgh",
                "pds_url": "https://169.254.169.254",
            },
            headers=headers,
        )
        assert_problem(pds, 422)
        assert pds.json()["type"].endswith("/url-not-allowed")
    assert fake.requests == []


async def test_the_fake_instance_refuses_codes_the_way_mastodon_does(fake: FakeMastodon) -> None:
    """What the tests above rely on: the fake checks PKCE, single use, the redirect URI and the
    client secret, with Doorkeeper's error bodies."""
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        registered = await http.post(
            "/api/v1/apps",
            data={"client_name": "t", "redirect_uris": CALLBACK, "scopes": "read:accounts"},
        )
        app = registered.json()
        verifier = "v" * 64
        challenge = create_s256_code_challenge(verifier)

        async def code() -> str:
            back = await fake.oauth.authorize(
                f"{fake.base_url}/oauth/authorize?response_type=code&client_id={app['client_id']}"
                f"&redirect_uri={CALLBACK}&scope=read:accounts&state=s"
                f"&code_challenge={challenge}&code_challenge_method=S256",
                "alice",
            )
            assert back["state"] == "s"
            return back["code"]

        def exchange(the_code: str, **changes: str) -> dict[str, str]:
            return {
                "grant_type": "authorization_code",
                "code": the_code,
                "client_id": app["client_id"],
                "client_secret": app["client_secret"],
                "redirect_uri": CALLBACK,
                "code_verifier": verifier,
                **changes,
            }

        first = await code()
        wrong_secret = await http.post("/oauth/token", data=exchange(first, client_secret="no"))
        assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
        assert wrong_secret.json()["error_description"]
        for changes in ({"redirect_uri": "http://evil.test/cb"}, {"code_verifier": "w" * 64}):
            refused = await http.post("/oauth/token", data=exchange(first, **changes))
            assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
        no_verifier = await http.post("/oauth/token", data=exchange(first, code_verifier=""))
        assert (no_verifier.status_code, no_verifier.json()["error"]) == (400, "invalid_request")
        granted = await http.post("/oauth/token", data=exchange(first))
        assert granted.status_code == 200, granted.text
        assert set(granted.json()) == {"access_token", "token_type", "scope", "created_at"}
        reused = await http.post("/oauth/token", data=exchange(first))
        assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")

        token = granted.json()["access_token"]
        revoke = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
        unknown = await http.post("/oauth/revoke", data={**revoke, "token": "never-issued"})
        assert (unknown.status_code, unknown.json()) == (200, {})
        not_ours = await http.post("/oauth/revoke", data={**revoke, "token": "pasted-token"})
        assert (not_ours.status_code, not_ours.json()["error"]) == (403, "unauthorized_client")
        bad_client = await http.post(
            "/oauth/revoke", data={**revoke, "client_secret": "no", "token": token}
        )
        assert bad_client.status_code == 403
        assert not fake.oauth.is_revoked(token)
        revoked = await http.post("/oauth/revoke", data={**revoke, "token": token})
        assert (revoked.status_code, revoked.json()) == (200, {})
        me = await http.get(
            "/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"}
        )
        assert (me.status_code, me.json()) == (401, {"error": "The access token was revoked"})
