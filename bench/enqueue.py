"""Scheduler claim+enqueue rate: ``herald_scheduler.enqueue.enqueue_due`` in-process against a
fresh database and a private Redis, for N targets already due."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from bench.common import (
    RedisServer,
    bench_settings,
    db_sessions,
    fresh_database,
    note,
    print_table,
    seed_targets,
    status_counts,
)
from herald_common.queue import queue_name
from herald_scheduler.enqueue import enqueue_due


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="scheduler_batch_size")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the timed pass; print the top 25"
    )


async def _go(args: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    settings = bench_settings(database_url, redis_url, scheduler_batch_size=args.batch_size)
    redis = Redis.from_url(redis_url)
    async with db_sessions(settings) as sessions:
        await enqueue_due(sessions, redis, settings)  # warm-up: connections, nothing due yet
        due = datetime.now(UTC) - timedelta(seconds=1)
        seeded = await seed_targets(
            sessions, settings, "http://127.0.0.1:9", args.accounts, [due] * args.targets
        )
        note(f"enqueue: {args.targets:,} due targets seeded")
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        moved = await enqueue_due(sessions, redis, settings)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        counts = await status_counts(sessions, seeded.workspace_id)
    queued = await redis.zcard(queue_name("mastodon"))
    await redis.aclose()
    rate = moved / seconds if seconds else 0.0
    print_table(
        f"enqueue: {args.targets:,} due targets, batch {args.batch_size}",
        [
            ("targets moved", moved),
            ("jobs in the queue", queued),
            ("seconds", seconds),
            ("targets/s", rate),
            ("statuses", counts),
        ],
    )
    return {
        "targets": args.targets,
        "batch_size": args.batch_size,
        "moved": moved,
        "queued": queued,
        "seconds": seconds,
        "targets_per_s": rate,
        "statuses": counts,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database() as database_url, RedisServer() as redis:
        return asyncio.run(_go(args, database_url, redis.url))
