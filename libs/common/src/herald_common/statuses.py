"""Post and target statuses, the legal moves between them, and how a post's status is derived.

This module is the one place that says which transitions exist; every status-changing query
guards its UPDATE with the ``from`` side of a transition listed here.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class PostStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    PARTIALLY_PUBLISHED = "partially_published"
    FAILED = "failed"
    # Some target's outcome is unknown (it may be live): a person should check the platform.
    NEEDS_ATTENTION = "needs_attention"
    CANCELLED = "cancelled"


class TargetStatus(StrEnum):
    PENDING = "pending"
    ENQUEUED = "enqueued"
    PUBLISHING = "publishing"
    RETRYING = "retrying"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    REQUIRES_REAUTH = "requires_reauth"
    DISCONNECTED = "disconnected"


T = TargetStatus

# Targets the user may still change: nothing has been sent to the platform for them.
EDITABLE: frozenset[TargetStatus] = frozenset({T.PENDING, T.ENQUEUED, T.RETRYING})
# A publisher may claim a target only from these, and only at the job's revision. PENDING is
# among them because a job due at once can fire before the scheduler pass that enqueued it has
# committed: Postgres only waits on a row lock for rows whose committed version matches the
# UPDATE's filter, so the claim must match the still-pending row to wait for that commit (and
# then re-check the filter against the enqueued row). If that pass dies instead, the row stays
# pending at the job's revision and publishing it is right. Edits bump the revision, so no
# older job can ever match.
CLAIMABLE: frozenset[TargetStatus] = frozenset({T.PENDING, T.ENQUEUED, T.RETRYING})
TERMINAL: frozenset[TargetStatus] = frozenset({T.PUBLISHED, T.FAILED, T.CANCELLED, T.UNKNOWN})
IN_FLIGHT: frozenset[TargetStatus] = frozenset({T.PENDING, T.ENQUEUED, T.PUBLISHING, T.RETRYING})

TRANSITIONS: dict[TargetStatus, frozenset[TargetStatus]] = {
    T.PENDING: frozenset({T.ENQUEUED, T.PUBLISHING, T.CANCELLED, T.PENDING}),
    T.ENQUEUED: frozenset({T.PUBLISHING, T.PENDING, T.CANCELLED}),
    T.RETRYING: frozenset({T.PUBLISHING, T.PENDING, T.CANCELLED}),
    # PENDING from PUBLISHING: held (not due) while the account must be reconnected.
    T.PUBLISHING: frozenset({T.PUBLISHED, T.FAILED, T.RETRYING, T.ENQUEUED, T.UNKNOWN, T.PENDING}),
    T.PUBLISHED: frozenset(),
    # FAILED/UNKNOWN to PENDING: a person asked for a retry.
    T.FAILED: frozenset({T.PENDING}),
    T.UNKNOWN: frozenset({T.PUBLISHED, T.PENDING}),
    # Re-adding an account to an edited post revives its cancelled target.
    T.CANCELLED: frozenset({T.PENDING}),
}


class IllegalTransition(ValueError):
    """A change of target status that TRANSITIONS does not allow: a bug, never user error."""


def check_transition(current: str, new: TargetStatus) -> None:
    """Raise unless a target may move from ``current`` to ``new`` (staying put is allowed)."""
    if TargetStatus(current) is not new and new not in TRANSITIONS[TargetStatus(current)]:
        raise IllegalTransition(f"a target cannot go from {current} to {new.value}")


def sources_of(target: TargetStatus) -> frozenset[TargetStatus]:
    """Every status from which ``target`` may be reached."""
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)


def derive_post_status(targets: Iterable[TargetStatus], *, draft: bool = False) -> PostStatus:
    """A post's status is a summary of its targets' statuses.

    Once nothing is in flight, a target whose outcome is ``unknown`` makes the post
    ``needs_attention`` whatever its other targets did: that target may well be live, so
    neither ``failed`` nor ``partially_published`` would be true, and a person should look.
    """
    if draft:
        return PostStatus.DRAFT
    statuses = [TargetStatus(s) for s in targets]
    live = [s for s in statuses if s is not T.CANCELLED]
    if not live:
        return PostStatus.CANCELLED
    published = sum(s is T.PUBLISHED for s in live)
    if any(s in IN_FLIGHT for s in live):
        started = published or any(s in {T.PUBLISHING, T.RETRYING} for s in live)
        return PostStatus.PUBLISHING if started else PostStatus.SCHEDULED
    if any(s is T.UNKNOWN for s in live):
        return PostStatus.NEEDS_ATTENTION
    if published == len(live):
        return PostStatus.PUBLISHED
    return PostStatus.PARTIALLY_PUBLISHED if published else PostStatus.FAILED
