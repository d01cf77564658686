"""Connecting a Discord channel: a channel webhook URL (Channel settings > Integrations >
Webhooks), checked with ``GET /api/webhooks/{id}/{token}``
(discord.com/developers/docs/resources/webhook#get-webhook-with-token).

Only the URL's ``/api/webhooks/{id}/{token}`` path is used, joined to
``HERALD_DISCORD_API_BASE``, so a stored URL can never send Herald's traffic elsewhere. The
URL is what is stored (encrypted). Nothing to refresh or revoke: the webhook is the person's.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from herald_common.accounts.base import Connection, CredentialCheck
from herald_common.accounts.errors import CredentialsRefused, platform_answer
from herald_common.http import json_object

PLATFORM = "discord"
# ASCII only: Discord's ids are digits and its tokens base64url.
_WEBHOOK = re.compile(r"/api(?:/v\d+)?/webhooks/(?P<id>\d+)/(?P<token>[\w-]+)/?$", re.ASCII)


class DiscordCredentials(BaseModel):
    """A channel webhook URL (Channel settings > Integrations > Webhooks). Checked with a GET
    on the webhook."""

    model_config = ConfigDict(extra="forbid", title="DiscordCredentials")

    webhook_url: SecretStr = Field(min_length=1, max_length=500)


class DiscordWebhook(CredentialCheck[DiscordCredentials]):
    platform = PLATFORM
    body = DiscordCredentials

    async def check(self, credentials: DiscordCredentials) -> Connection:
        url = credentials.webhook_url.get_secret_value().split("?", 1)[0]
        try:
            match = _WEBHOOK.search(urlsplit(url).path)
        except ValueError:  # not a URL at all (an unclosed IPv6 bracket, say)
            match = None
        if match is None:
            raise CredentialsRefused(
                PLATFORM, "a webhook URL looks like https://discord.com/api/webhooks/…"
            )
        base = self.settings.discord_api_base.rstrip("/")
        response = await platform_answer(
            PLATFORM, self.http.get(f"{base}/api/webhooks/{match['id']}/{match['token']}")
        )
        webhook = json_object(response)
        if response.status_code != 200 or not webhook.get("id"):
            raise CredentialsRefused(PLATFORM, "the webhook is unknown or was deleted")
        name = webhook.get("name")
        return Connection(
            platform=PLATFORM,
            external_id=str(webhook["id"]),
            handle=str(name or webhook["id"]),
            display_name=str(name) if name else None,
            access_token=url,
        )
