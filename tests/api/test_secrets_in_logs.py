"""No password, token or key ever reaches the logs.

A whole flow (sign-up, email verification, login, refresh and a replayed refresh token, a
wrong password, an API key, an account and a scheduled post with it, an invitation, a password
reset) runs with every logger at DEBUG, SQL statements included, and mail going through the
log sender; then none of the secrets handed out or typed in may appear in what was written.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from herald_api.mail import LogMailSender, Mail, Outbox
from herald_api.main import create_app
from herald_common import clock
from herald_common.settings import Settings
from tests.api.test_auth import mail_to, token_of
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import Error, FakeOpenAI, Text, posts


class LoggedAndKept:
    """The log sender (what production without SMTP does), keeping a copy for the test."""

    def __init__(self, settings: Settings) -> None:
        self.outbox = Outbox()
        self.log = LogMailSender(settings)

    async def send(self, mail: Mail) -> None:
        await self.log.send(mail)
        await self.outbox.send(mail)


async def test_no_secret_appears_in_the_logs_across_a_whole_flow(
    settings: Settings,
    redis: Redis,
    db: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    fake_openai: FakeOpenAI,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # its request lines, URLs and all
    # SQLAlchemy holds its own loggers at WARNING; statements and parameters at INFO.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    mail = LoggedAndKept(settings)
    app = create_app(settings, mailer=mail)
    password = f"first-password-{uuid.uuid4().hex}"
    new_password = f"second-password-{uuid.uuid4().hex}"
    email = f"careful-{uuid.uuid4().hex[:8]}@example.com"
    secrets: dict[str, str] = {"password": password, "new password": new_password}

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as http:

            async def call(method: str, path: str, token: str | None = None, **kw: Any) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = await http.request(method, path, headers=headers, **kw)
                assert response.status_code < 500, response.text
                return response.json() if response.content else None

            signed_up = await call(
                "POST", "/v1/auth/signup", json={"email": email, "password": password}
            )
            secrets["sign-up access token"] = signed_up["tokens"]["access_token"]
            secrets["sign-up refresh token"] = signed_up["tokens"]["refresh_token"]
            secrets["verification token"] = token_of(await mail_to(mail.outbox, email, "Confirm"))
            await call(
                "POST", "/v1/auth/verify-email", json={"token": secrets["verification token"]}
            )

            await call("POST", "/v1/auth/login", json={"email": email, "password": "wrong guess"})
            login = await call(
                "POST", "/v1/auth/login", json={"email": email, "password": password}
            )
            secrets["access token"] = login["access_token"]
            secrets["refresh token"] = login["refresh_token"]
            refreshed = await call(
                "POST", "/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}
            )
            secrets["rotated refresh token"] = refreshed["refresh_token"]
            # Replaying the old refresh token is logged as an incident, without the token.
            await call("POST", "/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
            access = signed_up["tokens"]["access_token"]

            key = await call(
                "POST", "/v1/api-keys", access, json={"name": "ci", "scopes": ["write"]}
            )
            secrets["API key"] = key["key"]
            account = await call(
                "POST", "/v1/accounts", key["key"], json={"platform": "sandbox", "handle": "logs"}
            )
            when = (clock.now() + timedelta(hours=1)).isoformat()
            post = await call(
                "POST",
                "/v1/posts",
                key["key"],
                json={
                    "content": "scheduled while logging",
                    "scheduled_at": when,
                    "targets": [{"account_id": account["id"]}],
                },
            )
            await call("GET", f"/v1/posts/{post['id']}", key["key"])
            await call("GET", "/v1/posts", f"{key['key']}-not-quite")
            # The AI model: a call that works and one the provider refuses quoting the key.
            fake_openai.queue(
                Text(posts("written while logging")),
                Error(401, f"Incorrect API key provided: {OPENAI_KEY}.", "invalid_request_error",
                      "invalid_api_key"),
            )  # fmt: skip
            ai = {"brief": "logs", "account_ids": [account["id"]]}
            await call("POST", "/v1/ai/generate", key["key"], json=ai)
            refused = await http.post(
                "/v1/ai/generate", json=ai, headers={"Authorization": f"Bearer {key['key']}"}
            )
            assert refused.status_code == 502

            guest = f"guest-{uuid.uuid4().hex[:8]}@example.com"
            await call(
                "POST", "/v1/workspace/invitations", access, json={"email": guest, "role": "viewer"}
            )
            secrets["invitation token"] = token_of(await mail_to(mail.outbox, guest, "invited"))

            await call("POST", "/v1/auth/password-reset", json={"email": email})
            secrets["reset token"] = token_of(await mail_to(mail.outbox, email, "Reset"))
            await call(
                "POST",
                "/v1/auth/password-reset/confirm",
                json={"token": secrets["reset token"], "new_password": new_password},
            )
            await call("POST", "/v1/auth/login", json={"email": email, "password": new_password})

    captured = capfd.readouterr()
    logs = "\n".join([caplog.text, captured.out, captured.err])
    # The logs did record the flow (so this test can see a leak when there is one).
    assert signed_up["user"]["id"] in logs
    assert "refresh token reused" in logs
    assert "INSERT INTO users" in logs
    assert "mail not sent (log backend)" in logs
    assert "/chat/completions" in logs and "ai call failed" in logs
    secrets["AI model key"] = OPENAI_KEY
    leaked = [name for name, secret in secrets.items() if secret in logs]
    assert not leaked, f"found in the logs: {leaked}"
    assert settings.jwt_signing_key.get_secret_value() not in logs
