"""Workspaces and their API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import ApiKey, Workspace

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
    session: AsyncSession, workspace_id: uuid.UUID, name: str, key: str | None = None
) -> CreatedKey:
    key = key or generate_api_key()
    record = ApiKey(
        workspace_id=workspace_id,
        name=name,
        prefix=key[:VISIBLE_PREFIX_LENGTH],
        key_hash=hash_api_key(key),
    )
    session.add(record)
    await session.flush()
    return CreatedKey(key=key, record=record)


async def find_workspace_by_api_key(session: AsyncSession, key: str) -> uuid.UUID | None:
    result = await session.execute(
        select(ApiKey.workspace_id).where(
            ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None)
        )
    )
    return result.scalar_one_or_none()


async def find_key(session: AsyncSession, key: str) -> ApiKey | None:
    result = await session.execute(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
    return result.scalar_one_or_none()
