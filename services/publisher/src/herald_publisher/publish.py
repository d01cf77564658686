"""Publishing a job's targets: claim -> (rate limit -> validate -> "may have left" -> adapter)
each -> record.

Postgres decides, Redis only triggers: a job may run more than once (arq re-runs a job whose
worker died), but only a job whose revision matches can claim a target, and the claim is one
guarded UPDATE, so the post is published once. A job's targets are claimed in one statement,
published concurrently, and recorded in one transaction. Just before a request goes out, that
it may have is committed (``sent_at``, herald_publisher.sending): a claim taken over from a
dead worker is then asked about only when its request may really have left.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
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
    CannotTell,
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
from herald_publisher.sending import ClaimLost, SendJournal

log = get_logger(__name__)

# Why an attempt asks the platform before sending, as the target's error starts when asking
# leaves it unknown (tests/chaos counts unknowns by it).
ATTEMPT_CUT_OFF = (
    "The attempt that sent the request was cut off before recording its answer (its "
    "publisher was killed or timed out)"
)
EARLIER_REQUEST = "An earlier request may have reached the platform"


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
    sending: SendJournal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sending", SendJournal(self.sessions))


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
    attempts = [a for a in finished if isinstance(a, Attempt)]
    await _record(deps, attempts)
    for target, attempt in zip(claimed, finished, strict=True):
        if isinstance(attempt, Attempt):
            results[target.id] = attempt.outcome.attempt_outcome
        else:
            results[target.id] = attempt
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
    target that takes its tokens later, if at all. A target whose earlier request may have
    landed is asked about first, and a held account sends nothing. A target whose token then
    fails to refresh has spent its tokens without a call: the limits are kept, never
    exceeded."""
    asking = [
        i
        for i, t in enumerate(claimed)
        if t.account_status == AccountStatus.ACTIVE and t.sent_at is None
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
) -> Attempt | str:
    """One target's attempt, or why there is none to record: ``crashed`` when it failed on
    Herald's own account (a bug, not the platform's answer), which leaves the target claimed
    rather than guess at its outcome (the lease runs out, and the reclaim asks the platform
    if the request may have left), while the job's other targets are recorded; ``stale`` when
    its claim was taken over before anything was sent."""
    try:
        size = sum(item.size_bytes for item in media.media)
        budget = deps.media_budget
        room = budget.hold(size) if size and budget is not None else nullcontext()
        async with room:
            outcome = await _attempt(deps, target, started, buckets, wait, media)
    except ClaimLost:
        log.warning("claim lost before sending", target_id=str(target.id))
        return "stale"
    except Exception:
        log.exception("publish attempt crashed", target_id=str(target.id))
        return "crashed"
    return Attempt(target=target, outcome=outcome, started_at=started, finished_at=clock.now())


async def _attempt(
    deps: PublisherDeps,
    target: ClaimedTarget,
    started: datetime,
    buckets: Sequence[TokenBucket],
    wait: float | None,
    media: TargetMedia,
) -> Outcome:
    # Until the platform is asked, a request that may have landed stays outstanding.
    outstanding = target.sent_at is not None
    if target.account_status != AccountStatus.ACTIVE:
        reason = f"the account is {target.account_status.replace('_', ' ')}"
        return _held(reason, unsettled=outstanding)
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
        return _held(exc.message, exc.http_status, unsettled=outstanding)
    except PublishError as exc:
        return _failure(deps.settings, target, exc, unsettled=outstanding)
    request = request_for(deps, target, token, media)
    if target.sent_at is not None:
        # Its worker died after sending, or asking the platform failed last time: the request
        # may have landed. Ask before anything is sent again.
        why = ATTEMPT_CUT_OFF if target.reclaimed else EARLIER_REQUEST
        first = await first_attempt_at(deps, target.id, target.sent_at)
        asked = await _look_up(
            deps.settings, target, platform, replace(request, first_attempt_at=first), why
        )
        if asked is not None:
            return asked
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
        await deps.sending.about_to_send(target)
        return _published(await platform.publish(request))
    except RateLimited as exc:
        # Hold this account's buckets until the platform's reset, so no other worker hammers
        # it; the app-wide ones stay open, since one account's 429 says nothing of the others.
        for bucket in buckets:
            if ":acct:" in bucket.key:
                await drain_for(deps.redis, bucket, exc.retry_after)
        return _rate_limited(exc.retry_after, exc.message, exc.http_status)
    except OutcomeUnknown as exc:
        first = await first_attempt_at(deps, target.id, started)
        asked = await _look_up(
            deps.settings, target, platform, replace(request, first_attempt_at=first), exc.message
        )
        if asked is not None:
            return asked
        return _failure(deps.settings, target, Transient(f"{exc.message}; not found, retrying"))
    except AuthExpired as exc:
        return _held(exc.message, exc.http_status)
    except PublishError as exc:
        return _failure(deps.settings, target, exc)


def request_for(
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


def _rate_limited(
    wait: float, reason: str, http_status: int | None = None, *, unsettled: bool = False
) -> Outcome:
    return Outcome(
        status=TargetStatus.ENQUEUED,
        attempt_outcome="rate_limited",
        error_kind="rate_limited",
        error=f"Waiting {wait:.1f} s: {reason}.",
        http_status=http_status,
        next_attempt_at=_later(wait),
        unsettled=unsettled,
    )


def _failure(
    settings: Settings, target: ClaimedTarget, exc: PublishError, *, unsettled: bool = False
) -> Outcome:
    """A transient failure retries on the schedule; once it runs out, or for anything else,
    the target fails, unless a request may have reached the platform (``unsettled``): that
    target may be live, so it ends ``unknown``, never ``failed``."""
    delays = settings.publisher_retry_delays_seconds
    if isinstance(exc, Transient) and target.attempts <= len(delays):
        return Outcome(
            status=TargetStatus.RETRYING,
            attempt_outcome=exc.kind,
            error_kind=exc.kind,
            error=exc.message,
            http_status=exc.http_status,
            next_attempt_at=_later(retry_delay(settings, target.attempts, exc.retry_after)),
            unsettled=unsettled,
        )
    if unsettled:
        return _unknown(f"{exc.message}; no more retries", exc.http_status)
    return Outcome(
        status=TargetStatus.FAILED,
        attempt_outcome=exc.kind,
        error_kind=exc.kind,
        error=exc.message,
        http_status=exc.http_status,
        notify="publish_failed",
    )


def retry_delay(settings: Settings, attempts: int, asked: float | None = None) -> float:
    """Seconds before the retry that follows attempt number ``attempts``: its delay on the
    schedule plus up to ``publisher_retry_jitter`` of it more, at random, so targets that
    failed together come back spread out; never sooner than the platform ``asked``."""
    delay = settings.publisher_retry_delays_seconds[attempts - 1]
    delay *= 1 + random.uniform(0, settings.publisher_retry_jitter)
    return delay if asked is None else max(delay, asked)


def _held(reason: str, http_status: int | None = None, *, unsettled: bool = False) -> Outcome:
    """Keep the target, not due, until the account is reconnected (never deleted)."""
    return Outcome(
        status=TargetStatus.PENDING,
        attempt_outcome=AuthExpired.kind,
        error_kind=AuthExpired.kind,
        error=f"Held until the account is reconnected: {reason}.",
        http_status=http_status,
        hold=True,
        unsettled=unsettled,
    )


def _unknown(reason: str, http_status: int | None = None) -> Outcome:
    """A request may have created the post and the platform cannot say (or will not say for
    now): a person hears of it, and nothing is sent again unasked."""
    return Outcome(
        status=TargetStatus.UNKNOWN,
        attempt_outcome=OutcomeUnknown.kind,
        error_kind=OutcomeUnknown.kind,
        error=reason,
        http_status=http_status,
        notify="outcome_unknown",
        unsettled=True,
    )


async def first_attempt_at(
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


async def _look_up(
    settings: Settings,
    target: ClaimedTarget,
    platform: Platform,
    request: PublishRequest,
    why: str,
) -> Outcome | None:
    """An earlier request may have reached the platform: ask it before anything is sent again.

    Returns ``published`` when the post is there and None when it is certainly not. When the
    platform cannot tell (it has no way to look, or its window to answer has closed: see each
    adapter's ``find_published``), or refuses to, the target is ``unknown`` and a person hears
    of it. When asking fails for a while (a 5xx, a lost answer, a rate limit, a login to
    renew), the question stays open: it is asked again on the retry schedule, and only once
    retries run out does the target become ``unknown``.
    """
    try:
        found = await platform.find_published(request)
    except (CannotTell, Rejected) as exc:
        return _unknown(
            f"{why}; {platform.name} cannot tell whether it was posted: {exc.message}",
            exc.http_status,
        )
    except RateLimited as exc:
        asking = f"{why}; asking {platform.name} first: {exc.message}"
        return _rate_limited(exc.retry_after, asking, exc.http_status, unsettled=True)
    except AuthExpired as exc:
        return _held(exc.message, exc.http_status, unsettled=True)
    except PublishError as exc:
        failed = Transient(
            f"{why}; asking {platform.name} whether it was posted failed: {exc.message}",
            http_status=exc.http_status,
            retry_after=exc.retry_after if isinstance(exc, Transient) else None,
        )
        return _failure(settings, target, failed, unsettled=True)
    return None if found is None else _published(found)


async def _record(deps: PublisherDeps, attempts: Sequence[Attempt]) -> None:
    """Write the outcomes; retries and re-deferrals are enqueued before the commit, so a job
    that fires at once waits on the row locks and then sees the committed statuses."""
    attempts = [_with_first_look(deps, a) for a in attempts]
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


def _with_first_look(deps: PublisherDeps, attempt: Attempt) -> Attempt:
    """An outcome left unknown on a platform that can be asked later gets the time the
    reconciliation pass first looks for it (herald_publisher.reconcile)."""
    outcome, delays = attempt.outcome, deps.settings.reconcile_delays_seconds
    platform = deps.platforms[attempt.target.platform]
    if outcome.status is not TargetStatus.UNKNOWN or not platform.reconcilable or not delays:
        return attempt
    looking = f"{outcome.error}. Herald looks for it on {platform.name} again for a while."
    later = replace(outcome, next_attempt_at=_later(delays[0]), error=looking)
    return replace(attempt, outcome=later)


def _next_jobs(settings: Settings, recorded: Sequence[Attempt]) -> list[PublishJob]:
    """Jobs for the targets that go again (retries and rate-limit waits), grouped like the
    scheduler's: targets of a platform due again at the same instant share a job. (An
    unknown target's next look is the reconciliation pass's to enqueue.)"""
    again = [
        (a.target.platform, due, _next_job(a.target, a.outcome))
        for a in recorded
        if (due := a.outcome.next_attempt_at) is not None
        and a.outcome.status is not TargetStatus.UNKNOWN
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
