"""Accounts: sign-up, sign-in, refresh-token rotation and reuse, sign-out, passwords, email."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from pydantic import SecretStr

from herald_api.auth.tokens import TokenSigner
from herald_api.mail import Mail, Outbox
from herald_common import clock
from herald_common.settings import Settings
from tests.api.test_bad_input import assert_problem
from tests.conftest import Tenant
from tests.services import wait_for

PASSWORD = "a long enough password"


def new_email() -> str:
    return f"person-{uuid.uuid4().hex[:10]}@Example.COM"


@pytest.fixture
async def anonymous(api_url: str, db: None) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url) as http:
        yield http


async def sign_up(http: httpx.AsyncClient, email: str, **extra: Any) -> dict[str, Any]:
    response = await http.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/v1/auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def mail_to(outbox: Outbox, address: str, subject_word: str) -> Mail:
    """The mail sent to ``address`` (sent after the response, hence the wait)."""

    async def arrived() -> bool:
        return any(subject_word in m.subject for m in outbox.to(address))

    await wait_for(arrived, timeout=5)
    return [m for m in outbox.to(address) if subject_word in m.subject][-1]


def token_of(mail: Mail) -> str:
    assert mail.link is not None
    return parse_qs(urlparse(mail.link).query)["token"][0]


async def test_sign_up_makes_an_owned_workspace_and_signs_in(
    anonymous: httpx.AsyncClient, outbox: Outbox
) -> None:
    email = new_email()
    body = await sign_up(anonymous, email, workspace_name="Acme social")
    assert body["user"]["email"] == email.lower()
    assert body["user"]["email_verified"] is False
    assert body["workspace"]["role"] == "owner"
    assert body["workspace"]["workspace_name"] == "Acme social"
    assert PASSWORD not in str(body)

    headers = bearer(body["tokens"]["access_token"])
    me = (await anonymous.get("/v1/me", headers=headers)).json()
    assert [w["workspace_id"] for w in me["workspaces"]] == [body["workspace"]["workspace_id"]]
    # One workspace: no X-Workspace-ID needed.
    workspace = await anonymous.get("/v1/workspace", headers=headers)
    assert workspace.json()["name"] == "Acme social"
    assert (await mail_to(outbox, email.lower(), "Confirm")).link is not None


async def test_email_is_verified_by_the_mailed_token_only(
    anonymous: httpx.AsyncClient, outbox: Outbox
) -> None:
    email = new_email().lower()
    body = await sign_up(anonymous, email)
    token = token_of(await mail_to(outbox, email, "Confirm"))

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_problem(await anonymous.post("/v1/auth/verify-email", json={"token": forged}), 400)
    verified = await anonymous.post("/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 204, verified.text
    me = await anonymous.get("/v1/me", headers=bearer(body["tokens"]["access_token"]))
    assert me.json()["user"]["email_verified"] is True


async def test_an_email_signs_up_once_whatever_its_case(anonymous: httpx.AsyncClient) -> None:
    email = new_email()
    await sign_up(anonymous, email)
    again = await anonymous.post(
        "/v1/auth/signup", json={"email": email.upper(), "password": PASSWORD}
    )
    assert_problem(again, 409)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "short@example.com", "password": "short"},
        {"email": "x@example.com", "password": PASSWORD, "role": "owner"},
    ],
)
async def test_sign_up_refuses_bad_fields(
    anonymous: httpx.AsyncClient, body: dict[str, str]
) -> None:
    assert_problem(await anonymous.post("/v1/auth/signup", json=body), 422)


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    anonymous: httpx.AsyncClient,
) -> None:
    email = new_email()
    await sign_up(anonymous, email)
    wrong = await log_in(anonymous, email, "not the password at all")
    unknown = await log_in(anonymous, new_email())
    assert_problem(wrong, 401)
    assert_problem(unknown, 401)
    assert wrong.json() == unknown.json()
    assert (await log_in(anonymous, email.upper())).status_code == 200


async def test_refresh_rotates_and_a_reused_token_ends_the_whole_sign_in(
    anonymous: httpx.AsyncClient,
) -> None:
    email = new_email()
    await sign_up(anonymous, email)
    first = (await log_in(anonymous, email)).json()
    second = await anonymous.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert (await anonymous.get("/v1/me", headers=bearer(pair["access_token"]))).status_code == 200

    # The first token again: someone else holds a copy. Everything from that login ends.
    reused = await anonymous.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_problem(reused, 401)
    later = await anonymous.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(later, 401)
    assert_problem(await anonymous.get("/v1/me", headers=bearer(pair["access_token"])), 401)
    # Another sign-in of the same person is untouched.
    assert (await log_in(anonymous, email)).status_code == 200


async def test_logout_ends_access_and_refresh_tokens(anonymous: httpx.AsyncClient) -> None:
    email = new_email()
    await sign_up(anonymous, email)
    pair = (await log_in(anonymous, email)).json()
    headers = bearer(pair["access_token"])
    assert (await anonymous.post("/v1/auth/logout", headers=headers)).status_code == 204
    assert_problem(await anonymous.get("/v1/workspace", headers=headers), 401)
    refreshed = await anonymous.post(
        "/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_problem(refreshed, 401)


async def test_access_tokens_expire(anonymous: httpx.AsyncClient, settings: Settings) -> None:
    body = await sign_up(anonymous, new_email())
    headers = bearer(body["tokens"]["access_token"])
    clock.advance(timedelta(seconds=settings.access_token_ttl_seconds + 1))
    expired = await anonymous.get("/v1/me", headers=headers)
    assert_problem(expired, 401)
    assert "invalid_token" in expired.headers["www-authenticate"]
    # The refresh token outlives it.
    refreshed = await anonymous.post(
        "/v1/auth/refresh", json={"refresh_token": body["tokens"]["refresh_token"]}
    )
    assert refreshed.status_code == 200


async def test_password_change_needs_the_current_one_and_ends_other_sign_ins(
    anonymous: httpx.AsyncClient,
) -> None:
    email = new_email()
    this = (await sign_up(anonymous, email))["tokens"]
    other = (await log_in(anonymous, email)).json()
    new_password = "an entirely new password"
    wrong = await anonymous.post(
        "/v1/me/password",
        headers=bearer(this["access_token"]),
        json={"current_password": "not it at all", "new_password": new_password},
    )
    assert_problem(wrong, 403)
    changed = await anonymous.post(
        "/v1/me/password",
        headers=bearer(this["access_token"]),
        json={"current_password": PASSWORD, "new_password": new_password},
    )
    assert changed.status_code == 204, changed.text
    assert (await anonymous.get("/v1/me", headers=bearer(this["access_token"]))).status_code == 200
    assert_problem(await anonymous.get("/v1/me", headers=bearer(other["access_token"])), 401)
    assert_problem(await log_in(anonymous, email), 401)
    assert (await log_in(anonymous, email, new_password)).status_code == 200


async def test_password_reset_by_mailed_token_works_once_and_ends_every_sign_in(
    anonymous: httpx.AsyncClient, outbox: Outbox
) -> None:
    email = new_email().lower()
    tokens = (await sign_up(anonymous, email))["tokens"]
    requested = await anonymous.post("/v1/auth/password-reset", json={"email": email})
    assert requested.status_code == 202
    token = token_of(await mail_to(outbox, email, "Reset"))
    new_password = "the password after reset"
    confirm = {"token": token, "new_password": new_password}
    reset = await anonymous.post("/v1/auth/password-reset/confirm", json=confirm)
    assert reset.status_code == 204, reset.text
    assert_problem(await anonymous.post("/v1/auth/password-reset/confirm", json=confirm), 400)
    assert_problem(await anonymous.get("/v1/me", headers=bearer(tokens["access_token"])), 401)
    assert (await log_in(anonymous, email, new_password)).status_code == 200


async def test_password_reset_for_an_unknown_email_answers_the_same_and_mails_nobody(
    anonymous: httpx.AsyncClient, outbox: Outbox
) -> None:
    email = new_email().lower()
    response = await anonymous.post("/v1/auth/password-reset", json={"email": email})
    assert response.status_code == 202
    assert response.content == b""
    assert outbox.to(email) == []


async def test_api_keys_cannot_use_routes_that_act_for_a_person(
    api_url: str, tenant: Tenant
) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=tenant.headers) as http:
        assert_problem(await http.get("/v1/me"), 403)
        assert_problem(await http.post("/v1/workspaces", json={"name": "Mine"}), 403)


async def test_a_token_signed_with_another_key_is_refused(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    """The same user and live session, signed with a key that is not the server's."""
    token = (await sign_up(anonymous, new_email()))["tokens"]["access_token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other_key = settings.model_copy(update={"jwt_signing_key": SecretStr("x" * 48)})
    forged = TokenSigner(other_key).access_token(uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]))
    assert (await anonymous.get("/v1/me", headers=bearer(token))).status_code == 200
    assert_problem(await anonymous.get("/v1/me", headers=bearer(forged)), 401)
