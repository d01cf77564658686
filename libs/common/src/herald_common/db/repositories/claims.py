"""The publisher's claim and record, a job's targets at a time.

Each target is still claimed and recorded on its own terms (its revision, its claim id, the
statuses it may move from), but in one statement per step for the whole job: at the top of
the hour a publisher claims and records thousands of targets a second, and a round of
statements per target made the publisher's CPU, not the platforms, the limit.

Locks are taken in one order everywhere a publisher takes several: target rows by id when
claiming; post rows by id, before their targets, when recording (the API locks a post before
its targets too). Two publishers claiming overlapping jobs, or recording targets of the same
posts, then wait for each other instead of deadlocking.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    TableValuedAlias,
    Text,
    Uuid,
    any_,
    bindparam,
    case,
    column,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select, Update
from sqlalchemy.types import TypeEngine

from herald_common.db.models import (
    Post,
    Posts,
    PostTarget,
    PostTargets,
    PublishAttempts,
    SocialAccount,
)
from herald_common.db.repositories.targets import add_notification
from herald_common.statuses import (
    CLAIMABLE,
    TargetStatus,
    derive_post_status,
    sources_of,
)

T = PostTarget.__table__.c
P = Post.__table__.c
A = SocialAccount.__table__.c


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
    media_ids: list[uuid.UUID]
    thread: list[str]
    content_warning: str | None
    visibility: str | None
    claim_id: uuid.UUID
    account_external_id: str
    account_handle: str
    account_status: str
    account_instance_url: str | None
    access_token_enc: bytes | None
    account_token_expires_at: datetime | None
    # When a request for this target that nobody has accounted for may have reached the
    # platform (``sent_at``, see models.PostTarget): the attempt must ask the platform before
    # sending anything. None: nothing is outstanding, so even a reclaimed target is sent.
    sent_at: datetime | None = None
    # True when this claim took the target over from a claim whose lease ran out (its worker
    # died); with ``sent_at`` set, the dead worker's request may have landed.
    reclaimed: bool = False


_TIMESTAMP = DateTime(timezone=True)


def _rows(name: str, **columns: TypeEngine[Any]) -> TableValuedAlias:
    """``unnest(:a, :b, ...) AS name(a, b, ...)``: rows from parallel arrays bound as the
    parameters ``a``, ``b``, ...: one parameter per column however many rows there are."""
    return (
        func.unnest(*(bindparam(column, type_=ARRAY(t)) for column, t in columns.items()))
        .table_valued(*(column(key, t) for key, t in columns.items()))
        .render_derived(name=name)
    )


def _claim_statement() -> Select[Any]:
    wanted = _rows("wanted", target_id=Uuid(), target_revision=Integer(), new_claim_id=Uuid())
    lapsed = (T.status == TargetStatus.PUBLISHING) & (T.claimed_at < bindparam("lapsed_before"))
    locked = (
        select(
            T.id,
            wanted.c.new_claim_id,
            T.status.label("previous_status"),
        )
        .join_from(
            PostTargets,
            wanted,
            (T.id == wanted.c.target_id) & (T.revision == wanted.c.target_revision),
        )
        .where(T.status.in_(sorted(CLAIMABLE)) | lapsed)
        .order_by(T.id)
        .with_for_update(of=PostTargets)
        .cte("locked")
    )
    claimed = (
        update(PostTargets)
        .where(T.id == locked.c.id)
        .values(
            status=TargetStatus.PUBLISHING,
            claim_id=locked.c.new_claim_id,
            claimed_at=bindparam("claimed_now"),
            attempts=T.attempts + 1,
            updated_at=func.now(),
        )
        .returning(
            T.id, T.workspace_id, T.post_id, T.account_id, T.platform, T.revision,
            T.attempts, T.scheduled_at, T.content_override, T.claim_id,
            T.thread, T.content_warning, T.visibility, T.sent_at,
            locked.c.previous_status,
        )
        .cte("claimed")
    )  # fmt: skip
    return (
        select(
            claimed.c.id,
            claimed.c.workspace_id,
            claimed.c.post_id,
            claimed.c.account_id,
            claimed.c.platform,
            claimed.c.revision,
            claimed.c.attempts,
            claimed.c.scheduled_at,
            func.coalesce(claimed.c.content_override, P.content).label("text"),
            P.media_ids,
            claimed.c.thread,
            claimed.c.content_warning,
            claimed.c.visibility,
            claimed.c.claim_id,
            A.external_id.label("account_external_id"),
            A.handle.label("account_handle"),
            A.status.label("account_status"),
            A.instance_url.label("account_instance_url"),
            A.access_token_enc,
            A.token_expires_at.label("account_token_expires_at"),
            claimed.c.sent_at,
            claimed.c.previous_status,
        )
        .join(Posts, P.id == claimed.c.post_id)
        .join(SocialAccount.__table__, A.id == claimed.c.account_id)
        .order_by(claimed.c.id)
    )


# Built once: the hot-path statements take only parameters, so SQLAlchemy's compiled cache
# is hit without rebuilding or re-keying a statement per job.
_CLAIM = _claim_statement()


async def claim_targets(
    session: AsyncSession,
    wanted: Sequence[tuple[uuid.UUID, int]],
    now: datetime,
    lease: timedelta,
) -> list[ClaimedTarget]:
    """Move each ``(target, revision)`` to ``publishing`` under a claim of its own; targets
    that are stale (rescheduled, cancelled, done, or claimed by a live job) are left out.

    The rows are locked first, in id order, and a lock is waited for rather than skipped: a
    job due now can fire before the scheduler pass that enqueued it has committed, and must
    then see the committed row. Postgres waits only where the committed row matches the
    filter, which is why ``pending`` counts as claimable (docs/decisions.md). A target left
    ``publishing`` past ``lease`` (its worker died mid-publish) is taken over, marked
    ``reclaimed``; whether its request may have left is ``sent_at``.
    """
    if not wanted:
        return []
    rows = await session.execute(
        _CLAIM,
        {
            "target_id": [target_id for target_id, _ in wanted],
            "target_revision": [revision for _, revision in wanted],
            "new_claim_id": [uuid.uuid4() for _ in wanted],
            "claimed_now": now,
            "lapsed_before": now - lease,
        },
    )
    targets = []
    for row in rows:
        fields = row._asdict()
        reclaimed = fields.pop("previous_status") == TargetStatus.PUBLISHING
        targets.append(ClaimedTarget(**fields, reclaimed=reclaimed))
    return targets


_sending = _rows("sending", sending_target=Uuid(), sending_claim=Uuid()).c
_MARK_SENDING = (
    update(PostTargets)
    .where(
        T.id == _sending.sending_target,
        T.claim_id == _sending.sending_claim,
        T.status == TargetStatus.PUBLISHING,
    )
    .values(sent_at=func.coalesce(T.sent_at, bindparam("sent_now")))
    .returning(T.id)
)


async def mark_sending(
    session: AsyncSession, targets: Sequence[ClaimedTarget], now: datetime
) -> set[uuid.UUID]:
    """Record that each target's request may reach the platform from ``now`` on (the
    caller commits before sending); returns the targets whose claim still holds, the only
    ones that may be sent. An earlier outstanding request's time is kept: it is the one a
    lookup must reach back to."""
    if not targets:
        return set()
    rows = await session.execute(
        _MARK_SENDING,
        {
            "sending_target": [t.id for t in targets],
            "sending_claim": [t.claim_id for t in targets],
            "sent_now": now,
        },
    )
    return set(rows.scalars())


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
    # A request may have reached the platform and this outcome does not account for it
    # (asking failed, the outcome is unknown): ``sent_at`` stays, so the next attempt asks
    # first. Every other outcome clears it.
    unsettled: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claimed target's finished attempt, ready to record."""

    target: ClaimedTarget
    outcome: Outcome
    started_at: datetime
    finished_at: datetime


def _record_statement() -> Update:
    v = _rows(
        "outcome",
        outcome_target=Uuid(),
        outcome_claim=Uuid(),
        outcome_status=Text(),
        outcome_error_kind=Text(),
        outcome_error=Text(),
        outcome_next_attempt_at=_TIMESTAMP,
        outcome_remote_id=Text(),
        outcome_remote_url=Text(),
        outcome_finished_at=_TIMESTAMP,
        outcome_give_back=Integer(),
        outcome_hold=Boolean(),
        outcome_unsettled=Boolean(),
    ).c
    published = v.outcome_status == TargetStatus.PUBLISHED.value
    return (
        update(PostTargets)
        .where(
            T.id == v.outcome_target,
            T.claim_id == v.outcome_claim,
            T.status == TargetStatus.PUBLISHING,
        )
        .values(
            status=v.outcome_status,
            error_kind=v.outcome_error_kind,
            error=v.outcome_error,
            next_attempt_at=v.outcome_next_attempt_at,
            remote_id=case((published, v.outcome_remote_id), else_=T.remote_id),
            remote_url=case((published, v.outcome_remote_url), else_=T.remote_url),
            published_at=case((published, v.outcome_finished_at), else_=T.published_at),
            attempts=T.attempts - v.outcome_give_back,
            scheduled_at=case((v.outcome_hold, None), else_=T.scheduled_at),
            sent_at=case((v.outcome_unsettled, T.sent_at), else_=None),
            # An outcome left unknown starts the reconciliation pass's looks afresh.
            lookups=0,
            claim_id=None,
            claimed_at=None,
            updated_at=func.now(),
        )
        .returning(T.id)
    )


_ATTEMPT_COLUMNS: dict[str, TypeEngine[Any]] = {
    "workspace_id": Uuid(),
    "target_id": Uuid(),
    "attempt": Integer(),
    "revision": Integer(),
    "claim_id": Uuid(),
    "worker": Text(),
    "started_at": _TIMESTAMP,
    "finished_at": _TIMESTAMP,
    "outcome": Text(),
    "http_status": Integer(),
    "remote_id": Text(),
    "error": Text(),
}
_RECORD = _record_statement()
_INSERT_ATTEMPTS = insert(PublishAttempts).from_select(
    list(_ATTEMPT_COLUMNS),
    select(_rows("attempt_rows", **{f"a_{k}": t for k, t in _ATTEMPT_COLUMNS.items()})),
)
_post_ids = bindparam("post_ids", type_=ARRAY(Uuid()))
_LOCK_POSTS = select(P.id, P.status).where(P.id == any_(_post_ids)).order_by(P.id).with_for_update()
_TARGET_STATUSES = select(T.post_id, T.status).where(T.post_id == any_(_post_ids))
_new_statuses = _rows("new_statuses", post_id=Uuid(), new_status=Text()).c
_UPDATE_POSTS = (
    update(Posts)
    .where(P.id == _new_statuses.post_id)
    .values(status=_new_statuses.new_status, updated_at=func.now())
)


async def record_outcomes(
    session: AsyncSession, attempts: Sequence[Attempt], *, worker: str
) -> list[Attempt]:
    """Record each attempt on its target, in publish_attempts and in its post's status.

    A target whose claim was lost meanwhile (taken over after its lease) is left as its new
    owner has it and nothing is written for it. Returns the attempts recorded.
    """
    for attempt in attempts:
        if TargetStatus.PUBLISHING not in sources_of(attempt.outcome.status):
            raise ValueError(f"an attempt cannot end in {attempt.outcome.status}")
    if not attempts:
        return []
    posts = await lock_posts(session, {a.target.post_id for a in attempts})
    recorded_ids = await _update_targets(session, attempts)
    recorded = [a for a in attempts if a.target.id in recorded_ids]
    if not recorded:
        return []
    rows = [_attempt_row(a, worker) for a in recorded]
    await session.execute(
        _INSERT_ATTEMPTS, {f"a_{key}": [row[key] for row in rows] for key in _ATTEMPT_COLUMNS}
    )
    for a in recorded:
        if a.outcome.notify is not None:
            target = a.target
            await add_notification(
                session,
                workspace_id=target.workspace_id,
                kind=a.outcome.notify,
                message=a.outcome.error or a.outcome.notify,
                post_id=target.post_id,
                target_id=target.id,
                dedupe_key=f"{a.outcome.notify}:{target.id}:{target.revision}:{target.attempts}",
            )
    await derive_post_statuses(
        session, {a.target.post_id: posts[a.target.post_id] for a in recorded}
    )
    return recorded


def _attempt_row(a: Attempt, worker: str) -> dict[str, Any]:
    return {
        "workspace_id": a.target.workspace_id,
        "target_id": a.target.id,
        "attempt": a.target.attempts,
        "revision": a.target.revision,
        "claim_id": a.target.claim_id,
        "worker": worker,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "outcome": a.outcome.attempt_outcome,
        "http_status": a.outcome.http_status,
        "remote_id": a.outcome.remote_id,
        "error": a.outcome.error,
    }


async def lock_posts(session: AsyncSession, post_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await session.execute(_LOCK_POSTS, {"post_ids": sorted(post_ids)})
    return {row.id: row.status for row in rows}


async def _update_targets(session: AsyncSession, attempts: Sequence[Attempt]) -> set[uuid.UUID]:
    outcomes = [a.outcome for a in attempts]
    rows = await session.execute(
        _RECORD,
        {
            "outcome_target": [a.target.id for a in attempts],
            "outcome_claim": [a.target.claim_id for a in attempts],
            "outcome_status": [o.status.value for o in outcomes],
            "outcome_error_kind": [o.error_kind for o in outcomes],
            "outcome_error": [o.error for o in outcomes],
            "outcome_next_attempt_at": [o.next_attempt_at for o in outcomes],
            "outcome_remote_id": [o.remote_id for o in outcomes],
            "outcome_remote_url": [o.remote_url for o in outcomes],
            "outcome_finished_at": [a.finished_at for a in attempts],
            # Handing a rate-limited target back does not use up the attempt it was claimed
            # for.
            "outcome_give_back": [int(o.status is TargetStatus.ENQUEUED) for o in outcomes],
            "outcome_hold": [o.hold for o in outcomes],
            "outcome_unsettled": [o.unsettled for o in outcomes],
        },
    )
    return set(rows.scalars())


async def derive_post_statuses(session: AsyncSession, current: dict[uuid.UUID, str]) -> None:
    """Derive each post's status (``current`` maps post to its status) from its targets.

    The caller locked the post rows: two jobs finishing targets of one post at once then
    derive in turn, the second seeing the first's committed change, so the summary is never
    stale.
    """
    statuses: dict[uuid.UUID, list[TargetStatus]] = {post_id: [] for post_id in current}
    rows = await session.execute(_TARGET_STATUSES, {"post_ids": list(current)})
    for post_id, status in rows:
        statuses[post_id].append(TargetStatus(status))
    changed = {
        post_id: derived
        for post_id, post_status in current.items()
        if (derived := derive_post_status(statuses[post_id], draft=post_status == "draft"))
        != post_status
    }
    if changed:
        await session.execute(
            _UPDATE_POSTS, {"post_id": list(changed), "new_status": list(changed.values())}
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
