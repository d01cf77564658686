"""Every query on posts and their targets made by the API, always within one workspace."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, insert, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.posts.schemas import PostSort
from herald_common.db.models import (
    NO_TIME,
    SCHEDULE_ORDER,
    Post,
    Posts,
    PostTarget,
    PostTargets,
)
from herald_common.statuses import PostStatus


@dataclass(frozen=True, slots=True)
class PostWithTargets:
    post: Post
    targets: list[PostTarget]


# Built once, as Core statements on the tables: creating posts is the API's hottest write, and
# the ORM's unit of work cost more CPU than the two INSERTs themselves (bench/README.md, API).
_INSERT_POST = insert(Posts).returning(Posts.c.created_at, Posts.c.updated_at)
_INSERT_TARGETS = insert(PostTargets)


async def insert_post(session: AsyncSession, post: Post, targets: list[PostTarget]) -> None:
    """Insert a new post and its targets, built with every value they need (ids included),
    in the session's transaction, without adding them to the session; the post gets the
    times the database set."""
    connection = await session.connection()
    stamps = (await connection.execute(_INSERT_POST, _values(post, Posts))).one()
    await connection.execute(_INSERT_TARGETS, [_values(t, PostTargets) for t in targets])
    post.created_at = stamps.created_at
    post.updated_at = stamps.updated_at


def _values(new: Post | PostTarget, table: Table) -> dict[str, Any]:
    """The column values given to an object that is in no session yet."""
    return {key: value for key, value in vars(new).items() if key in table.c}


async def get_post(
    session: AsyncSession, workspace_id: uuid.UUID, post_id: uuid.UUID, *, lock: bool = False
) -> Post | None:
    query = select(Post).where(Post.workspace_id == workspace_id, Post.id == post_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_idempotency_key(
    session: AsyncSession, workspace_id: uuid.UUID, key: str
) -> Post | None:
    result = await session.execute(
        select(Post).where(Post.workspace_id == workspace_id, Post.idempotency_key == key)
    )
    return result.scalar_one_or_none()


async def targets_of(
    session: AsyncSession, workspace_id: uuid.UUID, post_ids: Sequence[uuid.UUID], *, lock: bool
) -> dict[uuid.UUID, list[PostTarget]]:
    """The targets of several posts in one query (no N+1), oldest first."""
    query = (
        select(PostTarget)
        .where(PostTarget.workspace_id == workspace_id, PostTarget.post_id.in_(post_ids))
        .order_by(PostTarget.id)
    )
    if lock:
        query = query.with_for_update()
    grouped: dict[uuid.UUID, list[PostTarget]] = {post_id: [] for post_id in post_ids}
    for target in (await session.execute(query)).scalars():
        grouped[target.post_id].append(target)
    return grouped


async def list_posts(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    statuses: Sequence[PostStatus],
    scheduled_from: datetime | None,
    scheduled_to: datetime | None,
    sort: PostSort,
    after: tuple[datetime | None, uuid.UUID] | None,
    limit: int,
) -> list[Post]:
    """One page in ``sort`` order, after the (scheduled time, id) where the last one ended.

    Newest created first is by id alone (UUIDv7: ``id < after`` pages stably through inserts).
    By scheduled time, the key is (SCHEDULE_ORDER, id), where a post with no time sorts after
    every time; the row comparison and the order are those of the index
    ix_posts_workspace_schedule_order, which serves each page as one range scan.
    """
    query = select(Post).where(Post.workspace_id == workspace_id)
    if statuses:
        query = query.where(Post.status.in_([s.value for s in statuses]))
    if scheduled_from is not None:
        query = query.where(Post.scheduled_at >= scheduled_from)
    if scheduled_to is not None:
        query = query.where(Post.scheduled_at < scheduled_to)
    if sort is PostSort.CREATED_DESC:
        if after is not None:
            query = query.where(Post.id < after[1])
        query = query.order_by(Post.id.desc())
        return list((await session.execute(query.limit(limit))).scalars())
    sort_time = SCHEDULE_ORDER
    # The window again on the sort key, so that the index scan starts and stops at it.
    if scheduled_from is not None:
        query = query.where(sort_time >= scheduled_from)
    if scheduled_to is not None:
        query = query.where(sort_time < scheduled_to)
    key = tuple_(sort_time, Post.id)
    if sort is PostSort.SCHEDULED_ASC:
        if after is not None:
            query = query.where(key > _position(after))
        query = query.order_by(sort_time.asc(), Post.id.asc())
    else:
        if after is not None:
            query = query.where(key < _position(after))
        query = query.order_by(sort_time.desc(), Post.id.desc())
    return list((await session.execute(query.limit(limit))).scalars())


def _position(after: tuple[datetime | None, uuid.UUID]) -> ColumnElement[Any]:
    at, post_id = after
    time = NO_TIME if at is None else literal(at, NO_TIME.type)
    return tuple_(time, literal(post_id, Post.id.type))
