"""Every query of the AI domain: usage rows, content plans and their items, always within
one workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import AiBatch, AiBatchItem, AiUsage


@dataclass(frozen=True, slots=True)
class UsageLine:
    """Tokens one caller (a person, an API key, or neither) used in a period."""

    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    prompt_tokens: int
    completion_tokens: int
    calls: int


async def record_usage(session: AsyncSession, usage: AiUsage) -> None:
    session.add(usage)
    await session.flush()


async def tokens_used(session: AsyncSession, workspace_id: uuid.UUID, since: datetime) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(AiUsage.prompt_tokens + AiUsage.completion_tokens), 0)).where(
            AiUsage.workspace_id == workspace_id, AiUsage.created_at >= since
        )
    )
    return int(total or 0)


async def usage_by_caller(
    session: AsyncSession, workspace_id: uuid.UUID, since: datetime
) -> list[UsageLine]:
    rows = await session.execute(
        select(
            AiUsage.user_id,
            AiUsage.api_key_id,
            func.sum(AiUsage.prompt_tokens).label("prompt"),
            func.sum(AiUsage.completion_tokens).label("completion"),
            func.count().label("calls"),
        )
        .where(AiUsage.workspace_id == workspace_id, AiUsage.created_at >= since)
        .group_by(AiUsage.user_id, AiUsage.api_key_id)
        .order_by(func.sum(AiUsage.prompt_tokens + AiUsage.completion_tokens).desc())
    )
    return [
        UsageLine(row.user_id, row.api_key_id, int(row.prompt), int(row.completion), row.calls)
        for row in rows
    ]


async def add_batch(session: AsyncSession, batch: AiBatch) -> AiBatch:
    session.add(batch)
    await session.flush()
    return batch


async def get_batch(
    session: AsyncSession, workspace_id: uuid.UUID, batch_id: uuid.UUID, *, lock: bool = False
) -> AiBatch | None:
    statement = select(AiBatch).where(AiBatch.workspace_id == workspace_id, AiBatch.id == batch_id)
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def find_batch(session: AsyncSession, batch_id: uuid.UUID) -> AiBatch | None:
    """A batch by id alone: the worker's job carries only the id (its row names the
    workspace every later query is scoped to)."""
    return await session.get(AiBatch, batch_id)


async def items_of(
    session: AsyncSession, workspace_id: uuid.UUID, batch_id: uuid.UUID
) -> Sequence[AiBatchItem]:
    result = await session.execute(
        select(AiBatchItem)
        .where(AiBatchItem.workspace_id == workspace_id, AiBatchItem.batch_id == batch_id)
        .order_by(AiBatchItem.position)
    )
    return result.scalars().all()


async def add_items(session: AsyncSession, items: Sequence[AiBatchItem]) -> None:
    session.add_all(items)
    await session.flush()


async def set_batch_status(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    batch_id: uuid.UUID,
    status: str,
    *,
    error: str | None = None,
    finished_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "error": error, "finished_at": finished_at}
    await session.execute(
        update(AiBatch)
        .where(AiBatch.workspace_id == workspace_id, AiBatch.id == batch_id)
        .values(**values)
    )
