"""Publishing a job's targets: claim -> (rate limit -> validate -> adapter) each -> record.

Postgres decides, Redis only triggers: a job may run more than once (arq re-runs a job whose
worker died), but only a job whose revision matches can claim a target, and the claim is one
guarded UPDATE, so the post is published once. A job's targets are claimed in one statement,
published concurrently, and recorded in one transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from math import ceil

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.accounts.refresh import TokenRefresher
from herald_common.db.models import PublishAttempt
from herald_common.db.repositories.claims import (
    Attempt,
    ClaimedTarget,
    Outcome,
    claim_targets,
    record_outcomes,
    require_reauth,
)
from herald_common.logging import get_logger
from herald_common.metrics import record_publish, record_rate_limit_wait
from herald_common.platforms.base import (
    AccountCredentials,
    Platform,
    PostContent,
    Published,
    PublishRequest,
)
from herald_common.platforms.errors import (
    AuthExpired,
    OutcomeUnknown,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.queue import (
    JobTarget,
    PublishJob,
    enqueue_publish_jobs,
    group_jobs,
    waiting_job_id,
)
from herald_common.ratelimit import TokenBucket, acquire, acquire_many, buckets_for, drain_for
from herald_common.settings import Settings
from herald_common.statuses import AccountStatus, TargetStatus
from herald_publisher.media import (
    NO_MEDIA,
    ByteBudget,
    StoredMedia,
    TargetMedia,
    media_of_job,
)

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PublisherDeps:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    platforms: dict[str, Platform]
    tokens: TokenRefresher
    worker: str
    # Bounds the pictures held in memory by this process's attempts.
    media_budget: ByteBudget | None = None


def idempotency_key(target_id: uuid.UUID) -> str:
    """One key for the target's whole life: every retry of it is the same post."""
    return f"herald-{target_id}"


async def publish_targets(
    deps: PublisherDeps, wanted: Sequence[tuple[uuid.UUID, int]]
) -> dict[uuid.UUID, str]:
    """Run one job: publish each ``(target, revision)`` it carries; returns what happened to
    each (for logs and tests): an attempt's outcome, ``stale``, or ``crashed`` (see
    ``_attempt_timed``)."""
    started = clock.now()
    lease = timedelta(seconds=deps.settings.publisher_claim_lease_seconds)
    async with deps.sessions() as session:
        claimed = await claim_targets(session, wanted, started, lease)
        await session.commit()
    results = dict.fromkeys((target_id for target_id, _ in wanted), "stale")
    if len(claimed) < len(wanted):
        # Rescheduled, cancelled, or already handled by another copy of the job.
        log.debug("stale or duplicate targets dropped", count=len(wanted) - len(claimed))
    if not claimed:
        return results
    media = await media_of_job(deps.sessions, claimed, deps.platforms)
    buckets = [_buckets(deps, t) for t in claimed]
    waits = await _take_tokens(deps, claimed, buckets)
    finished = await asyncio.gather(
        *(
            _attempt_timed(deps, t, started, b, wait, media.get(t.id, NO_MEDIA))
            for t, b, wait in zip(claimed, buckets, waits, strict=True)
        )
    )
    attempts = [a for a in finished if a is not None]
    await _record(deps, attempts)
    for target, attempt in zip(claimed, finished, strict=True):
        results[target.id] = "crashed" if attempt is None else attempt.outcome.attempt_outcome
    return results


async def publish_target(deps: PublisherDeps, target_id: uuid.UUID, revision: int) -> str:
    """A job of one target."""
    return (await publish_targets(deps, [(target_id, revision)]))[target_id]


async def _take_tokens(
    deps: PublisherDeps,
    claimed: Sequence[ClaimedTarget],
    buckets: Sequence[Sequence[TokenBucket]],
) -> list[float | None]:
    """The rate-limit wait of each target, from one round trip for the whole job; None for a
    target that takes its tokens later, if at all. A reclaimed target is asked about first
    (handed back unasked, its next claim would not know to ask), and a held account sends
    nothing. A target whose token then fails to refresh has spent its tokens without a call:
    the limits are kept, never exceeded."""
    asking = [
        i
        for i, t in enumerate(claimed)
        if t.account_status == AccountStatus.ACTIVE and not t.reclaimed
    ]
    requests = [buckets[i] for i in asking]
    waits: list[float | None] = [None] * len(claimed)
    for i, wait in zip(asking, await acquire_many(deps.redis, requests), strict=True):
        waits[i] = wait
    return waits


def _buckets(deps: PublisherDeps, target: ClaimedTarget) -> list[TokenBucket]:
    platform = deps.platforms[target.platform]
    return buckets_for(platform.name, platform.limits, target.account_id)


async def _attempt_timed(
    deps: PublisherDeps,
    target: ClaimedTarget,
    started: datetime,
    buckets: Sequence[TokenBucket],
    wait: float | None,
    media: TargetMedia,
) -> Attempt | None:
    """One target's attempt. A failure of Herald's own (a bug, not the platform's answer)
    leaves the target claimed rather than guess at its outcome: the lease runs out and a
    reclaim job asks the platform what happened, while the job's other targets are recorded."""
    try:
        size = sum(item.size_bytes for item in media.media)
        budget = deps.media_budget
        room = budget.hold(size) if size and budget is not None else nullcontext()
        async with room:
            outcome = await _attempt(deps, target, started, buckets, wait, media)
    except Exception:
        log.exception("publish attempt crashed", target_id=str(target.id))
        return None
    return Attempt(target=target, outcome=outcome, started_at=started, finished_at=clock.now())


async def _attempt(
    deps: PublisherDeps,
    target: ClaimedTarget,
    started: datetime,
    buckets: Sequence[TokenBucket],
    wait: float | None,
    media: TargetMedia,
) -> Outcome:
    if target.account_status != AccountStatus.ACTIVE:
        return _held(f"the account is {target.account_status.replace('_', ' ')}")
    platform = deps.platforms[target.platform]
    try:
        # Refreshed first when it expires within minutes, under a lock per account.
        token = await deps.tokens.token_for(
            target.account_id,
            target.platform,
            target.access_token_enc,
            target.account_token_expires_at,
        )
    except AuthExpired as exc:
        return _held(exc.message, exc.http_status)
    except PublishError as exc:
        return _failure(deps.settings, target, exc)
    request = _request(deps, target, token, media)
    if target.reclaimed:
        # The worker that held this claim died mid-publish: its request may have landed.
        first = await _first_attempt_at(deps, target.id, target.previous_claimed_at or started)
        found = await _look_up(platform, replace(request, first_attempt_at=first), "reclaimed")
        if found is not None:
            return found
    if wait is None:
        wait = await acquire(deps.redis, buckets)
    record_rate_limit_wait(platform.name, wait)
    if wait > 0:
        return _rate_limited(wait, "our rate limit for this account or platform")
    try:
        if media.missing:
            raise Rejected("A picture of this post was deleted before it went out.")
        problems = platform.validate(request.content)
        if problems:
            raise Rejected("; ".join(p.message for p in problems))
        return _published(await platform.publish(request))
    except RateLimited as exc:
        # Hold this account's buckets until the platform's reset, so no other worker hammers
        # it; the app-wide ones stay open, since one account's 429 says nothing of the others.
        for bucket in buckets:
            if ":acct:" in bucket.key:
                await drain_for(deps.redis, bucket, exc.retry_after)
        return _rate_limited(exc.retry_after, exc.message, exc.http_status)
    except OutcomeUnknown as exc:
        first = await _first_attempt_at(deps, target.id, started)
        found = await _look_up(platform, replace(request, first_attempt_at=first), exc.message)
        if found is not None:
            return found
        return _failure(deps.settings, target, Transient(f"{exc.message}; not found, retrying"))
    except AuthExpired as exc:
        return _held(exc.message, exc.http_status)
    except PublishError as exc:
        return _failure(deps.settings, target, exc)


def _request(
    deps: PublisherDeps, target: ClaimedTarget, token: str | None, media: TargetMedia
) -> PublishRequest:
    return PublishRequest(
        account=AccountCredentials(
            account_id=target.account_id,
            workspace_id=target.workspace_id,
            external_id=target.account_external_id,
            handle=target.account_handle,
            access_token=token,
            instance_url=target.account_instance_url,
        ),
        content=PostContent(
            text=target.text,
            media=media.media,
            thread=tuple(target.thread),
            content_warning=target.content_warning,
            visibility=target.visibility,
        ),
        idempotency_key=idempotency_key(target.id),
        target_id=target.id,
        media_source=StoredMedia(deps.sessions, target.workspace_id, target.id),
        uploaded=media.uploaded,
    )


def _later(seconds: float) -> datetime:
    """``seconds`` from now, rounded up to the next tenth of a second: targets of one job sent
    back together then fall due at the same instant again and share a job (never earlier than
    asked, at most 100 ms later)."""
    tenths = ceil((clock.now().timestamp() + seconds) * 10)
    return datetime.fromtimestamp(tenths / 10, UTC)


def _published(published: Published) -> Outcome:
    return Outcome(
        status=TargetStatus.PUBLISHED,
        attempt_outcome="published",
        remote_id=published.remote_id,
        remote_url=published.remote_url,
    )


def _rate_limited(wait: float, reason: str, http_status: int | None = None) -> Outcome:
    return Outcome(
        status=TargetStatus.ENQUEUED,
        attempt_outcome="rate_limited",
        error_kind="rate_limited",
        error=f"Waiting {wait:.1f} s: {reason}.",
        http_status=http_status,
        next_attempt_at=_later(wait),
    )


def _failure(settings: Settings, target: ClaimedTarget, exc: PublishError) -> Outcome:
    delays = settings.publisher_retry_delays_seconds
    if isinstance(exc, Transient) and target.attempts <= len(delays):
        return Outcome(
            status=TargetStatus.RETRYING,
            attempt_outcome=exc.kind,
            error_kind=exc.kind,
            error=exc.message,
            http_status=exc.http_status,
            next_attempt_at=_later(delays[target.attempts - 1]),
        )
    return Outcome(
        status=TargetStatus.FAILED,
        attempt_outcome=exc.kind,
        error_kind=exc.kind,
        error=exc.message,
        http_status=exc.http_status,
        notify="publish_failed",
    )


def _held(reason: str, http_status: int | None = None) -> Outcome:
    """Keep the target, not due, until the account is reconnected (never deleted)."""
    return Outcome(
        status=TargetStatus.PENDING,
        attempt_outcome=AuthExpired.kind,
        error_kind=AuthExpired.kind,
        error=f"Held until the account is reconnected: {reason}.",
        http_status=http_status,
        hold=True,
    )


async def _first_attempt_at(
    deps: PublisherDeps, target_id: uuid.UUID, current: datetime
) -> datetime:
    """When the earliest attempt that may have reached the platform started (rate-limited
    hand-backs never called it)."""
    async with deps.sessions() as session:
        earliest = await session.scalar(
            select(func.min(PublishAttempt.started_at)).where(
                PublishAttempt.target_id == target_id, PublishAttempt.outcome != "rate_limited"
            )
        )
    return current if earliest is None else min(earliest, current)


async def _look_up(platform: Platform, request: PublishRequest, why: str) -> Outcome | None:
    """An earlier request may have reached the platform: ask it before anything is sent again.

    Returns ``published`` when the post is there, ``unknown`` (and a notification) when the
    platform cannot tell, and None when it is certainly not there.
    """
    try:
        found = await platform.find_published(request)
    except PublishError as exc:
        # CannotTell, or the lookup itself failed: either way we do not know, so a person
        # decides rather than risk a second post.
        return Outcome(
            status=TargetStatus.UNKNOWN,
            attempt_outcome=OutcomeUnknown.kind,
            error_kind=OutcomeUnknown.kind,
            error=f"{why}; {platform.name} cannot tell whether it was posted: {exc.message}",
            http_status=exc.http_status,
            notify="outcome_unknown",
        )
    return None if found is None else _published(found)


async def _record(deps: PublisherDeps, attempts: Sequence[Attempt]) -> None:
    """Write the outcomes; retries and re-deferrals are enqueued before the commit, so a job
    that fires at once waits on the row locks and then sees the committed statuses."""
    async with deps.sessions() as session:
        recorded = await record_outcomes(session, attempts, worker=deps.worker)
        if len(recorded) < len(attempts):
            lost = {a.target.id for a in attempts} - {a.target.id for a in recorded}
            log.warning("claims lost before recording", target_ids=sorted(map(str, lost)))
        for attempt in recorded:
            if attempt.outcome.error_kind == AuthExpired.kind:
                await require_reauth(
                    session, attempt.target, attempt.outcome.error or "its login expired"
                )
        await enqueue_publish_jobs(deps.redis, _next_jobs(deps.settings, recorded))
        await session.commit()
    now = clock.now()
    for attempt in recorded:
        target, outcome = attempt.target, attempt.outcome
        record_publish(target.platform, outcome.attempt_outcome, target.scheduled_at, now)
        log.info(
            "publish attempt finished",
            target_id=str(target.id),
            platform=target.platform,
            outcome=outcome.attempt_outcome,
            status=outcome.status.value,
        )


def _next_jobs(settings: Settings, recorded: Sequence[Attempt]) -> list[PublishJob]:
    """Jobs for the targets that go again (retries and rate-limit waits), grouped like the
    scheduler's: targets of a platform due again at the same instant share a job."""
    again = [
        (a.target.platform, due, _next_job(a.target, a.outcome))
        for a in recorded
        if (due := a.outcome.next_attempt_at) is not None
    ]
    return group_jobs(again, settings.publisher_job_size)


def _next_job(target: ClaimedTarget, outcome: Outcome) -> JobTarget:
    assert outcome.next_attempt_at is not None
    if outcome.status is TargetStatus.ENQUEUED:
        # Re-deferred, same attempt: the id must still differ from the job running now.
        attempt = target.attempts
        job_id = waiting_job_id(target.id, target.revision, attempt, outcome.next_attempt_at)
        return JobTarget(target.id, target.revision, attempt, job_id)
    return JobTarget(target.id, target.revision, target.attempts + 1)
