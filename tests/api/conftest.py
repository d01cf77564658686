"""Fixtures shared by the API tests."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import SocialAccount
from tests.conftest import Tenant


@pytest.fixture
async def mastodon_account(tenant: Tenant, sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    async with sessions.begin() as session:
        account = SocialAccount(
            workspace_id=tenant.workspace_id,
            platform="mastodon",
            external_id="109",
            handle="alice@mastodon.example",
        )
        session.add(account)
        await session.flush()
        return account.id
