"""The hot-path queries on post targets: the scheduler's claim and the publisher's claim/record.

Written in SQLAlchemy Core so each reads as the single statement it is. Every status change is
guarded by the statuses it may come from (herald_common.statuses), so a stale or duplicate job
finds no row and does nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import (
    Notification,
    Post,
    PostTarget,
    PublishAttempt,
    SocialAccount,
)
from herald_common.ids import new_id
from herald_common.statuses import CLAIMABLE, TargetStatus, derive_post_status, sources_of

T = PostTarget.__table__.c
NOTIFY_CHANNEL = "herald_due"


@dataclass(frozen=True, slots=True)
class DueTarget:
    id: uuid.UUID
    revision: int
    attempts: int
    platform: str
    scheduled_at: datetime


async def lock_due_targets(
    session: AsyncSession, due_before: datetime, limit: int
) -> list[DueTarget]:
    """Lock up to ``limit`` pending targets due before ``due_before``.

    SKIP LOCKED lets any number of schedulers run side by side: each takes rows no other
    scheduler holds, and the locks last until the caller commits.
    """
    rows = await session.execute(
        select(T.id, T.revision, T.attempts, T.platform, T.scheduled_at)
        .where(T.status == TargetStatus.PENDING, T.scheduled_at <= due_before)
        .order_by(T.scheduled_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
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
    session: AsyncSession, overdue_before: datetime, lease_expired_before: datetime, limit: int
) -> list[StrandedTarget]:
    """Targets whose job may be gone: enqueued/retrying and overdue, or publishing past the
    claim lease. Locked with SKIP LOCKED, so several schedulers can repair side by side."""
    due_at = func.coalesce(T.next_attempt_at, T.scheduled_at)
    in_queue = T.status.in_([TargetStatus.ENQUEUED, TargetStatus.RETRYING]) & (
        due_at < overdue_before
    )
    lapsed = (T.status == TargetStatus.PUBLISHING) & (T.claimed_at < lease_expired_before)
    rows = await session.execute(
        select(T.id, T.revision, T.attempts, T.platform, T.status, T.error_kind, due_at)
        .where(in_queue | lapsed)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [StrandedTarget(*row) for row in rows]


async def mark_enqueued(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    await session.execute(
        update(PostTarget)
        .where(T.id.in_(ids), T.status == TargetStatus.PENDING)
        .values(status=TargetStatus.ENQUEUED, updated_at=func.now())
    )


async def notify_scheduler(session: AsyncSession) -> None:
    """Wake the schedulers once this transaction commits (NOTIFY is transactional)."""
    await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


@dataclass(frozen=True, slots=True)
class ClaimedTarget:
    id: uuid.UUID
    workspace_id: uuid.UUID
    post_id: uuid.UUID
    account_id: uuid.UUID
    platform: str
    revision: int
    attempts: int
    scheduled_at: datetime | None
    text: str
    media_ids: list[str]
    claim_id: uuid.UUID
    account_external_id: str
    account_handle: str
    account_status: str
    account_instance_url: str | None
    access_token_enc: bytes | None
    account_token_expires_at: datetime | None
    # True when this claim took the target over from a claim whose lease ran out: the earlier
    # attempt may have reached the platform, so it must be reconciled before anything is sent.
    reclaimed: bool = False
    # When the lapsed claim began, i.e. when its request may have been sent.
    previous_claimed_at: datetime | None = None


async def claim_target(
    session: AsyncSession,
    target_id: uuid.UUID,
    revision: int,
    claim_id: uuid.UUID,
    now: datetime,
    lease: timedelta,
) -> ClaimedTarget | None:
    """Move a target to ``publishing`` for this job, or return None for a stale/duplicate job.

    A plain UPDATE waits on a row lock instead of skipping it: a job due now can fire before
    the scheduler batch that enqueued it has committed, and must then see the committed row.
    A target left ``publishing`` past ``lease`` (its worker died mid-publish) is taken over,
    marked ``reclaimed`` so the caller reconciles before publishing.
    """
    claimed = await _claim(session, target_id, revision, claim_id, now, T.status.in_(CLAIMABLE))
    if claimed is not None:
        return claimed
    previous = await session.scalar(
        select(T.claimed_at)
        .where(T.id == target_id, T.status == TargetStatus.PUBLISHING, T.revision == revision)
        .with_for_update()
    )
    if previous is None or previous >= now - lease:
        return None
    reclaimed = await _claim(
        session, target_id, revision, claim_id, now, T.status == TargetStatus.PUBLISHING
    )
    if reclaimed is None:
        return None
    return replace(reclaimed, reclaimed=True, previous_claimed_at=previous)


async def _claim(
    session: AsyncSession,
    target_id: uuid.UUID,
    revision: int,
    claim_id: uuid.UUID,
    now: datetime,
    claimable: ColumnElement[bool],
) -> ClaimedTarget | None:
    claimed = (
        update(PostTarget)
        .where(T.id == target_id, T.revision == revision, claimable)
        .values(
            status=TargetStatus.PUBLISHING,
            claim_id=claim_id,
            claimed_at=now,
            attempts=T.attempts + 1,
            updated_at=func.now(),
        )
        .returning(
            T.id, T.workspace_id, T.post_id, T.account_id, T.platform, T.revision,
            T.attempts, T.scheduled_at, T.content_override, T.claim_id,
        )
        .cte("claimed")
    )  # fmt: skip
    p = Post.__table__.c
    a = SocialAccount.__table__.c
    row = (
        await session.execute(
            select(
                claimed.c.id,
                claimed.c.workspace_id,
                claimed.c.post_id,
                claimed.c.account_id,
                claimed.c.platform,
                claimed.c.revision,
                claimed.c.attempts,
                claimed.c.scheduled_at,
                func.coalesce(claimed.c.content_override, p.content).label("text"),
                p.media_ids,
                claimed.c.claim_id,
                a.external_id.label("account_external_id"),
                a.handle.label("account_handle"),
                a.status.label("account_status"),
                a.instance_url.label("account_instance_url"),
                a.access_token_enc,
                a.token_expires_at.label("account_token_expires_at"),
            )
            .join(Post, p.id == claimed.c.post_id)
            .join(SocialAccount, a.id == claimed.c.account_id)
        )
    ).one_or_none()
    return None if row is None else ClaimedTarget(**row._asdict())


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt ended in, as recorded on the target and in publish_attempts."""

    status: TargetStatus
    attempt_outcome: str
    remote_id: str | None = None
    remote_url: str | None = None
    error_kind: str | None = None
    error: str | None = None
    http_status: int | None = None
    next_attempt_at: datetime | None = None
    # Held: back to pending but not due (scheduled_at NULL) until the account is reconnected.
    hold: bool = False
    # Set for outcomes a person must hear about (terminal failure, unknown outcome).
    notify: str | None = None


async def record_outcome(
    session: AsyncSession,
    target: ClaimedTarget,
    outcome: Outcome,
    *,
    worker: str,
    started_at: datetime,
    finished_at: datetime,
) -> bool:
    """Record one attempt's result; False when the claim was lost (nothing is written then)."""
    values: dict[str, object] = {
        "status": outcome.status,
        "error_kind": outcome.error_kind,
        "error": outcome.error,
        "next_attempt_at": outcome.next_attempt_at,
        "updated_at": func.now(),
    }
    if outcome.status is TargetStatus.PUBLISHED:
        values |= {
            "remote_id": outcome.remote_id,
            "remote_url": outcome.remote_url,
            "published_at": finished_at,
        }
    if outcome.status is not TargetStatus.PUBLISHING:
        values |= {"claim_id": None, "claimed_at": None}
    if outcome.status is TargetStatus.ENQUEUED:
        # Handing a rate-limited target back does not use up the attempt it was claimed for.
        values["attempts"] = T.attempts - 1
    if outcome.hold:
        values["scheduled_at"] = None
    updated = await session.execute(
        update(PostTarget)
        .where(
            T.id == target.id,
            T.claim_id == target.claim_id,
            T.status.in_(sources_of(outcome.status) & {TargetStatus.PUBLISHING}),
        )
        .values(values)
        .returning(T.id)
    )
    if updated.scalar_one_or_none() is None:
        return False
    await session.execute(
        insert(PublishAttempt).values(
            workspace_id=target.workspace_id,
            target_id=target.id,
            attempt=target.attempts,
            revision=target.revision,
            claim_id=target.claim_id,
            worker=worker,
            started_at=started_at,
            finished_at=finished_at,
            outcome=outcome.attempt_outcome,
            http_status=outcome.http_status,
            remote_id=outcome.remote_id,
            error=outcome.error,
        )
    )
    if outcome.notify is not None:
        await add_notification(
            session,
            workspace_id=target.workspace_id,
            kind=outcome.notify,
            message=outcome.error or outcome.notify,
            post_id=target.post_id,
            target_id=target.id,
            dedupe_key=f"{outcome.notify}:{target.id}:{target.revision}:{target.attempts}",
        )
    await refresh_post_status(session, target.post_id)
    return True


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


async def require_reauth(session: AsyncSession, target: ClaimedTarget, reason: str) -> None:
    """Mark the account as needing a reconnect, telling its workspace once per lapse."""
    changed = await session.execute(
        update(SocialAccount)
        .where(SocialAccount.id == target.account_id, SocialAccount.status == "active")
        .values(status="requires_reauth", updated_at=func.now())
        .returning(SocialAccount.id)
    )
    if changed.scalar_one_or_none() is not None:
        await add_notification(
            session,
            workspace_id=target.workspace_id,
            kind="account_requires_reauth",
            message=f"@{target.account_handle} on {target.platform} must be reconnected: {reason}. "
            "Its posts are held and will go out once it is.",
            account_id=target.account_id,
            dedupe_key=f"account_requires_reauth:{target.account_id}:{target.claim_id}",
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


async def refresh_post_status(session: AsyncSession, post_id: uuid.UUID) -> None:
    """Derive the post's status from its targets.

    The post row is locked first: two targets of one post finishing at once then derive in
    turn, the second seeing the first's committed change, so the summary is never stale.
    """
    p = Post.__table__.c
    post_status = (
        await session.execute(select(p.status).where(p.id == post_id).with_for_update())
    ).scalar_one()
    statuses = (await session.execute(select(T.status).where(T.post_id == post_id))).scalars()
    derived = derive_post_status((TargetStatus(s) for s in statuses), draft=post_status == "draft")
    if derived != post_status:
        await session.execute(
            update(Post).where(p.id == post_id).values(status=derived, updated_at=func.now())
        )
