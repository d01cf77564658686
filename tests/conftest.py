"""Shared fixtures: real Postgres and real Redis, found through HERALD_* URLs (``make test`` sets
them, starting embedded servers when none answer) or the local defaults."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from herald_common.settings import Settings

# A Redis database of its own so tests never touch data a developer keeps in database 0.
TEST_REDIS_DB = 9


def _redis_url() -> str:
    base = os.environ.get("HERALD_REDIS_URL", "redis://127.0.0.1:6379/0")
    return base.rsplit("/", 1)[0] + f"/{TEST_REDIS_DB}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _redis_url()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def base_settings(redis_url: str) -> Settings:
    return Settings(environment="test", redis_url=redis_url, log_format="console")
