"""The data a benchmark publishes: one workspace, its accounts, and posts due at given times,
bulk-inserted; and how far the targets have got."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.crypto import TokenCipher
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.db.models import Post, PostTarget, SocialAccount
from herald_common.db.repositories.workspaces import add_api_key, create_workspace
from herald_common.ids import new_id
from herald_common.settings import Settings

TERMINAL = ("published", "failed", "unknown", "cancelled")


@dataclass(frozen=True, slots=True)
class Seeded:
    workspace_id: uuid.UUID
    api_key: str
    due: dict[uuid.UUID, datetime]  # target id -> scheduled_at


@asynccontextmanager
async def db_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def seed_workspace(sessions: async_sessionmaker[AsyncSession]) -> tuple[uuid.UUID, str]:
    async with sessions.begin() as session:
        workspace = await create_workspace(session, "bench")
        key = await add_api_key(session, workspace.id, "bench key")
        return workspace.id, key.key


async def seed_targets(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    platform_base: str | None,
    accounts: int,
    due_times: Sequence[datetime],
    chunk: int = 5000,
) -> Seeded:
    """One workspace, ``accounts`` Mastodon accounts (or sandbox ones when ``platform_base``
    is None) pointing at the fake, and one post with one pending target per due time, spread
    round-robin over the accounts. Bulk inserts: 10,000 targets take about a second."""
    workspace_id, api_key = await seed_workspace(sessions)
    cipher = TokenCipher.from_settings(settings)
    rows: list[dict[str, Any]] = []
    for i in range(accounts):
        if platform_base is None:
            rows.append(
                {"id": new_id(), "workspace_id": workspace_id, "platform": "sandbox",
                 "external_id": f"bench-{i}", "handle": f"bench-{i}"}
            )  # fmt: skip
        else:
            rows.append(
                {"id": new_id(), "workspace_id": workspace_id, "platform": "mastodon",
                 "external_id": str(i), "handle": f"user{i}@bench.test",
                 "instance_url": platform_base,
                 "access_token_enc": cipher.encrypt(f"bench-token-{i}")}
            )  # fmt: skip
    async with sessions.begin() as session:
        await session.execute(insert(SocialAccount), rows)
    due: dict[uuid.UUID, datetime] = {}
    for start in range(0, len(due_times), chunk):
        posts, targets = [], []
        for i in range(start, min(start + chunk, len(due_times))):
            account = rows[i % accounts]
            post_id, target_id = new_id(), new_id()
            posts.append(
                {"id": post_id, "workspace_id": workspace_id, "content": f"bench post {i}",
                 "scheduled_at": due_times[i], "status": "scheduled"}
            )  # fmt: skip
            targets.append(
                {"id": target_id, "workspace_id": workspace_id, "post_id": post_id,
                 "account_id": account["id"], "platform": account["platform"],
                 "scheduled_at": due_times[i], "status": "pending"}
            )  # fmt: skip
            due[target_id] = due_times[i]
        async with sessions.begin() as session:
            await session.execute(insert(Post), posts)
            await session.execute(insert(PostTarget), targets)
    return Seeded(workspace_id, api_key, due)


async def status_counts(
    sessions: async_sessionmaker[AsyncSession], workspace_id: uuid.UUID
) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(PostTarget.status, func.count())
            .where(PostTarget.workspace_id == workspace_id)
            .group_by(PostTarget.status)
        )
        return {str(status): int(count) for status, count in rows.all()}


def utc_in(seconds: float) -> datetime:
    """A whole second at least ``seconds`` from now."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + timedelta(seconds=1)
