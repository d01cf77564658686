"""Inserting many due targets quickly, straight into the tables the API would fill, and
reading back what the queue holds for them."""

from __future__ import annotations

import uuid
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import Post, PostTarget, SocialAccount
from herald_common.ids import new_id
from herald_common.queue import deserialize, queue_name


async def insert_due_targets(
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: uuid.UUID,
    *,
    count: int,
    accounts: int,
    due_at: datetime,
    platform: str = "sandbox",
) -> list[uuid.UUID]:
    """``count`` scheduled posts with one pending target each, spread over ``accounts``."""
    account_ids = [new_id() for _ in range(accounts)]
    post_ids = [new_id() for _ in range(count)]
    target_ids = [new_id() for _ in range(count)]
    async with sessions.begin() as session:
        await session.execute(
            insert(SocialAccount),
            [
                {
                    "id": a,
                    "workspace_id": workspace_id,
                    "platform": platform,
                    "external_id": f"bulk-{a}",
                    "handle": f"bulk-{i}",
                }
                for i, a in enumerate(account_ids)
            ],
        )
        await session.execute(
            insert(Post),
            [
                {
                    "id": p,
                    "workspace_id": workspace_id,
                    "content": f"bulk post {i}",
                    "scheduled_at": due_at,
                    "status": "scheduled",
                }
                for i, p in enumerate(post_ids)
            ],
        )
        await session.execute(
            insert(PostTarget),
            [
                {
                    "id": t,
                    "workspace_id": workspace_id,
                    "post_id": p,
                    "account_id": account_ids[i % accounts],
                    "platform": platform,
                    "scheduled_at": due_at,
                    "status": "pending",
                }
                for i, (p, t) in enumerate(zip(post_ids, target_ids, strict=True))
            ],
        )
    return target_ids


async def load_target(
    sessions: async_sessionmaker[AsyncSession], target_id: uuid.UUID
) -> PostTarget:
    """A target as it is in the database now."""
    async with sessions() as session:
        target = await session.get(PostTarget, target_id)
        assert target is not None
        return target


async def queued_targets(redis: Redis, platform: str = "sandbox") -> list[str]:
    """Every target id carried by the jobs in ``platform``'s queue, once per job carrying it."""
    carried = []
    for job_id in await redis.zrange(queue_name(platform), 0, -1):
        raw = await redis.get(b"arq:job:" + job_id)
        assert raw is not None
        [targets] = deserialize(raw)["a"]
        carried += [target_id for target_id, _ in targets]
    return carried
