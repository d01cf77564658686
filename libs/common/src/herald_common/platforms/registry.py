"""Which platforms exist, and building one adapter instance of each per process."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.platforms.base import Platform
from herald_common.platforms.bluesky import Bluesky
from herald_common.platforms.discord import Discord
from herald_common.platforms.linkedin import LinkedIn
from herald_common.platforms.mastodon import Mastodon
from herald_common.platforms.sandbox import Sandbox
from herald_common.platforms.telegram import Telegram
from herald_common.platforms.x import X
from herald_common.settings import Settings

PLATFORM_NAMES: tuple[str, ...] = (
    Sandbox.name,
    Mastodon.name,
    X.name,
    LinkedIn.name,
    Bluesky.name,
    Telegram.name,
    Discord.name,
)
# Platforms whose accounts can be added directly through POST /v1/accounts; the others
# connect through their own flow (OAuth, app passwords, ...).
DIRECT_ACCOUNT_PLATFORMS: frozenset[str] = frozenset({Sandbox.name})


def build_platforms(
    settings: Settings,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> dict[str, Platform]:
    return {
        Sandbox.name: Sandbox(settings, http, sessions),
        Mastodon.name: Mastodon(settings, http),
        X.name: X(settings, http),
        LinkedIn.name: LinkedIn(settings, http),
        Bluesky.name: Bluesky(settings, http),
        Telegram.name: Telegram(settings, http),
        Discord.name: Discord(settings, http),
    }
