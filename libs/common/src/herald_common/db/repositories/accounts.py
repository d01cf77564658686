"""Social accounts, always read and written within one workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import SocialAccount


async def add_account(session: AsyncSession, account: SocialAccount) -> SocialAccount:
    session.add(account)
    await session.flush()
    return account


async def list_accounts(session: AsyncSession, workspace_id: uuid.UUID) -> Sequence[SocialAccount]:
    result = await session.execute(
        select(SocialAccount)
        .where(SocialAccount.workspace_id == workspace_id)
        .order_by(SocialAccount.id)
    )
    return result.scalars().all()


async def get_account(
    session: AsyncSession, workspace_id: uuid.UUID, account_id: uuid.UUID
) -> SocialAccount | None:
    result = await session.execute(
        select(SocialAccount).where(
            SocialAccount.workspace_id == workspace_id, SocialAccount.id == account_id
        )
    )
    return result.scalar_one_or_none()


async def get_accounts(
    session: AsyncSession, workspace_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SocialAccount]:
    """The workspace's accounts among ``account_ids``; ids of other workspaces are simply absent."""
    if not account_ids:
        return {}
    result = await session.execute(
        select(SocialAccount).where(
            SocialAccount.workspace_id == workspace_id, SocialAccount.id.in_(account_ids)
        )
    )
    return {account.id: account for account in result.scalars()}
