"""Workspaces and their API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import ApiKey, Workspace
from herald_common.roles import ApiKeyScope

API_KEY_PREFIX = "hk_"
# How much of a key is kept in the clear so people can tell their keys apart.
VISIBLE_PREFIX_LENGTH = 10


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str
    record: ApiKey


async def create_workspace(session: AsyncSession, name: str) -> Workspace:
    workspace = Workspace(name=name)
    session.add(workspace)
    await session.flush()
    return workspace


async def add_api_key(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    name: str,
    key: str | None = None,
    *,
    scopes: Sequence[ApiKeyScope] = (ApiKeyScope.READ, ApiKeyScope.WRITE),
    created_by: uuid.UUID | None = None,
) -> CreatedKey:
    key = key or generate_api_key()
    record = ApiKey(
        workspace_id=workspace_id,
        name=name,
        prefix=key[:VISIBLE_PREFIX_LENGTH],
        key_hash=hash_api_key(key),
        scopes=[str(scope) for scope in scopes],
        created_by=created_by,
    )
    session.add(record)
    await session.flush()
    return CreatedKey(key=key, record=record)


async def find_workspace_by_api_key(session: AsyncSession, key: str) -> uuid.UUID | None:
    record = await find_active_key(session, key)
    return None if record is None else record.workspace_id


@dataclass(frozen=True, slots=True)
class ActiveKey:
    id: uuid.UUID
    workspace_id: uuid.UUID
    scopes: list[str]


# Built once: every API-key request runs it, and building a statement costs more than
# running this one (bench/README.md, API).
_ACTIVE_KEY = select(ApiKey.id, ApiKey.workspace_id, ApiKey.scopes).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)


async def find_active_key(session: AsyncSession, key: str) -> ActiveKey | None:
    """The unrevoked key ``key``, looked up by its hash (the key itself is never stored)."""
    row = (await session.execute(_ACTIVE_KEY, {"key_hash": hash_api_key(key)})).one_or_none()
    return None if row is None else ActiveKey(row.id, row.workspace_id, list(row.scopes))


async def list_api_keys(session: AsyncSession, workspace_id: uuid.UUID) -> Sequence[ApiKey]:
    result = await session.scalars(
        select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)
    )
    return result.all()


async def revoke_api_key(
    session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID, now: datetime
) -> ApiKey | None:
    """Revoke a key of this workspace (again is harmless); None when it has no such key."""
    record = await session.scalar(
        select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.id == key_id)
    )
    if record is not None and record.revoked_at is None:
        record.revoked_at = now
        await session.flush()
    return record


async def touch_api_key(
    session: AsyncSession, key_id: uuid.UUID, now: datetime, min_interval: timedelta
) -> None:
    """Record that a key was used, unless that was already recorded within ``min_interval``
    (by any API process): one write a minute, however busy the key."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - min_interval),
        )
        .values(last_used_at=now)
    )


async def find_key(session: AsyncSession, key: str) -> ApiKey | None:
    result = await session.execute(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
    return result.scalar_one_or_none()
