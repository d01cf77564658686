"""Social accounts as the API shows them: never with tokens."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from herald_api.posts.schemas import UtcDatetime
from herald_common.accounts.bluesky import BlueskyCredentials
from herald_common.accounts.discord import DiscordCredentials
from herald_common.accounts.mastodon import MastodonCredentials, MastodonInstance
from herald_common.accounts.telegram import TelegramCredentials
from herald_common.statuses import AccountStatus


class AccountCreate(BaseModel):
    """Add an account directly. Only the ``sandbox`` platform connects this way."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["sandbox"]
    handle: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    display_name: str | None = Field(default=None, max_length=200)


class AccountOut(BaseModel):
    id: uuid.UUID
    platform: str
    handle: str
    display_name: str | None
    status: AccountStatus
    created_at: UtcDatetime


class AccountList(BaseModel):
    items: list[AccountOut]


class ConnectablePlatform(StrEnum):
    """Platforms connected through ``POST /v1/accounts/connect/{platform}``. X and LinkedIn
    use OAuth (the answer is an authorization URL), and so does Mastodon given only its
    instance; the others take credentials in the body."""

    # The same list as herald_common.accounts.registry's (a test holds them equal).

    X = "x"
    LINKEDIN = "linkedin"
    BLUESKY = "bluesky"
    MASTODON = "mastodon"
    TELEGRAM = "telegram"
    DISCORD = "discord"


class OAuthPlatform(StrEnum):
    """Platforms that connect through OAuth 2.0 (and so have a callback)."""

    # The registry's OAUTH_PLATFORMS (a test holds them equal).

    X = "x"
    LINKEDIN = "linkedin"
    MASTODON = "mastodon"


class AuthorizationStarted(BaseModel):
    """Send the person to ``authorization_url``; the platform brings them back to
    ``GET /v1/accounts/callback/{platform}``, which connects the account."""

    authorization_url: str
    state: str = Field(description="Echoed by the platform to the callback; single use.")
    expires_at: UtcDatetime = Field(description="The callback must come before this time.")


class NoCredentials(BaseModel):
    """An empty object: the same as no body (for the OAuth platforms, which take none)."""

    model_config = ConfigDict(extra="forbid", title="NoCredentials")


# Each platform's credentials are described in its module under herald_common/accounts/.
ConnectCredentials = (
    BlueskyCredentials
    | TelegramCredentials
    | DiscordCredentials
    | MastodonCredentials
    | MastodonInstance
)
