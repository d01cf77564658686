"""Connecting Bluesky, Telegram, Discord and Mastodon accounts with credentials: each checked
with the platform (scripted fakes with the platforms' shapes; a real fake Mastodon server),
stored encrypted, refused with a problem when the platform says no."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.main import create_app
from herald_common.crypto import TokenCipher
from herald_common.db.models import SocialAccount
from herald_common.roles import Role
from herald_common.settings import Settings
from tests.api.test_bad_input import assert_problem
from tests.conftest import Tenant
from tests.fakes.http import FakePlatform, answer
from tests.fakes.mastodon import FakeMastodon
from tests.members import make_member

BOT_TOKEN = "123456:ABC-def_ghi"
WEBHOOK = "https://discord.com/api/webhooks/111222333/secret-webhook-token"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"


@asynccontextmanager
async def herald(
    settings: Settings, fake: FakePlatform | None = None, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=changes))
    async with LifespanManager(app) as manager:
        if fake is not None:
            resources = app.state.resources
            app.state.resources = dataclasses.replace(resources, http=fake.client())
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as http:
            yield http


async def stored(sessions: async_sessionmaker[AsyncSession], account_id: str) -> SocialAccount:
    async with sessions() as session:
        account = await session.get(SocialAccount, uuid.UUID(account_id))
        assert account is not None
        return account


def decrypt(settings: Settings, value: bytes | None) -> str:
    assert value is not None
    return TokenCipher.from_settings(settings).decrypt(value)


async def test_telegram_bot_and_chat_are_checked_and_stored(
    settings: Settings, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake = FakePlatform(
        {
            ("GET", f"/bot{BOT_TOKEN}/getMe"): answer(
                200, {"ok": True, "result": {"id": 123456, "is_bot": True, "username": "hb"}}
            ),
            ("GET", f"/bot{BOT_TOKEN}/getChat"): answer(
                200,
                {
                    "ok": True,
                    "result": {"id": -1001234, "type": "channel", "title": "News", "username": "n"},
                },
            ),
        }
    )
    async with herald(settings, fake) as http:
        body = {"bot_token": BOT_TOKEN, "chat_id": "@n"}
        response = await http.post(
            "/v1/accounts/connect/telegram", json=body, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["handle"] == "@n"
        assert BOT_TOKEN not in response.text
    account = await stored(sessions, response.json()["id"])
    assert account.external_id == "-1001234"
    assert decrypt(settings, account.access_token_enc) == BOT_TOKEN
    assert fake.received(f"/bot{BOT_TOKEN}/getChat")[0].params == {"chat_id": "@n"}


async def test_telegram_unknown_token_is_refused(settings: Settings, tenant: Tenant) -> None:
    fake = FakePlatform(
        {
            ("GET", f"/bot{BOT_TOKEN}/getMe"): answer(
                401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )
        }
    )
    async with herald(settings, fake) as http:
        response = await http.post(
            "/v1/accounts/connect/telegram",
            json={"bot_token": BOT_TOKEN, "chat_id": "@n"},
            headers=tenant.headers,
        )
        assert_problem(response, 422)
        assert response.json()["type"].endswith("/credentials-refused")


async def test_discord_webhook_is_checked_and_stored(
    settings: Settings, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake = FakePlatform(
        {
            ("GET", "/api/webhooks/111222333/secret-webhook-token"): answer(
                200, {"id": "111222333", "name": "Herald", "channel_id": "9", "type": 1}
            )
        }
    )
    async with herald(settings, fake, discord_api_base="https://discord.test") as http:
        response = await http.post(
            "/v1/accounts/connect/discord", json={"webhook_url": WEBHOOK}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        bad = await http.post(
            "/v1/accounts/connect/discord",
            json={"webhook_url": "https://example.com/hook"},
            headers=tenant.headers,
        )
        assert_problem(bad, 422)
    account = await stored(sessions, response.json()["id"])
    assert decrypt(settings, account.access_token_enc) == WEBHOOK


async def test_bluesky_app_password_is_checked_with_create_session(
    settings: Settings, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    def create_session(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        if body["password"] != APP_PASSWORD:
            return httpx.Response(
                401, json={"error": "AuthenticationRequired", "message": "Invalid password"}
            )
        return httpx.Response(
            200,
            json={
                "did": "did:plc:abc123",
                "handle": "herald.test",
                "accessJwt": "a.b.c",
                "refreshJwt": "d.e.f",
            },
        )

    fake = FakePlatform({("POST", "/xrpc/com.atproto.server.createSession"): create_session})
    async with herald(settings, fake) as http:
        wrong = await http.post(
            "/v1/accounts/connect/bluesky",
            json={"handle": "herald.test", "app_password": "nope"},
            headers=tenant.headers,
        )
        assert_problem(wrong, 422)
        response = await http.post(
            "/v1/accounts/connect/bluesky",
            json={"handle": "herald.test", "app_password": APP_PASSWORD},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
    account = await stored(sessions, response.json()["id"])
    assert account.external_id == "did:plc:abc123"
    assert decrypt(settings, account.access_token_enc) == APP_PASSWORD


async def test_mastodon_token_is_checked_with_verify_credentials(
    settings: Settings, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with FakeMastodon(tokens={"good-token": "alice"}) as fake:
        base_url = fake.base_url
        async with herald(settings) as http:
            wrong = await http.post(
                "/v1/accounts/connect/mastodon",
                json={"instance_url": fake.base_url, "access_token": "bad-token"},
                headers=tenant.headers,
            )
            assert_problem(wrong, 422)
            response = await http.post(
                "/v1/accounts/connect/mastodon",
                json={"instance_url": fake.base_url, "access_token": "good-token"},
                headers=tenant.headers,
            )
            assert response.status_code == 201, response.text
            assert response.json()["handle"].startswith("@alice@")
    account = await stored(sessions, response.json()["id"])
    assert account.instance_url == base_url
    assert decrypt(settings, account.access_token_enc) == "good-token"


async def test_the_body_must_match_the_platform(settings: Settings, tenant: Tenant) -> None:
    async with herald(settings) as http:
        response = await http.post(
            "/v1/accounts/connect/bluesky",
            json={"webhook_url": WEBHOOK},
            headers=tenant.headers,
        )
        assert_problem(response, 422)
        assert response.json()["type"].endswith("/wrong-credentials")
        missing = await http.post("/v1/accounts/connect/telegram", headers=tenant.headers)
        assert_problem(missing, 422)


# Where each platform's token goes in its body shape, and the body's other fields.
TOKEN_FIELDS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mastodon": ("MastodonCredentials", "access_token", {"instance_url": "https://m.example"}),
    "telegram": ("TelegramCredentials", "bot_token", {"chat_id": "@news"}),
}


@pytest.mark.parametrize(
    ("platform", "token"),
    [
        # Tokens travel in a header or a URL path: only visible ASCII can (found by the fuzzer:
        # a pasted token with other characters was a 500).
        ("mastodon", "tok\U000d431ben"),
        ("mastodon", "two words"),
        ("telegram", "123:ABC\u00e9"),
        ("telegram", "123:ABC/../x"),
    ],
)
async def test_tokens_a_platform_could_not_be_sent_are_refused_at_the_edge(
    settings: Settings, tenant: Tenant, platform: str, token: str
) -> None:
    shape, name, others = TOKEN_FIELDS[platform]
    async with herald(settings) as http:
        response = await http.post(
            f"/v1/accounts/connect/{platform}", json={**others, name: token}, headers=tenant.headers
        )
    field = f"{shape}.{name}"  # the field, under the body shape it belongs to
    assert_problem(response, 422, field)
    [problem] = [e for e in response.json()["errors"] if e["field"] == field]
    assert "must be" in problem["message"]
    assert token not in response.text  # a secret is never echoed


@pytest.mark.parametrize(
    "webhook_url",
    [
        "https://[discord.com/api/webhooks/111/abc",  # not a URL: urlsplit raises
        "https://discord.com/api/webhooks/\u0661\u0662\u0663/abc",  # digits, but not ASCII ones
        "https://discord.com/api/webhooks/111/t\u00f6k\u00e9n",
    ],
)
async def test_webhook_urls_discord_never_issues_are_refused_without_asking_it(
    settings: Settings, tenant: Tenant, webhook_url: str
) -> None:
    fake = FakePlatform({})  # any request to it would fail the test
    async with herald(settings, fake) as http:
        response = await http.post(
            "/v1/accounts/connect/discord",
            json={"webhook_url": webhook_url},
            headers=tenant.headers,
        )
    assert_problem(response, 422)
    assert response.json()["type"].endswith("/credentials-refused")
    assert fake.requests == []


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
async def test_only_admins_connect_and_disconnect(
    settings: Settings, tenant: Tenant, sessions: async_sessionmaker[AsyncSession], role: Role
) -> None:
    member = await make_member(sessions, settings, tenant.workspace_id, role)
    async with herald(settings) as http:
        response = await http.post(
            "/v1/accounts/connect/discord", json={"webhook_url": WEBHOOK}, headers=member.headers
        )
        assert_problem(response, 403)
        gone = await http.delete(f"/v1/accounts/{tenant.account_id}", headers=member.headers)
        assert_problem(gone, 403)


async def test_disconnecting_wipes_the_tokens(
    settings: Settings, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake = FakePlatform(
        {
            ("GET", "/api/webhooks/111222333/secret-webhook-token"): answer(
                200, {"id": "111222333", "name": "Herald"}
            )
        }
    )
    async with herald(settings, fake) as http:
        connected = await http.post(
            "/v1/accounts/connect/discord", json={"webhook_url": WEBHOOK}, headers=tenant.headers
        )
        account_id = connected.json()["id"]
        gone = await http.delete(f"/v1/accounts/{account_id}", headers=tenant.headers)
        assert gone.status_code == 200, gone.text
        assert gone.json()["status"] == "disconnected"
        again = await http.post(
            "/v1/accounts/connect/discord", json={"webhook_url": WEBHOOK}, headers=tenant.headers
        )
        assert again.json()["id"] == account_id
        assert again.json()["status"] == "active"
    async with sessions() as session:
        account = await session.get(SocialAccount, uuid.UUID(account_id))
        assert account is not None and account.access_token_enc is not None


async def test_credentials_never_reach_the_logs(
    settings: Settings,
    tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # its request lines, URLs and all
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    fake = FakePlatform(
        {
            ("GET", f"/bot{BOT_TOKEN}/getMe"): answer(200, {"ok": True, "result": {"id": 1}}),
            ("GET", f"/bot{BOT_TOKEN}/getChat"): answer(
                200, {"ok": True, "result": {"id": -100, "title": "News"}}
            ),
            ("GET", "/api/webhooks/111222333/secret-webhook-token"): answer(
                401, {"message": "Invalid Webhook Token", "code": 50027}
            ),
            ("POST", "/xrpc/com.atproto.server.createSession"): answer(
                401,
                {"error": "AuthenticationRequired", "message": "Invalid password"},
            ),
        }
    )
    async with herald(settings, fake) as http:
        bodies = {
            "telegram": {"bot_token": BOT_TOKEN, "chat_id": "-100"},
            "discord": {"webhook_url": WEBHOOK},
            "bluesky": {"handle": "herald.test", "app_password": APP_PASSWORD},
        }
        for platform, body in bodies.items():
            response = await http.post(
                f"/v1/accounts/connect/{platform}", json=body, headers=tenant.headers
            )
            assert response.status_code in (201, 422), response.text
    captured = capfd.readouterr()
    logs = "\n".join([caplog.text, captured.out, captured.err])
    secrets = {"bot token": BOT_TOKEN, "webhook token": "secret-webhook-token", "app": APP_PASSWORD}
    leaked = [name for name, secret in secrets.items() if secret in logs]
    assert not leaked, f"found in the logs: {leaked}"


async def test_two_connections_of_one_new_account_at_once_make_one_account(
    settings: Settings, tenant: Tenant
) -> None:
    fake = FakePlatform(
        {
            ("GET", "/api/webhooks/111222333/secret-webhook-token"): answer(
                200, {"id": "111222333", "name": "Herald"}
            )
        }
    )
    async with herald(settings, fake) as http:
        first, second = await asyncio.gather(
            *(
                http.post(
                    "/v1/accounts/connect/discord",
                    json={"webhook_url": WEBHOOK},
                    headers=tenant.headers,
                )
                for _ in range(2)
            )
        )
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        assert first.json()["id"] == second.json()["id"]
        listed = await http.get("/v1/accounts", headers=tenant.headers)
        assert [a["platform"] for a in listed.json()["items"]].count("discord") == 1
