"""The arq queues Herald uses: names, job signatures, and a pipelined enqueue.

Jobs are serialized as JSON (never pickle: Redis content must not be able to run code) and
carry only ids; Postgres holds the truth and every job re-reads it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from redis.asyncio import Redis

from herald_common import clock

PUBLISH_TARGET = "publish_target"
QUEUE_PREFIX = "herald:publish:"


def queue_name(platform: str) -> str:
    """Each platform has its own queue so one slow platform never starves another."""
    return f"{QUEUE_PREFIX}{platform}"


def publish_job_id(target_id: UUID, revision: int, attempt: int) -> str:
    """Deterministic, so enqueueing the same work twice is a no-op."""
    return f"pub:{target_id}:{revision}:{attempt}"


def serialize_str(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def serialize(data: dict[str, Any]) -> bytes:
    return serialize_str(data).encode()


def deserialize(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    return data


def waiting_job_id(target_id: UUID, revision: int, attempt: int, ready_at: datetime) -> str:
    """A job re-deferred by a rate limit: same attempt, so it needs its own id (the job that
    re-deferred it is still running under the plain one)."""
    return f"{publish_job_id(target_id, revision, attempt)}:w{int(ready_at.timestamp() * 1000)}"


def reclaim_job_id(target_id: UUID, revision: int, attempt: int) -> str:
    """A job sent to take over a claim whose lease lapsed (its worker died mid-publish)."""
    return f"{publish_job_id(target_id, revision, attempt)}:reclaim"


@dataclass(frozen=True, slots=True)
class PublishJob:
    """``publish_target(target_id, revision)`` due at ``defer_until`` on ``platform``'s queue."""

    target_id: UUID
    revision: int
    attempt: int
    platform: str
    defer_until: datetime
    job_id: str | None = None

    @property
    def id(self) -> str:
        return self.job_id or publish_job_id(self.target_id, self.revision, self.attempt)


# arq's own enqueue_job costs a WATCH/MULTI round trip per job. This script does the same
# checks and writes (skip when the job or its result exists; store the job; add it to the
# queue's sorted set at its due time) for a whole batch in one call.
_ENQUEUE_SCRIPT = """
local added = 0
for i = 1, #ARGV, 5 do
  local job_id = ARGV[i]
  local job_key = KEYS[1] .. job_id
  if redis.call('EXISTS', job_key, KEYS[2] .. job_id) == 0 then
    redis.call('PSETEX', job_key, ARGV[i + 3], ARGV[i + 4])
    redis.call('ZADD', ARGV[i + 1], ARGV[i + 2], job_id)
    added = added + 1
  end
end
return added
"""


async def enqueue_publish_jobs(redis: Redis, jobs: Sequence[PublishJob]) -> int:
    """Enqueue ``jobs`` in one round trip; returns how many were new."""
    if not jobs:
        return 0
    now_ms = int(clock.now().timestamp() * 1000)
    argv: list[str] = []
    for job in jobs:
        score = max(int(job.defer_until.timestamp() * 1000), now_ms)
        payload = serialize_str(
            {
                "t": None,
                "f": PUBLISH_TARGET,
                "a": [str(job.target_id), job.revision],
                "k": {},
                "et": now_ms,
            }
        )
        ttl_ms = score - now_ms + expires_extra_ms
        argv += [job.id, queue_name(job.platform), str(score), str(ttl_ms), payload]
    added: int = await redis.eval(  # type: ignore[misc]  # redis-py types eval as sync|async
        _ENQUEUE_SCRIPT, 2, job_key_prefix, result_key_prefix, *argv
    )
    return added
