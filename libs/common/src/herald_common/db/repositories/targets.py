"""The scheduler's queries on post targets: taking due targets, finding stranded ones, and
the notifications and resumptions around them (the publisher's are in ``claims``).

Written in SQLAlchemy Core so each reads as the single statement it is. Every status change is
guarded by the statuses it may come from (herald_common.statuses).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import (
    Notification,
    Post,
    PostTarget,
    PostTargets,
)
from herald_common.ids import new_id
from herald_common.statuses import TargetStatus

T = PostTarget.__table__.c
NOTIFY_CHANNEL = "herald_due"


@dataclass(frozen=True, slots=True)
class DueTarget:
    id: uuid.UUID
    revision: int
    attempts: int
    platform: str
    scheduled_at: datetime


async def take_due_targets(
    session: AsyncSession, due_before: datetime, limit: int
) -> list[DueTarget]:
    """Mark up to ``limit`` pending targets due before ``due_before`` as enqueued, and return
    them; the rows stay locked until the caller commits.

    One statement locks and marks: SKIP LOCKED lets any number of schedulers run side by side,
    each taking rows no other holds. The caller enqueues their jobs before committing, so a
    pass that dies in between leaves them pending for the next one.
    """
    due = (
        select(T.id)
        .where(T.status == TargetStatus.PENDING, T.scheduled_at <= due_before)
        .order_by(T.scheduled_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(PostTargets)
        .where(T.id.in_(due))
        .values(status=TargetStatus.ENQUEUED, updated_at=func.now())
        .returning(T.id, T.revision, T.attempts, T.platform, T.scheduled_at)
    )
    return [DueTarget(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class StrandedTarget:
    """An in-flight target that should have moved by now (see ``lock_stranded_targets``)."""

    id: uuid.UUID
    revision: int
    attempts: int
    platform: str
    status: str
    error_kind: str | None
    due_at: datetime


async def lock_stranded_targets(
    session: AsyncSession,
    overdue_before: datetime,
    lease_expired_before: datetime,
    limit: int,
    after: uuid.UUID | None = None,
) -> list[StrandedTarget]:
    """Targets whose job may be gone: enqueued/retrying and overdue, or publishing past the
    claim lease. Locked with SKIP LOCKED, so several schedulers can repair side by side.

    In id order from just past ``after``: re-creating a job leaves the row as it was, so a
    pass that asked again from the start would find the same batch for ever once a whole
    batch is stranded; the caller pages on with the last id it saw instead."""
    due_at = func.coalesce(T.next_attempt_at, T.scheduled_at)
    in_queue = T.status.in_([TargetStatus.ENQUEUED, TargetStatus.RETRYING]) & (
        due_at < overdue_before
    )
    lapsed = (T.status == TargetStatus.PUBLISHING) & (T.claimed_at < lease_expired_before)
    query = select(T.id, T.revision, T.attempts, T.platform, T.status, T.error_kind, due_at)
    if after is not None:
        query = query.where(T.id > after)
    rows = await session.execute(
        query.where(in_queue | lapsed).order_by(T.id).limit(limit).with_for_update(skip_locked=True)
    )
    return [StrandedTarget(*row) for row in rows]


async def notify_scheduler(session: AsyncSession) -> None:
    """Wake the schedulers once this transaction commits (NOTIFY is transactional)."""
    await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


async def add_notification(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    kind: str,
    message: str,
    dedupe_key: str,
    post_id: uuid.UUID | None = None,
    target_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
) -> None:
    """Add a notification once: a repeated job with the same ``dedupe_key`` adds nothing."""
    await session.execute(
        pg_insert(Notification)
        .values(
            id=new_id(),
            workspace_id=workspace_id,
            kind=kind,
            message=message,
            post_id=post_id,
            target_id=target_id,
            account_id=account_id,
            dedupe_key=dedupe_key,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )


async def resume_held_targets(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> int:
    """After a reconnect, put the account's held targets back on schedule (now, if their time
    has passed). Returns how many."""
    p = Post.__table__.c
    resumed = await session.execute(
        update(PostTarget)
        .where(
            T.account_id == account_id,
            T.status == TargetStatus.PENDING,
            T.scheduled_at.is_(None),
            T.error_kind == "auth_expired",
            T.post_id == p.id,
        )
        .values(scheduled_at=func.greatest(p.scheduled_at, now), updated_at=func.now())
        .returning(T.id)
    )
    count = len(resumed.all())
    if count:
        await notify_scheduler(session)
    return count
