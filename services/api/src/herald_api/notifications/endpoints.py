"""Notifications: what a person should know (terminal failures, unknown outcomes, lost logins)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select, update

from herald_api.deps import SessionDep, WorkspaceDep
from herald_api.pagination import CursorQuery, LimitQuery, decode_cursor, page
from herald_api.posts.schemas import UtcDatetime
from herald_api.problems import NOT_FOUND, ProblemError
from herald_common import clock
from herald_common.db.models import Notification

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: str = Field(
        description="`publish_failed`, `outcome_unknown` or `account_requires_reauth`."
    )
    message: str
    post_id: uuid.UUID | None
    target_id: uuid.UUID | None
    account_id: uuid.UUID | None
    created_at: UtcDatetime
    read_at: UtcDatetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


def _out(notification: Notification) -> NotificationOut:
    return NotificationOut.model_validate(notification, from_attributes=True)


@router.get("", response_model=NotificationPage)
async def list_notifications(
    session: SessionDep,
    workspace_id: WorkspaceDep,
    unread: Annotated[bool, Query(description="Only notifications not yet read.")] = False,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> NotificationPage:
    """The workspace's notifications, newest first."""
    query = select(Notification).where(Notification.workspace_id == workspace_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Notification.id < after)
    rows = list(await session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
    items, next_cursor = page(rows, limit, lambda notification: notification.id)
    return NotificationPage(items=[_out(n) for n in items], next_cursor=next_cursor)


@router.post("/{notification_id}/read", response_model=NotificationOut, responses=NOT_FOUND)
async def mark_notification_read(
    session: SessionDep, workspace_id: WorkspaceDep, notification_id: uuid.UUID
) -> NotificationOut:
    """Mark one notification read (again is harmless)."""
    notification = await session.scalar(
        update(Notification)
        .where(Notification.workspace_id == workspace_id, Notification.id == notification_id)
        .values(read_at=clock.now())
        .returning(Notification)
    )
    if notification is None:
        raise ProblemError(
            404, "notification-not-found", "No notification with this id in this workspace."
        )
    await session.commit()
    return _out(notification)
