"""Connecting a Telegram chat: a bot token from @BotFather and the chat the bot posts to,
checked with the Bot API's ``getMe`` (the token is live) and ``getChat`` (the bot can see
the chat) on ``HERALD_TELEGRAM_API_BASE`` (core.telegram.org/bots/api).

The bot token is what is stored (encrypted); the chat's numeric id is the account's id.
Nothing to refresh or revoke: the token is the person's, revoked with @BotFather.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from herald_common.accounts.base import Connection, CredentialCheck, token_shaped
from herald_common.accounts.errors import CredentialsRefused, platform_answer
from herald_common.http import json_object

PLATFORM = "telegram"
# Telegram's documented shape: the bot's id, a colon, then the secret.
TELEGRAM_BOT_TOKEN = r"^\d+:[A-Za-z0-9_-]+$"  # noqa: S105 (a pattern, not a password)

BotToken = Annotated[
    SecretStr,
    Field(min_length=1, max_length=200, json_schema_extra={"pattern": TELEGRAM_BOT_TOKEN}),
    token_shaped(TELEGRAM_BOT_TOKEN, "a bot token from @BotFather, like 123456:ABC-def"),
]


class TelegramCredentials(BaseModel):
    """A bot token from @BotFather and the chat it posts to (the bot must be a member, an
    administrator for channels). Checked with ``getMe`` and ``getChat``."""

    model_config = ConfigDict(extra="forbid", title="TelegramCredentials")

    bot_token: BotToken
    chat_id: str = Field(
        min_length=1, max_length=100, pattern=r"^(-?\d+|@\w+)$", examples=["@herald_news"]
    )


class TelegramBot(CredentialCheck[TelegramCredentials]):
    platform = PLATFORM
    body = TelegramCredentials

    async def check(self, credentials: TelegramCredentials) -> Connection:
        token = credentials.bot_token.get_secret_value()
        base = f"{self.settings.telegram_api_base.rstrip('/')}/bot{token}"
        me = await platform_answer(PLATFORM, self.http.get(f"{base}/getMe"))
        if me.status_code != 200 or not json_object(me).get("ok"):
            raise CredentialsRefused(PLATFORM, "the bot token is unknown or revoked")
        chat = await platform_answer(
            PLATFORM, self.http.get(f"{base}/getChat", params={"chat_id": credentials.chat_id})
        )
        found = json_object(chat)
        if chat.status_code != 200 or not found.get("ok"):
            raise CredentialsRefused(
                PLATFORM, "the bot cannot see this chat (add it to the chat first)"
            )
        result = found.get("result") or {}
        username = result.get("username")
        title = result.get("title") or result.get("first_name")
        return Connection(
            platform=PLATFORM,
            external_id=str(result.get("id") or credentials.chat_id),
            handle=f"@{username}" if username else str(title or credentials.chat_id),
            display_name=str(title) if title else None,
            access_token=token,
        )
