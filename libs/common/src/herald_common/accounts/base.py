"""How a platform's accounts connect: the contract each platform's module fulfils, one module
per platform (x.py, linkedin.py, mastodon.py, bluesky.py, telegram.py, discord.py), listed in
registry.py. docs/accounts.md ("Adding a platform") says how to add one.

Three ways to connect:

- :class:`AppOAuthFlow`: OAuth 2.0 with Herald's one application at the platform, configured
  in settings (X, LinkedIn). The module says where to authorize, which scopes, how to exchange
  the code and refresh, and how to read who the token belongs to.
- :class:`InstanceOAuthFlow`: OAuth 2.0 where every server is its own authorization server
  and Herald registers an application on each (Mastodon).
- :class:`CredentialCheck`: credentials a person pastes (a bot token, an app password, a
  webhook URL), checked with the platform before they are stored.

Modules here talk to the platform and nothing else: the API routes requests to them, keeps
the OAuth state, registered applications and accounts (herald_api/accounts), and the token
refresher (refresh.py) stores what a refresh returns.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Generic, TypeVar

import httpx
from pydantic import AfterValidator, BaseModel, SecretStr

from herald_common import caller_urls
from herald_common.accounts import oauth
from herald_common.accounts.errors import AddressRefused
from herald_common.accounts.oauth import OAuthClient, TokenSet
from herald_common.settings import Settings


@dataclass(frozen=True, slots=True)
class Profile:
    """Who a token or credentials belong to, as the platform says."""

    external_id: str
    handle: str
    display_name: str | None


@dataclass(frozen=True, slots=True)
class Connection:
    """What a successful connection learned about the account, tokens in the clear."""

    platform: str
    external_id: str
    handle: str
    display_name: str | None
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    scopes: Sequence[str] = ()
    instance_url: str | None = None


@dataclass(frozen=True, slots=True)
class RegisteredApp:
    """Herald's application on one server of an :class:`InstanceOAuthFlow` platform."""

    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: tuple[str, ...]


class InstanceChoice(BaseModel):
    """A body naming the person's server, which starts an :class:`InstanceOAuthFlow`."""

    instance_url: str


class OAuthFlow(ABC):
    """Connecting through OAuth 2.0, authorization code with PKCE. The defaults are RFC 6749
    and RFC 7009 as oauth.py speaks them; a platform that differs overrides the step."""

    platform: ClassVar[str]

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    def authorization_url(
        self, client: OAuthClient, redirect: str, state: str, code_verifier: str
    ) -> str:
        """Where to send the person to approve Herald."""
        return oauth.authorization_url(client, redirect, state, code_verifier)

    async def exchange_code(
        self, client: OAuthClient, code: str, code_verifier: str, redirect: str, now: datetime
    ) -> TokenSet:
        """The tokens the authorization code is worth."""
        return await oauth.exchange_code(self.http, client, code, code_verifier, redirect, now)

    @abstractmethod
    async def read_profile(self, access_token: str) -> Profile:
        """Who the token belongs to."""

    async def refresh(self, client: OAuthClient, refresh_token: str, now: datetime) -> TokenSet:
        """New tokens for a refresh token (which the platform may rotate)."""
        return await oauth.refresh_tokens(self.http, client, refresh_token, now)

    async def revoke(self, client: OAuthClient, token: str, hint: str) -> bool:
        """Ask the platform to revoke ``token`` (``hint``: ``access_token`` or
        ``refresh_token``); whether it said yes. Never raises: disconnecting goes ahead."""
        return await oauth.revoke_token(self.http, client, token, hint)


class AppOAuthFlow(OAuthFlow):
    """OAuth with Herald's one application at the platform, configured in settings."""

    @abstractmethod
    def client(self) -> OAuthClient | None:
        """Herald's client at the platform; ``None`` when it is not configured here
        (:func:`configured_client` builds it from the platform's settings)."""


def configured_client(
    platform: str,
    client_id: str | None,
    client_secret: SecretStr | None,
    authorize_url: str,
    token_url: str,
    revoke_url: str | None,
    scopes: Sequence[str],
) -> OAuthClient | None:
    """Herald's client from a platform's ``HERALD_<PLATFORM>_*`` settings, or ``None`` without
    a client id. Without a secret it is a public client (its id goes in the form body)."""
    if not client_id:
        return None
    secret = client_secret.get_secret_value() if client_secret else None
    return OAuthClient(
        platform, client_id, secret, authorize_url, token_url, revoke_url, tuple(scopes)
    )


class InstanceOAuthFlow(OAuthFlow):
    """OAuth where every server (``instance``, its origin) is its own authorization server and
    Herald registers an application on each the first time an account there connects. The
    API keeps the registrations (herald_api/accounts/apps.py); tokens of such platforms do
    not expire, so nothing refreshes them."""

    # How the person's server is named in messages, e.g. "Mastodon instance".
    instance_kind: ClassVar[str]
    # The body that names the server and so starts this flow.
    body: ClassVar[type[InstanceChoice]]

    def __init__(self, settings: Settings, http: httpx.AsyncClient, instance: str) -> None:
        super().__init__(settings, http)
        self.instance = instance

    @abstractmethod
    def scopes(self) -> tuple[str, ...]:
        """The scopes Herald's application asks for (a registration with others is redone)."""

    @abstractmethod
    async def register(self, redirect: str, scopes: tuple[str, ...]) -> RegisteredApp:
        """Register Herald's application on the instance."""

    @abstractmethod
    def client(self, app: RegisteredApp) -> OAuthClient:
        """The client of a registered application."""


Credentials = TypeVar("Credentials", bound=BaseModel)


class CredentialCheck(ABC, Generic[Credentials]):
    """Connecting with credentials a person gives (the ``body`` model, validated at the edge),
    checked with the platform before anything is stored. Credentials are never logged."""

    platform: ClassVar[str]
    body: ClassVar[type[BaseModel]]

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    @abstractmethod
    async def check(self, credentials: Credentials) -> Connection:
        """The account the credentials act for, or :class:`CredentialsRefused` (or
        :class:`PlatformUnavailable`, :class:`AddressRefused`)."""


async def checked_address(settings: Settings, what: str, url: str) -> str:
    """A URL the caller chose (a PDS, a Mastodon instance), which Herald will fetch and send
    credentials to, as its normalised origin. Outside dev and test it must be https and
    resolve to public addresses only (herald_common.caller_urls: no SSRF into our network);
    refused with :class:`AddressRefused` naming ``what``."""
    try:
        return await caller_urls.checked_origin(
            url, environment=settings.environment, resolve_within=settings.http_timeout_seconds
        )
    except caller_urls.RefusedURL as exc:
        raise AddressRefused(what, exc.reason) from None


def token_shaped(pattern: str, shape: str) -> AfterValidator:
    """A check of a secret's characters (pydantic's SecretStr takes no ``pattern``); the
    pattern is also written into the OpenAPI schema. Tokens travel in an Authorization header
    or a URL path, where other characters cannot go (a 500 or a request to another path)."""
    compiled = re.compile(pattern)

    def check(value: SecretStr) -> SecretStr:
        if compiled.fullmatch(value.get_secret_value()) is None:
            raise ValueError(f"must be {shape}")
        return value

    return AfterValidator(check)
