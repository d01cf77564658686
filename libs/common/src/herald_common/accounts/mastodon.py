"""Connecting a Mastodon account, two ways.

**OAuth with Herald's application on the person's instance** (:class:`MastodonOAuth`).
Mastodon has no central developer portal: every instance is its own authorization server, and
an application is registered on it through ``POST /api/v1/apps`` (client_name, redirect_uris,
scopes, website -> client_id, client_secret). The API registers Herald the first time someone
connects an account on an instance and keeps the registration (herald_api/accounts/apps.py).

- Authorize at ``{instance}/oauth/authorize`` with ``HERALD_MASTODON_SCOPES``; exchange the
  code at ``{instance}/oauth/token`` with the client id and secret in the form body, as
  Mastodon documents (Doorkeeper reads Basic too).
- Tokens do not expire and come without a refresh token (Mastodon's Doorkeeper sets
  ``access_token_expires_in nil`` and no ``use_refresh_token``): nothing to refresh; a revoked
  token shows up as a 401 when publishing, which holds the account's posts until it is
  connected again.
- Revoke at ``{instance}/oauth/revoke`` (RFC 7009) with Herald's application.

**A pasted token** (:class:`MastodonToken`), for instances where Herald cannot register, made
by the person in Preferences > Development. Herald cannot revoke it on disconnect: only the
application that issued it can.

Either way the account is read with ``GET /api/v1/accounts/verify_credentials``. Account ids
are per instance, so the host is part of the external id (``{id}@{host}``) and of the handle
(``@{username}@{host}``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from herald_common.accounts.base import (
    Connection,
    CredentialCheck,
    InstanceChoice,
    InstanceOAuthFlow,
    Profile,
    RegisteredApp,
    checked_address,
    token_shaped,
)
from herald_common.accounts.errors import (
    CredentialsRefused,
    OAuthError,
    PlatformUnavailable,
    RegistrationRefused,
)
from herald_common.accounts.oauth import OAuthClient, read_with_token
from herald_common.http import TRANSPORT_ERRORS, json_object
from herald_common.platforms.mastodon import seconds_until_reset

PLATFORM = "mastodon"
INSTANCE = "Mastodon instance"
APPS_PATH = "/api/v1/apps"
INSTANCE_URL_PATTERN = r"^https?://[^\s/?#]+/?$"
# RFC 6750's b64token, the characters a bearer token may have.
BEARER_TOKEN = r"^[A-Za-z0-9\-._~+/]+=*$"  # noqa: S105 (a pattern, not a password)

BearerToken = Annotated[
    SecretStr,
    Field(min_length=1, max_length=500, json_schema_extra={"pattern": BEARER_TOKEN}),
    token_shaped(BEARER_TOKEN, "an access token: letters, digits and - . _ ~ + / only, no spaces"),
]


class MastodonInstance(InstanceChoice):
    """Connect a Mastodon account through OAuth: Herald registers its application on the
    instance (the first time only) and answers the instance's authorization URL."""

    model_config = ConfigDict(extra="forbid", title="MastodonInstance")

    instance_url: str = Field(
        max_length=500, pattern=INSTANCE_URL_PATTERN, examples=["https://mastodon.social"]
    )


class MastodonCredentials(BaseModel):
    """An instance and an access token with the ``write:statuses`` and ``read:accounts``
    scopes (Preferences > Development > New application), for instances where Herald cannot
    register its application. Checked with ``verify_credentials``. Herald cannot revoke such
    a token when the account is disconnected; prefer :class:`MastodonInstance`."""

    model_config = ConfigDict(extra="forbid", title="MastodonCredentials")

    instance_url: str = Field(
        max_length=500, pattern=INSTANCE_URL_PATTERN, examples=["https://mastodon.social"]
    )
    access_token: BearerToken


class MastodonOAuth(InstanceOAuthFlow):
    platform = PLATFORM
    instance_kind = INSTANCE
    body = MastodonInstance

    def scopes(self) -> tuple[str, ...]:
        return tuple(self.settings.mastodon_scopes)

    def client(self, app: RegisteredApp) -> OAuthClient:
        return OAuthClient(
            self.platform,
            app.client_id,
            app.client_secret,
            f"{self.instance}/oauth/authorize",
            f"{self.instance}/oauth/token",
            f"{self.instance}/oauth/revoke",
            app.scopes,
            auth_method="client_secret_post",
        )

    async def register(self, redirect: str, scopes: tuple[str, ...]) -> RegisteredApp:
        """``POST /api/v1/apps``. Mastodon answers a CredentialApplication (``client_id``,
        ``client_secret``, ...) or 422 ``{"error": "Validation failed: ..."}``; an instance
        that closed registration, or a server that is not Mastodon, answers some other 4xx.

        Registering spends the instance's unauthenticated API allowance (rack_attack
        ``throttle_unauthenticated_api``: 300 requests per 5 minutes per IP, which
        ``POST /api/v1/apps`` falls under), hence once per instance."""
        settings = self.settings
        form = {
            "client_name": settings.mastodon_app_name,
            # One URI as a string: arrays are only understood from Mastodon 4.3 on.
            "redirect_uris": redirect,
            "scopes": " ".join(scopes),
        }
        if settings.mastodon_app_website:
            form["website"] = settings.mastodon_app_website
        try:
            response = await self.http.post(
                self.instance + APPS_PATH, data=form, headers={"Accept": "application/json"}
            )
        except TRANSPORT_ERRORS as exc:
            raise _unreachable(f"could not be reached: {exc!r}") from exc
        body = json_object(response)
        if response.status_code == 429:
            wait = seconds_until_reset(response)
            raise PlatformUnavailable(
                PLATFORM,
                "is rate limiting the registration",
                detail="The Mastodon instance is rate limiting Herald; try again later.",
                retry_after=None if wait is None else max(0.0, wait),
            )
        if response.status_code >= 500:
            raise _unreachable(f"answered {response.status_code}")
        if (
            response.status_code != 200
            or not body.get("client_id")
            or not body.get("client_secret")
        ):
            why = str(body.get("error") or f"HTTP {response.status_code}")
            raise RegistrationRefused(
                f"The Mastodon instance did not let Herald register ({why}). Connect with an "
                "access token instead (instance_url and access_token)."
            )
        return RegisteredApp(str(body["client_id"]), str(body["client_secret"]), redirect, scopes)

    async def read_profile(self, access_token: str) -> Profile:
        return await verify_credentials(self.http, self.instance, access_token)


class MastodonToken(CredentialCheck[MastodonCredentials]):
    platform = PLATFORM
    body = MastodonCredentials

    async def check(self, credentials: MastodonCredentials) -> Connection:
        instance = await checked_address(self.settings, INSTANCE, credentials.instance_url)
        token = credentials.access_token.get_secret_value()
        try:
            profile = await verify_credentials(self.http, instance, token)
        except OAuthError as exc:
            raise CredentialsRefused(PLATFORM, exc.description or exc.error) from None
        return Connection(
            platform=PLATFORM,
            external_id=profile.external_id,
            handle=profile.handle,
            display_name=profile.display_name,
            access_token=token,
            instance_url=instance,
        )


async def verify_credentials(http: httpx.AsyncClient, instance: str, access_token: str) -> Profile:
    """The account behind a token on ``instance``; :class:`OAuthError` when the instance
    refuses the token (Mastodon's API errors are ``{"error": "The access token is invalid"}``)."""
    url = f"{instance.rstrip('/')}/api/v1/accounts/verify_credentials"
    status, account = await read_with_token(http, PLATFORM, url, access_token)
    if status != 200 or not account.get("id"):
        raise OAuthError(
            "profile_unavailable",
            str(account.get("error") or f"HTTP {status}"),
            http_status=status,
        )
    host = urlsplit(instance).netloc
    username = str(account.get("username") or account["id"])
    return Profile(
        f"{account['id']}@{host}", f"@{username}@{host}", account.get("display_name") or None
    )


def _unreachable(why: str) -> PlatformUnavailable:
    return PlatformUnavailable(
        PLATFORM, why, detail="The Mastodon instance could not be reached; try again."
    )
