"""Social accounts, always read and written within one workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
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


@dataclass(frozen=True, slots=True)
class AccountBrief:
    """What scheduling a post needs of an account: where it publishes and whether it can."""

    id: uuid.UUID
    platform: str
    status: str


# Built once: every post created or checked runs it (bench/README.md, API).
_BRIEFS = select(SocialAccount.id, SocialAccount.platform, SocialAccount.status).where(
    SocialAccount.workspace_id == bindparam("workspace_id"),
    SocialAccount.id == bindparam("account_ids", type_=ARRAY(SocialAccount.id.type)).any_(),
)


async def account_briefs(
    session: AsyncSession, workspace_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AccountBrief]:
    """The workspace's accounts among ``account_ids``, columns only; others are absent."""
    if not account_ids:
        return {}
    rows = await session.execute(
        _BRIEFS, {"workspace_id": workspace_id, "account_ids": list(account_ids)}
    )
    return {row.id: AccountBrief(row.id, row.platform, row.status) for row in rows}
