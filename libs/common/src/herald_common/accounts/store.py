"""Saving a connected account: tokens encrypted at rest, and held posts resumed on reconnect."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.accounts.base import Connection
from herald_common.crypto import TokenCipher
from herald_common.db.models import SocialAccount
from herald_common.db.repositories.targets import resume_held_targets
from herald_common.statuses import AccountStatus


@dataclass(frozen=True, slots=True)
class Saved:
    account: SocialAccount
    created: bool
    resumed_targets: int


async def save_connection(
    session: AsyncSession,
    cipher: TokenCipher,
    workspace_id: uuid.UUID,
    connection: Connection,
    now: datetime,
) -> Saved:
    """Add the account, or update the workspace's existing one for the same platform account
    (reconnecting). An account that was ``requires_reauth`` becomes active and its held
    targets go back on schedule. The caller commits."""
    query = select(SocialAccount).where(
        SocialAccount.workspace_id == workspace_id,
        SocialAccount.platform == connection.platform,
        SocialAccount.external_id == connection.external_id,
    )
    account = (await session.execute(query.with_for_update())).scalar_one_or_none()
    created = account is None
    previous = None if account is None else account.status
    if account is None:
        # Two connections of the same new account at once: the second insert waits on the
        # first's unique key, inserts nothing, and updates the row the first made instead.
        await session.execute(
            insert(SocialAccount)
            .values(
                workspace_id=workspace_id,
                platform=connection.platform,
                external_id=connection.external_id,
                handle=connection.handle,
            )
            .on_conflict_do_nothing()
        )
        account = (await session.execute(query.with_for_update())).scalar_one()
    account.handle = connection.handle
    account.display_name = connection.display_name
    account.instance_url = connection.instance_url
    account.access_token_enc = cipher.encrypt(connection.access_token)
    account.refresh_token_enc = (
        cipher.encrypt(connection.refresh_token) if connection.refresh_token else None
    )
    account.token_expires_at = connection.expires_at
    account.scopes = list(connection.scopes)
    account.status = AccountStatus.ACTIVE.value
    await session.flush()
    resumed = 0
    if previous == AccountStatus.REQUIRES_REAUTH.value:
        resumed = await resume_held_targets(session, account.id, now)
    return Saved(account, created, resumed)
