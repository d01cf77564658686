"""OAuth 2.0 as every OAuth platform speaks it: the authorization URL (authorization code with
PKCE, RFC 7636 S256), the code exchange, the refresh grant and revocation (RFC 7009), for a
client the platform's own module describes (base.OAuthFlow). Nothing here names a platform.

Requests go through the process's shared httpx client. The URL and PKCE challenge are built
with Authlib's helpers; Authlib's own httpx client is not used (it would bring a second HTTP
stack and its import warns of a deprecation).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from herald_common.accounts.errors import OAuthError, platform_answer
from herald_common.http import TRANSPORT_ERRORS, json_object

# RFC 6749 section 10.10 asks for state values that cannot be guessed; 43 characters of
# Authlib's token alphabet carry about 256 bits.
STATE_LENGTH = 43
# 43 to 128 characters of the unreserved set (RFC 7636 section 4.1).
CODE_VERIFIER_LENGTH = 64


@dataclass(frozen=True, slots=True)
class OAuthClient:
    platform: str
    client_id: str
    client_secret: str | None
    authorize_url: str
    token_url: str
    revoke_url: str | None
    scopes: tuple[str, ...]
    # How the client proves itself to the token and revocation endpoints (RFC 6749 2.3.1):
    # HTTP Basic, or client_id and client_secret in the form body (Mastodon documents the
    # body; Doorkeeper reads either).
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scopes: tuple[str, ...]


def new_state() -> str:
    return str(generate_token(STATE_LENGTH))


def new_code_verifier() -> str:
    return str(generate_token(CODE_VERIFIER_LENGTH))


def authorization_url(client: OAuthClient, redirect: str, state: str, code_verifier: str) -> str:
    url = add_params_to_uri(
        client.authorize_url,
        [
            ("response_type", "code"),
            ("client_id", client.client_id),
            ("redirect_uri", redirect),
            ("scope", " ".join(client.scopes)),
            ("state", state),
            ("code_challenge", create_s256_code_challenge(code_verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    return str(url)


async def exchange_code(
    http: httpx.AsyncClient,
    client: OAuthClient,
    code: str,
    code_verifier: str,
    redirect: str,
    now: datetime,
) -> TokenSet:
    return await _token_request(
        http,
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": code_verifier,
        },
        now,
    )


async def refresh_tokens(
    http: httpx.AsyncClient, client: OAuthClient, refresh_token: str, now: datetime
) -> TokenSet:
    return await _token_request(
        http, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}, now
    )


async def revoke_token(http: httpx.AsyncClient, client: OAuthClient, token: str, hint: str) -> bool:
    """Ask the platform to revoke ``token``; whether it said yes (failures are not raised:
    a disconnect goes ahead either way)."""
    if client.revoke_url is None:
        return False
    headers, data = _client_auth(client, {"token": token, "token_type_hint": hint})
    try:
        response = await http.post(client.revoke_url, data=data, headers=headers)
    except TRANSPORT_ERRORS:
        return False
    return response.status_code == 200


async def read_with_token(
    http: httpx.AsyncClient, platform: str, url: str, access_token: str
) -> tuple[int, dict[str, Any]]:
    """``GET url`` with the access token (a profile, say): the status and the JSON object
    answered. A platform that cannot be reached or answers 5xx raises
    :class:`PlatformUnavailable`."""
    response = await platform_answer(
        platform, http.get(url, headers={"Authorization": f"Bearer {access_token}"})
    )
    return response.status_code, json_object(response)


def _client_auth(
    client: OAuthClient, data: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Confidential clients authenticate with HTTP Basic (``client_secret_basic``, id and
    secret form-encoded first, RFC 6749 section 2.3.1) or, for ``client_secret_post``, with
    both in the body; public clients send their ``client_id`` in the body."""
    headers = {"Accept": "application/json"}
    if client.client_secret and client.auth_method == "client_secret_post":
        return headers, {
            **data,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        }
    if client.client_secret:
        pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return headers, data
    return headers, {**data, "client_id": client.client_id}


async def _token_request(
    http: httpx.AsyncClient, client: OAuthClient, data: dict[str, str], now: datetime
) -> TokenSet:
    headers, data = _client_auth(client, data)
    response = await platform_answer(
        client.platform, http.post(client.token_url, data=data, headers=headers)
    )
    body = json_object(response)
    if response.status_code != 200 or "access_token" not in body:
        raise OAuthError(
            str(body.get("error") or "invalid_response"),
            str(body.get("error_description") or ""),
            http_status=response.status_code,
        )
    expires_in = body.get("expires_in")
    scope = body.get("scope")
    return TokenSet(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
        expires_at=now + timedelta(seconds=float(expires_in)) if expires_in else None,
        scopes=tuple(str(scope).replace(",", " ").split()) if scope else client.scopes,
    )
