"""The reconciliation pass's queries: unknown targets due for another look, and what each
look found.

A look only reads the platform, so it takes no claim. What it found is written under a guard
on the target's status, revision and number of looks: a person's retry meanwhile (a new
revision) or a second copy of the same job then changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import Post, PostTarget, PostTargets, PublishAttempt, SocialAccount
from herald_common.db.repositories.claims import (
    ClaimedTarget,
    derive_post_statuses,
    lock_posts,
)
from herald_common.db.repositories.targets import add_notification
from herald_common.platforms.base import Published
from herald_common.statuses import TargetStatus

T = PostTarget.__table__.c
P = Post.__table__.c
A = SocialAccount.__table__.c


@dataclass(frozen=True, slots=True)
class DueLook:
    """An unknown target whose next look is due (the scheduler enqueues its job)."""

    id: uuid.UUID
    revision: int
    lookups: int
    platform: str


async def lock_due_looks(session: AsyncSession, now: datetime, limit: int) -> list[DueLook]:
    """Unknown targets whose next look is due by ``now``; SKIP LOCKED, so schedulers side by
    side take different ones, and the rows stay locked until the caller commits."""
    rows = await session.execute(
        select(T.id, T.revision, T.lookups, T.platform)
        .where(T.status == TargetStatus.UNKNOWN, T.next_attempt_at <= now)
        .order_by(T.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [DueLook(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class UnknownTarget:
    """An unknown target as an attempt would see it (``target.claim_id`` is this look's own
    id, for the audit row), and how many looks it has had."""

    target: ClaimedTarget
    lookups: int


_COLUMNS = (
    T.id, T.workspace_id, T.post_id, T.account_id, T.platform, T.revision, T.attempts,
    T.scheduled_at, func.coalesce(T.content_override, P.content).label("text"),
    P.media_ids, T.thread, T.content_warning, T.visibility,
    A.external_id.label("account_external_id"), A.handle.label("account_handle"),
    A.status.label("account_status"), A.instance_url.label("account_instance_url"),
    A.access_token_enc, A.token_expires_at.label("account_token_expires_at"),
    T.sent_at, T.lookups,
)  # fmt: skip
_UNKNOWN = select(*_COLUMNS).join(Post, P.id == T.post_id).join(SocialAccount, A.id == T.account_id)


async def unknown_targets_due(
    session: AsyncSession, wanted: Sequence[tuple[uuid.UUID, int]], now: datetime
) -> list[UnknownTarget]:
    """Those of ``(target, revision)`` still unknown at that revision with a look due: a
    target retried meanwhile, settled, or looked at already by another copy of the job is
    left out."""
    if not wanted:
        return []
    rows = await session.execute(
        _UNKNOWN.where(
            tuple_(T.id, T.revision).in_(wanted),
            T.status == TargetStatus.UNKNOWN,
            T.next_attempt_at <= now,
        ).order_by(T.id)
    )
    found = []
    for row in rows:
        fields: dict[str, Any] = row._asdict()
        lookups = fields.pop("lookups")
        found.append(UnknownTarget(ClaimedTarget(**fields, claim_id=uuid.uuid4()), lookups))
    return found


@dataclass(frozen=True, slots=True)
class Look:
    """What one look found: the post (``found``), or nothing yet and when to look next
    (``next_look_at``, None: no more looks), with the target's error rewritten if need be."""

    unknown: UnknownTarget
    outcome: str  # publish_attempts.outcome: found_later, not_found_yet, lookup_failed, ...
    started_at: datetime
    finished_at: datetime
    found: Published | None = None
    next_look_at: datetime | None = None
    error: str | None = None
    http_status: int | None = None


async def record_looks(session: AsyncSession, looks: Sequence[Look], *, worker: str) -> list[Look]:
    """Settle the targets that were found (published, with the platform's id and URL, the
    post's status derived again, the workspace told) and schedule the next look of the
    others. Returns the looks recorded (a target retried or looked at meanwhile is not)."""
    settling = [look for look in looks if look.found is not None]
    # Posts before their targets, in id order, as every writer of both locks them.
    posts = await lock_posts(session, {look.unknown.target.post_id for look in settling})
    recorded = [look for look in looks if await _update_target(session, look)]
    for look in recorded:
        target = look.unknown.target
        session.add(
            PublishAttempt(
                workspace_id=target.workspace_id,
                target_id=target.id,
                attempt=target.attempts,
                revision=target.revision,
                claim_id=target.claim_id,
                worker=worker,
                started_at=look.started_at,
                finished_at=look.finished_at,
                outcome=look.outcome,
                http_status=look.http_status,
                remote_id=look.found.remote_id if look.found is not None else None,
                error=look.error,
            )
        )
        if look.found is not None:
            where = f" ({look.found.remote_url})" if look.found.remote_url else ""
            await add_notification(
                session,
                workspace_id=target.workspace_id,
                kind="outcome_settled",
                message=f"The post whose outcome was unknown is on {target.platform}{where}: "
                "Herald found it, nothing more to do.",
                post_id=target.post_id,
                target_id=target.id,
                dedupe_key=f"outcome_settled:{target.id}:{target.revision}",
            )
    settled = {look.unknown.target.post_id for look in recorded if look.found is not None}
    await derive_post_statuses(session, {post_id: posts[post_id] for post_id in settled})
    await session.flush()
    return recorded


async def _update_target(session: AsyncSession, look: Look) -> bool:
    unknown = look.unknown
    guard = (
        (T.id == unknown.target.id)
        & (T.status == TargetStatus.UNKNOWN)
        & (T.revision == unknown.target.revision)
        & (T.lookups == unknown.lookups)
    )
    statement = update(PostTargets).where(guard)
    if look.found is not None:
        statement = statement.values(
            status=TargetStatus.PUBLISHED,
            remote_id=look.found.remote_id,
            remote_url=look.found.remote_url,
            # When the request that made it was sent: the best Herald knows of when it went out.
            published_at=func.coalesce(T.sent_at, look.finished_at),
            sent_at=None,
            next_attempt_at=None,
            error_kind=None,
            error=None,
        )
    else:
        statement = statement.values(
            next_attempt_at=look.next_look_at, error=func.coalesce(look.error, T.error)
        )
    result = await session.execute(
        statement.values(lookups=unknown.lookups + 1, updated_at=func.now()).returning(T.id)
    )
    return result.scalar_one_or_none() is not None
