"""Social accounts as the API shows them: never with tokens."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from herald_api.posts.schemas import UtcDatetime
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

    X = "x"
    LINKEDIN = "linkedin"
    BLUESKY = "bluesky"
    MASTODON = "mastodon"
    TELEGRAM = "telegram"
    DISCORD = "discord"


class OAuthPlatform(StrEnum):
    """Platforms that connect through OAuth 2.0 (and so have a callback)."""

    X = "x"
    LINKEDIN = "linkedin"
    MASTODON = "mastodon"


class AuthorizationStarted(BaseModel):
    """Send the person to ``authorization_url``; the platform brings them back to
    ``GET /v1/accounts/callback/{platform}``, which connects the account."""

    authorization_url: str
    state: str = Field(description="Echoed by the platform to the callback; single use.")
    expires_at: UtcDatetime = Field(description="The callback must come before this time.")


class BlueskyCredentials(BaseModel):
    """A Bluesky handle and an app password (Settings > App passwords), never the account's
    main password. Checked with ``com.atproto.server.createSession``."""

    model_config = ConfigDict(extra="forbid", title="BlueskyCredentials")

    handle: str = Field(min_length=3, max_length=253, examples=["herald.bsky.social"])
    app_password: SecretStr = Field(min_length=1, max_length=200)
    pds_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://[^\s/?#]+/?$",
        description="The account's PDS, when not the default (bsky.social).",
    )


class TelegramCredentials(BaseModel):
    """A bot token from @BotFather and the chat it posts to (the bot must be a member, an
    administrator for channels). Checked with ``getMe`` and ``getChat``."""

    model_config = ConfigDict(extra="forbid", title="TelegramCredentials")

    bot_token: SecretStr = Field(min_length=1, max_length=200)
    chat_id: str = Field(
        min_length=1, max_length=100, pattern=r"^(-?\d+|@\w+)$", examples=["@herald_news"]
    )


class DiscordCredentials(BaseModel):
    """A channel webhook URL (Channel settings > Integrations > Webhooks). Checked with a GET
    on the webhook."""

    model_config = ConfigDict(extra="forbid", title="DiscordCredentials")

    webhook_url: SecretStr = Field(min_length=1, max_length=500)


INSTANCE_URL_PATTERN = r"^https?://[^\s/?#]+/?$"


class MastodonInstance(BaseModel):
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
    access_token: SecretStr = Field(min_length=1, max_length=500)


ConnectCredentials = (
    BlueskyCredentials
    | TelegramCredentials
    | DiscordCredentials
    | MastodonCredentials
    | MastodonInstance
)
