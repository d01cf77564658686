"""Social accounts as the API shows them: never with tokens."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

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


def _token_shaped(pattern: str, shape: str) -> AfterValidator:
    """A check of a secret's characters (pydantic's SecretStr takes no ``pattern``); the
    pattern is also written into the OpenAPI schema. Tokens travel in an Authorization header
    or a URL path, where other characters cannot go (a 500 or a request to another path)."""
    compiled = re.compile(pattern)

    def check(value: SecretStr) -> SecretStr:
        if compiled.fullmatch(value.get_secret_value()) is None:
            raise ValueError(f"must be {shape}")
        return value

    return AfterValidator(check)


# Telegram's documented shape: the bot's id, a colon, then the secret.
TELEGRAM_BOT_TOKEN = r"^\d+:[A-Za-z0-9_-]+$"  # noqa: S105 (a pattern, not a password)
# RFC 6750's b64token, the characters a bearer token may have.
BEARER_TOKEN = r"^[A-Za-z0-9\-._~+/]+=*$"  # noqa: S105 (a pattern, not a password)

BotToken = Annotated[
    SecretStr,
    Field(min_length=1, max_length=200, json_schema_extra={"pattern": TELEGRAM_BOT_TOKEN}),
    _token_shaped(TELEGRAM_BOT_TOKEN, "a bot token from @BotFather, like 123456:ABC-def"),
]
BearerToken = Annotated[
    SecretStr,
    Field(min_length=1, max_length=500, json_schema_extra={"pattern": BEARER_TOKEN}),
    _token_shaped(BEARER_TOKEN, "an access token: letters, digits and - . _ ~ + / only, no spaces"),
]


class TelegramCredentials(BaseModel):
    """A bot token from @BotFather and the chat it posts to (the bot must be a member, an
    administrator for channels). Checked with ``getMe`` and ``getChat``."""

    model_config = ConfigDict(extra="forbid", title="TelegramCredentials")

    bot_token: BotToken
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
    access_token: BearerToken


ConnectCredentials = (
    BlueskyCredentials
    | TelegramCredentials
    | DiscordCredentials
    | MastodonCredentials
    | MastodonInstance
)
