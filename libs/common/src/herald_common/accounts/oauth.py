"""OAuth 2.0 clients of the platforms that connect through OAuth (X, LinkedIn, and Mastodon
with the application Herald registers on each instance): the authorization URL (authorization
code with PKCE, RFC 7636 S256), the code exchange, the refresh grant, revocation (RFC 7009)
and reading the connected profile.

Requests go through the process's shared httpx client. The URL and PKCE challenge are built
with Authlib's helpers; Authlib's own httpx client is not used (it would bring a second HTTP
stack and its import warns of a deprecation).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from herald_common.http import TRANSPORT_ERRORS
from herald_common.settings import Settings

OAUTH_PLATFORMS: tuple[str, ...] = ("x", "linkedin")


class OAuthError(Exception):
    """The platform refused (``error`` is its OAuth error code, e.g. ``invalid_grant``)."""

    def __init__(self, error: str, description: str = "", *, http_status: int | None = None):
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.http_status = http_status

    @property
    def grant_rejected(self) -> bool:
        """The code or refresh token is no good (expired, used, revoked): a person must act."""
        return self.error in {"invalid_grant", "invalid_token", "unauthorized_client"}


class OAuthUnavailable(Exception):
    """The platform could not be reached or answered with a server error: try again later."""


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


@dataclass(frozen=True, slots=True)
class Profile:
    external_id: str
    handle: str
    display_name: str | None


def oauth_client(settings: Settings, platform: str) -> OAuthClient | None:
    """The platform's configured client; ``None`` when it has no client id (or no OAuth)."""
    if platform == "x" and settings.x_client_id:
        secret = settings.x_client_secret
        return OAuthClient(
            "x",
            settings.x_client_id,
            secret.get_secret_value() if secret else None,
            settings.x_authorize_url,
            settings.x_token_url,
            settings.x_revoke_url,
            tuple(settings.x_scopes),
        )
    if platform == "linkedin" and settings.linkedin_client_id:
        secret = settings.linkedin_client_secret
        return OAuthClient(
            "linkedin",
            settings.linkedin_client_id,
            secret.get_secret_value() if secret else None,
            settings.linkedin_authorize_url,
            settings.linkedin_token_url,
            None,  # LinkedIn offers no revocation endpoint to ordinary apps.
            tuple(settings.linkedin_scopes),
        )
    return None


def mastodon_client(
    instance: str, client_id: str, client_secret: str, scopes: tuple[str, ...]
) -> OAuthClient:
    """Herald's application on one Mastodon instance (``instance`` is its origin)."""
    return OAuthClient(
        "mastodon",
        client_id,
        client_secret,
        f"{instance}/oauth/authorize",
        f"{instance}/oauth/token",
        f"{instance}/oauth/revoke",
        scopes,
        auth_method="client_secret_post",
    )


def redirect_uri(settings: Settings, platform: str) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/accounts/callback/{platform}"


def new_state() -> str:
    return str(generate_token(43))


def new_code_verifier() -> str:
    """43 to 128 characters of the unreserved set (RFC 7636 section 4.1)."""
    return str(generate_token(64))


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


async def read_profile(
    http: httpx.AsyncClient,
    settings: Settings,
    platform: str,
    access_token: str,
    instance: str | None = None,
) -> Profile:
    """Who the token belongs to. X: ``GET /2/users/me``; LinkedIn: ``GET /v2/userinfo``
    (OpenID Connect); Mastodon: ``GET /api/v1/accounts/verify_credentials`` on ``instance``."""
    if platform == "mastodon":
        return await mastodon_profile(http, instance or settings.mastodon_api_base, access_token)
    headers = {"Authorization": f"Bearer {access_token}"}
    if platform == "x":
        url = f"{settings.x_api_base.rstrip('/')}/2/users/me"
    else:
        url = f"{settings.linkedin_api_base.rstrip('/')}/v2/userinfo"
    try:
        response = await http.get(url, headers=headers)
    except TRANSPORT_ERRORS as exc:
        raise OAuthUnavailable(f"{platform} could not be reached: {exc!r}") from exc
    if response.status_code >= 500:
        raise OAuthUnavailable(f"{platform} answered {response.status_code}")
    if response.status_code != 200:
        raise OAuthError("profile_unavailable", f"HTTP {response.status_code}")
    body = _json(response)
    if platform == "x":
        data = body.get("data") or {}
        if not data.get("id") or not data.get("username"):
            raise OAuthError("profile_unavailable", "no id or username in /2/users/me")
        return Profile(str(data["id"]), str(data["username"]), data.get("name"))
    if not body.get("sub"):
        raise OAuthError("profile_unavailable", "no sub in /v2/userinfo")
    name = body.get("name") or " ".join(
        p for p in (body.get("given_name"), body.get("family_name")) if p
    )
    return Profile(str(body["sub"]), str(body.get("email") or name or body["sub"]), name or None)


async def mastodon_profile(http: httpx.AsyncClient, instance: str, access_token: str) -> Profile:
    """The account behind a Mastodon token. Account ids are per instance, so the host is part
    of the external id (``{id}@{host}``) and of the handle (``@{username}@{host}``)."""
    try:
        response = await http.get(
            f"{instance.rstrip('/')}/api/v1/accounts/verify_credentials",
            headers={"Authorization": f"Bearer {access_token}"},
        )
    except TRANSPORT_ERRORS as exc:
        raise OAuthUnavailable(f"mastodon could not be reached: {exc!r}") from exc
    if response.status_code >= 500:
        raise OAuthUnavailable(f"mastodon answered {response.status_code}")
    account = _json(response)
    if response.status_code != 200 or not account.get("id"):
        # Mastodon's API errors are {"error": "The access token is invalid"}.
        raise OAuthError(
            "profile_unavailable",
            str(account.get("error") or f"HTTP {response.status_code}"),
            http_status=response.status_code,
        )
    host = urlsplit(instance).netloc
    username = str(account.get("username") or account["id"])
    return Profile(
        f"{account['id']}@{host}", f"@{username}@{host}", account.get("display_name") or None
    )


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
    try:
        response = await http.post(client.token_url, data=data, headers=headers)
    except TRANSPORT_ERRORS as exc:
        raise OAuthUnavailable(f"{client.platform} could not be reached: {exc!r}") from exc
    if response.status_code >= 500:
        raise OAuthUnavailable(f"{client.platform} answered {response.status_code}")
    body = _json(response)
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


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
