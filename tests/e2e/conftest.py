"""What the end-to-end tests share: the real scheduler and an arq publisher, running."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.settings import Settings
from tests.services import running_publisher, running_scheduler


@pytest.fixture
async def pipeline(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: object, db: None
) -> AsyncIterator[None]:
    async with running_scheduler(settings, sessions), running_publisher(settings):
        yield
