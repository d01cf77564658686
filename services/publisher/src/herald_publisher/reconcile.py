"""The reconciliation pass's looks: for a target whose outcome was left unknown, on a platform
that can be asked later, look for the post again (the platform may list it late) and settle
the target as published, with its remote id and URL, once it is there.

A look only reads (``Platform.find_later``): it never sends the post, so it can never make a
second one. The scheduler's repair pass enqueues a look when one is due
(``HERALD_RECONCILE_DELAYS_SECONDS`` after the target became unknown, then after each look);
not found after the last, the target stays unknown for a person to check, and may be retried
by them (the API asks them to confirm, since it could post twice).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from herald_common import clock
from herald_common.db.repositories.lookups import (
    Look,
    UnknownTarget,
    record_looks,
    unknown_targets_due,
)
from herald_common.logging import get_logger
from herald_common.platforms.errors import CannotTell, PublishError
from herald_publisher.media import NO_MEDIA, TargetMedia, media_of_job
from herald_publisher.publish import PublisherDeps, first_attempt_at, request_for

log = get_logger(__name__)


async def reconcile_targets(
    deps: PublisherDeps, wanted: Sequence[tuple[uuid.UUID, int]]
) -> dict[uuid.UUID, str]:
    """Look for each ``(target, revision)`` still unknown with a look due; returns what each
    look found (``stale`` for one not due, retried or settled meanwhile)."""
    async with deps.sessions() as session:
        due = await unknown_targets_due(session, wanted, clock.now())
    results = dict.fromkeys((target_id for target_id, _ in wanted), "stale")
    if not due:
        return results
    media = await media_of_job(deps.sessions, [u.target for u in due], deps.platforms)
    looks = await asyncio.gather(*(_look(deps, u, media.get(u.target.id, NO_MEDIA)) for u in due))
    async with deps.sessions() as session:
        recorded = await record_looks(session, looks, worker=deps.worker)
        await session.commit()
    for look in recorded:
        target = look.unknown.target
        results[target.id] = look.outcome
        log.info(
            "looked for an unknown target",
            target_id=str(target.id),
            platform=target.platform,
            outcome=look.outcome,
            looks=look.unknown.lookups + 1,
        )
    return results


async def _look(deps: PublisherDeps, unknown: UnknownTarget, media: TargetMedia) -> Look:
    target = unknown.target
    platform = deps.platforms[target.platform]
    started = clock.now()
    try:
        token = await deps.tokens.token_for(
            target.account_id,
            target.platform,
            target.access_token_enc,
            target.account_token_expires_at,
        )
        request = request_for(deps, target, token, media)
        first = await first_attempt_at(deps, target.id, target.sent_at or started)
        found = await platform.find_later(replace(request, first_attempt_at=first))
    except CannotTell as exc:
        return Look(
            unknown,
            "cannot_tell",
            started,
            clock.now(),
            error=f"{exc.message}; Herald no longer looks for it: check {platform.name}.",
            http_status=exc.http_status,
        )
    except PublishError as exc:
        # This look got no answer (a 5xx, a rate limit, a login to renew); the next may.
        return _not_found(deps, unknown, "lookup_failed", started, exc.message, exc.http_status)
    if found is not None:
        return Look(unknown, "found_later", started, clock.now(), found=found)
    return _not_found(deps, unknown, "not_found_yet", started)


def _not_found(
    deps: PublisherDeps,
    unknown: UnknownTarget,
    outcome: str,
    started: datetime,
    why: str | None = None,
    http_status: int | None = None,
) -> Look:
    delays = deps.settings.reconcile_delays_seconds
    looks = unknown.lookups + 1
    now = clock.now()
    if looks < len(delays):
        return Look(
            unknown,
            outcome,
            started,
            now,
            next_look_at=now + timedelta(seconds=delays[looks]),
            http_status=http_status,
        )
    platform = unknown.target.platform
    last = f" (the last look: {why})" if why else ""
    return Look(
        unknown,
        outcome,
        started,
        now,
        error=f"The outcome is unknown and Herald looked for the post on {platform} {looks} "
        f"times until {now:%Y-%m-%d %H:%M} UTC without finding it{last}: check {platform}, "
        "and retry it if it is not there.",
        http_status=http_status,
    )
