"""What the publisher tests share: a publisher's dependencies around one platform double."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.accounts.refresh import TokenRefresher
from herald_common.platforms.base import Platform
from herald_common.settings import Settings
from herald_publisher.publish import PublisherDeps


def publisher_deps(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    platform: Platform,
) -> PublisherDeps:
    """A publisher's dependencies with ``platform`` standing in for the sandbox."""
    return PublisherDeps(
        settings=settings,
        sessions=sessions,
        redis=redis,
        platforms={"sandbox": platform},
        tokens=TokenRefresher(settings, sessions, redis, httpx.AsyncClient()),
        worker=socket.gethostname(),
    )


@pytest.fixture
def make_deps(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> Callable[[Platform], PublisherDeps]:
    def build(platform: Platform) -> PublisherDeps:
        return publisher_deps(settings, sessions, redis, platform)

    return build
