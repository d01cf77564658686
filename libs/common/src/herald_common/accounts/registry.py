"""Which platforms connect, and how: every connection module's classes, by platform name.

Adding a platform is one module beside this one and its line below (docs/accounts.md,
"Adding a platform"); the API's enums of connectable platforms are checked against these
lists by the tests.
"""

from __future__ import annotations

from typing import Any

import httpx

from herald_common.accounts.base import AppOAuthFlow, CredentialCheck, InstanceOAuthFlow
from herald_common.accounts.bluesky import BlueskyAppPassword
from herald_common.accounts.discord import DiscordWebhook
from herald_common.accounts.linkedin import LinkedInOAuth
from herald_common.accounts.mastodon import MastodonOAuth, MastodonToken
from herald_common.accounts.telegram import TelegramBot
from herald_common.accounts.x import XOAuth
from herald_common.settings import Settings

APP_FLOWS: dict[str, type[AppOAuthFlow]] = {flow.platform: flow for flow in (XOAuth, LinkedInOAuth)}
INSTANCE_FLOWS: dict[str, type[InstanceOAuthFlow]] = {
    flow.platform: flow for flow in (MastodonOAuth,)
}
CREDENTIAL_CHECKS: dict[str, type[CredentialCheck[Any]]] = {
    check.platform: check
    for check in (BlueskyAppPassword, TelegramBot, DiscordWebhook, MastodonToken)
}
# Platforms connected through OAuth, and so with a callback.
OAUTH_PLATFORMS: frozenset[str] = frozenset(APP_FLOWS) | frozenset(INSTANCE_FLOWS)
CONNECTABLE_PLATFORMS: frozenset[str] = OAUTH_PLATFORMS | frozenset(CREDENTIAL_CHECKS)


def app_flow(platform: str, settings: Settings, http: httpx.AsyncClient) -> AppOAuthFlow | None:
    """The platform's OAuth flow with Herald's configured application, if it has one."""
    flow = APP_FLOWS.get(platform)
    return None if flow is None else flow(settings, http)
