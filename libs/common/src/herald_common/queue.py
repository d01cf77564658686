"""The arq queues Herald uses: names, job shapes, and a batched enqueue.

Jobs are serialized as JSON (never pickle: Redis content must not be able to run code) and
carry only ids; Postgres holds the truth and every job re-reads it.

One job carries every target of one platform due at the same instant (up to
``publisher_job_size`` of them): at the top of the hour thousands of targets fall due
together, and arq spends ~20 Redis commands on each job, so a job per target made the queue
itself the bottleneck (docs/decisions.md, "One job per due instant"). Each target in a job is
still claimed and recorded on its own terms.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any
from uuid import UUID

from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from redis.asyncio import Redis

from herald_common import clock

PUBLISH_TARGETS = "publish_targets"
# Looks again, without sending anything, for targets whose outcome was left unknown.
RECONCILE_TARGETS = "reconcile_targets"
QUEUE_PREFIX = "herald:publish:"
# ``{COVER_PREFIX}{single-target job id}`` names the job that carries that target with others,
# so the repair pass can tell a target whose job is merely shared from one whose job is lost.
COVER_PREFIX = "herald:job-of:"


def queue_name(platform: str) -> str:
    """Each platform has its own queue so one slow platform never starves another."""
    return f"{QUEUE_PREFIX}{platform}"


def publish_job_id(target_id: UUID, revision: int, attempt: int) -> str:
    """Deterministic, so enqueueing the same work twice is a no-op."""
    return f"pub:{target_id}:{revision}:{attempt}"


def waiting_job_id(target_id: UUID, revision: int, attempt: int, ready_at: datetime) -> str:
    """A job re-deferred by a rate limit: same attempt, so it needs its own id (the job that
    re-deferred it is still running under the plain one)."""
    return f"{publish_job_id(target_id, revision, attempt)}:w{int(ready_at.timestamp() * 1000)}"


def reclaim_job_id(target_id: UUID, revision: int, attempt: int) -> str:
    """A job sent to take over a claim whose lease lapsed (its worker died mid-publish)."""
    return f"{publish_job_id(target_id, revision, attempt)}:reclaim"


def lookup_job_id(target_id: UUID, revision: int, lookups: int) -> str:
    """The reconciliation pass's look number ``lookups + 1`` for an unknown target."""
    return f"look:{target_id}:{revision}:{lookups}"


def serialize_str(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def serialize(data: dict[str, Any]) -> bytes:
    return serialize_str(data).encode()


def deserialize(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data


@dataclass(frozen=True, slots=True)
class JobTarget:
    """One target in a job: the revision its job may claim, and the id a job carrying it
    alone would have (the plain, waiting or reclaim id)."""

    target_id: UUID
    revision: int
    attempt: int
    job_id: str | None = None

    @property
    def id(self) -> str:
        return self.job_id or publish_job_id(self.target_id, self.revision, self.attempt)


@dataclass(frozen=True, slots=True)
class PublishJob:
    """``publish_targets([[target_id, revision], ...])`` (or another ``function`` taking the
    same argument) due at ``defer_until`` on ``platform``'s queue."""

    platform: str
    defer_until: datetime
    targets: tuple[JobTarget, ...]
    function: str = PUBLISH_TARGETS

    @property
    def id(self) -> str:
        """A job of one target keeps that target's own id; a job of several gets one derived
        from theirs, so the same group enqueued twice is still one job."""
        if len(self.targets) == 1:
            return self.targets[0].id
        digest = hashlib.sha256(",".join(sorted(t.id for t in self.targets)).encode())
        due_ms = int(self.defer_until.timestamp() * 1000)
        return f"pubs:{self.platform}:{due_ms}:{digest.hexdigest()[:32]}"


def single_job(platform: str, defer_until: datetime, target: JobTarget) -> PublishJob:
    return PublishJob(platform=platform, defer_until=defer_until, targets=(target,))


def group_jobs(due: Iterable[tuple[str, datetime, JobTarget]], job_size: int) -> list[PublishJob]:
    """Targets due on the same platform at the same instant share jobs of up to ``job_size``.

    Grouped in a fixed order (platform, due time, id) so the same targets always make the same
    jobs, and a scheduler pass repeated after a crash enqueues nothing new.
    """
    ordered = sorted(due, key=lambda d: (d[0], d[1], d[2].id))
    jobs: list[PublishJob] = []
    for (platform, defer_until), group in groupby(ordered, key=lambda d: (d[0], d[1])):
        targets = tuple(t for _, _, t in group)
        for start in range(0, len(targets), job_size):
            chunk = targets[start : start + job_size]
            jobs.append(PublishJob(platform=platform, defer_until=defer_until, targets=chunk))
    return jobs


# arq's own enqueue_job costs a WATCH/MULTI round trip per job. This script does the same
# checks and writes (skip when the job or its result exists; store the job; add it to the
# queue's sorted set at its due time) for a whole batch in one call. A job of several targets
# also records, per target, which job carries it (COVER_PREFIX); a one-target job is skipped
# while a live job carries its target, so the repair pass never doubles a shared job.
# ARGV per job: id, queue, score, ttl ms, payload, n, then the n member ids (n = 0 for a
# one-target job).
_ENQUEUE_SCRIPT = """
local added, i = 0, 1
while i <= #ARGV do
  local job_id, n = ARGV[i], tonumber(ARGV[i + 5])
  local skip = redis.call('EXISTS', KEYS[1] .. job_id, KEYS[2] .. job_id) > 0
  if not skip and n == 0 then
    local carrier = redis.call('GET', KEYS[3] .. job_id)
    skip = carrier and redis.call('EXISTS', KEYS[1] .. carrier) == 1
  end
  if not skip then
    redis.call('PSETEX', KEYS[1] .. job_id, ARGV[i + 3], ARGV[i + 4])
    redis.call('ZADD', ARGV[i + 1], ARGV[i + 2], job_id)
    for j = 1, n do
      redis.call('PSETEX', KEYS[3] .. ARGV[i + 5 + j], ARGV[i + 3], job_id)
    end
    added = added + 1
  end
  i = i + 6 + n
end
return added
"""


def job_payload(job: PublishJob, enqueued_ms: int) -> str:
    """The job as arq stores it (arq's own field names), serialized as JSON."""
    return serialize_str(
        {
            "t": None,
            "f": job.function,
            "a": [[[str(t.target_id), t.revision] for t in job.targets]],
            "k": {},
            "et": enqueued_ms,
        }
    )


async def enqueue_publish_jobs(redis: Redis, jobs: Sequence[PublishJob]) -> int:
    """Enqueue ``jobs`` in one round trip; returns how many were new."""
    if not jobs:
        return 0
    now_ms = int(clock.now().timestamp() * 1000)
    argv: list[str] = []
    for job in jobs:
        score = max(int(job.defer_until.timestamp() * 1000), now_ms)
        ttl_ms = score - now_ms + expires_extra_ms
        members = [t.id for t in job.targets] if len(job.targets) > 1 else []
        argv += [job.id, queue_name(job.platform), str(score), str(ttl_ms)]
        argv += [job_payload(job, now_ms), str(len(members)), *members]
    added: int = await redis.eval(  # type: ignore[misc]  # redis-py types eval as sync|async
        _ENQUEUE_SCRIPT, 3, job_key_prefix, result_key_prefix, COVER_PREFIX, *argv
    )
    return added
