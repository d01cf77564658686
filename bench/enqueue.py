"""Scheduler claim+enqueue rate: ``herald_scheduler.enqueue.enqueue_due`` in-process against a
fresh database and a private Redis, for N targets already due."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.report import note, print_table
from bench.seed import db_sessions, seed_targets, status_counts
from bench.servers import RedisServer, fresh_database
from bench.services import bench_settings
from herald_common.queue import queue_name
from herald_common.settings import Settings
from herald_scheduler.enqueue import enqueue_due


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="scheduler_batch_size")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed passes, each on freshly seeded targets"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each timed pass; print the top 25"
    )


async def _timed_pass(
    args: argparse.Namespace,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    settings: Settings,
) -> tuple[int, float, dict[str, int], int]:
    """Seed N due targets, time one enqueue pass over them; (moved, seconds, statuses, jobs).

    Every pass starts from empty tables and an empty Redis, and the planner has statistics for
    the seeded rows (as autovacuum keeps them in production), so the passes are alike."""
    await redis.flushdb()
    async with sessions() as session:
        await session.execute(text("TRUNCATE workspaces CASCADE"))
        await session.commit()
    due = datetime.now(UTC) - timedelta(seconds=1)
    seeded = await seed_targets(
        sessions, settings, "http://127.0.0.1:9", args.accounts, [due] * args.targets
    )
    async with sessions() as session:
        await session.execute(text("ANALYZE post_targets, posts, social_accounts"))
        await session.commit()
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
    return moved, seconds, counts, await redis.zcard(queue_name("mastodon"))


async def _go(args: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    settings = bench_settings(database_url, redis_url, scheduler_batch_size=args.batch_size)
    redis = Redis.from_url(redis_url)
    passes = []
    async with db_sessions(settings) as sessions:
        await enqueue_due(sessions, redis, settings)  # warm-up: connections, nothing due yet
        for _ in range(args.repeat):
            passes.append(await _timed_pass(args, sessions, redis, settings))
    await redis.aclose()
    rates = [moved / seconds if seconds else 0.0 for moved, seconds, _, _ in passes]
    median = statistics.median(rates)
    moved, seconds, counts, queued = passes[rates.index(min(rates, key=lambda r: abs(r - median)))]
    print_table(
        f"enqueue: {args.targets:,} due targets, batch {args.batch_size}, "
        f"job size {settings.publisher_job_size}, {args.repeat} passes",
        [
            ("targets moved (median pass)", moved),
            ("jobs in the queue", queued),
            ("seconds", seconds),
            ("targets/s (median)", median),
            ("targets/s (every pass)", ", ".join(f"{r:,.0f}" for r in rates)),
            ("statuses", counts),
        ],
    )
    return {
        "targets": args.targets,
        "batch_size": args.batch_size,
        "job_size": settings.publisher_job_size,
        "moved": moved,
        "queued": queued,
        "seconds": seconds,
        "targets_per_s": median,
        "targets_per_s_every_pass": rates,
        "statuses": counts,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database() as database_url, RedisServer() as redis:
        return asyncio.run(_go(args, database_url, redis.url))
