"""Every Prometheus metric Herald exports, in one place, with the few helpers that feed them.

Each process exposes the default registry: the API at ``/metrics`` on its own port, the other
services on their probe port (:mod:`herald_common.probe_server`). Labels are bounded sets
(platform names, error kinds, route templates), never ids or raw paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis

from herald_common import clock
from herald_common.queue import queue_name

# Lateness is the product's promise ("on time"): fine buckets under a second, where the
# queue's 50 ms poll delay sits, then coarse ones for retries and backlogs.
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
# A scheduler batch holds at most HERALD_SCHEDULER_BATCH_SIZE targets (1000 by default).
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# Token-bucket waits run from milliseconds (a busy app-wide bucket) to hours (a platform's
# daily cap, or a 429's announced reset).
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

PUBLISH_LATENESS = Histogram(
    "herald_publish_lateness_seconds",
    "Seconds between a target's scheduled time and its publication (published_at - "
    "scheduled_at), per platform.",
    ["platform"],
    buckets=LATENESS_BUCKETS,
)
PUBLISH_TOTAL = Counter(
    "herald_publish",
    "Publish attempts by outcome: published, rate_limited, or the error kind "
    "(transient, rejected, auth_expired, outcome_unknown, ...).",
    ["platform", "outcome"],
)
RATE_LIMIT_WAIT = Histogram(
    "herald_ratelimit_wait_seconds",
    "How long a publish had to wait for its token buckets, when they were empty "
    "(the job is re-deferred by that much).",
    ["platform"],
    buckets=WAIT_BUCKETS,
)
QUEUE_READY_JOBS = Gauge(
    "herald_queue_ready_jobs",
    "Jobs due now in a platform's queue (score <= now in its arq sorted set), including "
    "jobs being run: arq removes a job only when it finishes.",
    ["platform"],
)
QUEUE_OLDEST_READY_AGE = Gauge(
    "herald_queue_oldest_ready_age_seconds",
    "How long the oldest due job in a platform's queue has been due (0 when none is).",
    ["platform"],
)
SCHEDULER_BATCH_SIZE = Histogram(
    "herald_scheduler_batch_size",
    "Targets moved into the queue per scheduler batch (batches that moved any).",
    buckets=BATCH_BUCKETS,
)
SCHEDULER_PASS_SECONDS = Histogram(
    "herald_scheduler_pass_duration_seconds",
    "Duration of one scheduler pass (every batch due within the horizon).",
)
SCHEDULER_PASS_FAILURES = Counter(
    "herald_scheduler_pass_failures",
    "Scheduler passes that raised (retried on the next wake-up).",
)
LOOP_LAST_SUCCESS = Gauge(
    "herald_loop_last_success_timestamp_seconds",
    "Unix time at which a service's main loop last finished a turn successfully.",
    ["loop"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "herald_http_request_duration_seconds",
    "API request latency by route template (e.g. /v1/posts/{post_id}), method and status.",
    ["method", "route", "status"],
    buckets=REQUEST_BUCKETS,
)


def record_publish(
    platform: str, outcome: str, scheduled_at: datetime | None, published_at: datetime | None
) -> None:
    """Count one attempt; a publication also observes its lateness."""
    PUBLISH_TOTAL.labels(platform=platform, outcome=outcome).inc()
    if outcome == "published" and scheduled_at is not None and published_at is not None:
        # Early is impossible by design (jobs are deferred to the time); clamp clock noise.
        lateness = max(0.0, (published_at - scheduled_at).total_seconds())
        PUBLISH_LATENESS.labels(platform=platform).observe(lateness)


def record_rate_limit_wait(platform: str, wait_seconds: float) -> None:
    if wait_seconds > 0:
        RATE_LIMIT_WAIT.labels(platform=platform).observe(wait_seconds)


async def refresh_queue_depth(redis: Redis, platforms: Iterable[str]) -> None:
    """Set the ready-jobs and oldest-ready-age gauges from each platform queue's sorted set.

    arq scores a job by the epoch milliseconds it is due at, so "ready" is score <= now.
    Two commands per platform, in one round trip; called when /metrics is scraped.
    """
    names = list(platforms)
    if not names:
        return
    now_ms = clock.now().timestamp() * 1000
    async with redis.pipeline(transaction=False) as pipe:
        for platform in names:
            queue = queue_name(platform)
            pipe.zcount(queue, "-inf", now_ms)
            pipe.zrangebyscore(queue, "-inf", now_ms, start=0, num=1, withscores=True)
        replies = await pipe.execute()
    for i, platform in enumerate(names):
        ready: int = replies[2 * i]
        oldest: list[tuple[bytes, float]] = replies[2 * i + 1]
        QUEUE_READY_JOBS.labels(platform=platform).set(ready)
        age = (now_ms - oldest[0][1]) / 1000 if oldest else 0.0
        QUEUE_OLDEST_READY_AGE.labels(platform=platform).set(max(0.0, age))
