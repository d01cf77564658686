"""The spike and steady benchmarks: Herald's scheduler and publisher as processes publishing to
the fake platform; lateness is measured where it matters, at the platform (arrival time minus
``scheduled_at``).

spike:  N targets over N/10 accounts all due at the same second; beside it the same posts sent
        by plain httpx / aiohttp loops at the publisher's concurrency, to the same fake.
steady: one post every ``interval`` seconds for ``duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from bench.plot import plot_publishing
from bench.report import RESULTS, lateness_summary, note, print_table, result_name
from bench.seed import TERMINAL, db_sessions, seed_targets, status_counts, utc_in
from bench.servers import (
    Arrival,
    RedisServer,
    arrivals,
    fake_platform,
    fresh_database,
    reset_arrivals,
)
from bench.services import bench_settings, service_env, spawn, stop
from bench.usage import cpu_between, cpu_seconds, memory_mib
from herald_common.http import create_http_client
from herald_common.settings import Settings


@dataclass
class HeraldRun:
    targets: int
    statuses: dict[str, int]
    lateness: list[float]  # seconds, first successful arrival of each target
    lateness_by_due: list[tuple[float, float]]  # (due - first due, lateness) per target
    since_due: list[float]  # every arrival, seconds since the first due time
    duplicates: int
    lost: int
    drain_s: float  # first due time -> last arrival
    publisher_rss_mib: float  # peak (VmHWM)
    scheduler_rss_mib: float
    timed_out: bool
    extra: dict[str, Any] = field(default_factory=dict)


async def run_herald(
    database_url: str,
    redis_url: str,
    base: str,
    due_times: Sequence[datetime],
    accounts: int,
    settle_s: float,
    env_extra: dict[str, str],
    publishers: int = 1,
    profile_s: float = 0.0,
) -> HeraldRun:
    settings = bench_settings(database_url, redis_url)
    env = service_env(
        settings,
        HERALD_PUBLISHER_PLATFORMS="mastodon",
        HERALD_MASTODON_API_BASE=base,
        **env_extra,
    )
    async with db_sessions(settings) as sessions:
        scheduler = spawn("herald-scheduler", env)
        fleet = [spawn("herald-publisher", env) for _ in range(publishers)]
        publisher = fleet[0]
        profiler: subprocess.Popen[bytes] | None = None
        try:
            started = time.monotonic()
            seeded = await seed_targets(sessions, settings, base, accounts, due_times)
            note(f"seeded {len(due_times):,} targets in {time.monotonic() - started:.1f} s")
            first_due = min(due_times)
            deadline = max(due_times).timestamp() + settle_s
            timed_out = True
            counts: dict[str, int] = {}
            await asyncio.sleep(max(0.0, first_due.timestamp() - time.time()))
            cpu_at_due = cpu_seconds()
            if profile_s:
                profiler = start_profiler(publisher.pid, profile_s)
            while time.time() < deadline:
                await asyncio.sleep(0.5)
                counts = await status_counts(sessions, seeded.workspace_id)
                if sum(v for k, v in counts.items() if k in TERMINAL) == len(due_times):
                    timed_out = False
                    break
                if any(p.poll() is not None for p in [*fleet, scheduler]):
                    raise RuntimeError("a Herald service died during the benchmark")
            cpu = cpu_between(cpu_at_due, cpu_seconds())
            publisher_mem = memory_mib(publisher.pid)
            scheduler_mem = memory_mib(scheduler.pid)
        finally:
            if profiler is not None:
                profiler.wait()
            stop([*fleet, scheduler])
    got = await arrivals(base)
    ok: Counter[str] = Counter(a.key for a in got if a.status == 200)
    first: dict[str, float] = {}
    for a in got:
        if a.status == 200 and a.key not in first:
            first[a.key] = a.at
    lateness, by_due, lost = [], [], 0
    for target_id, due in seeded.due.items():
        at = first.get(f"herald-{target_id}")
        if at is None:
            lost += 1
        else:
            lateness.append(at - due.timestamp())
            by_due.append(((due - first_due).total_seconds(), at - due.timestamp()))
    last = max((a.at for a in got), default=first_due.timestamp())
    return HeraldRun(
        targets=len(due_times),
        statuses=counts,
        lateness=lateness,
        lateness_by_due=by_due,
        since_due=[a.at - first_due.timestamp() for a in got],
        duplicates=sum(c - 1 for c in ok.values() if c > 1),
        lost=lost,
        drain_s=last - first_due.timestamp(),
        publisher_rss_mib=publisher_mem.get("VmHWM", float("nan")),
        scheduler_rss_mib=scheduler_mem.get("VmHWM", float("nan")),
        timed_out=timed_out,
        extra={
            "non_200_arrivals": sum(1 for a in got if a.status != 200),
            "publishers": publishers,
            # From the due time until every target was terminal (polled every 0.5 s).
            "cpu_seconds": cpu,
            **({"profile": summarize_profile(profile_s)} if profile_s else {}),
        },
    )


# --- Profile -------------------------------------------------------------------------------

PROFILE = RESULTS / "spike-publisher.pyspy.txt"
PROFILE_RATE = 100


def start_profiler(
    pid: int, seconds: float, path: Path = PROFILE, *, subprocesses: bool = False
) -> subprocess.Popen[bytes] | None:
    """py-spy (a dev dependency) on process ``pid`` (and its children, with ``subprocesses``)
    for ``seconds``, raw stacks to ``path``."""
    binary = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(binary):
        note("py-spy not installed; no profile")
        return None
    RESULTS.mkdir(exist_ok=True)
    return subprocess.Popen(
        [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(PROFILE_RATE),
         "-f", "raw", "-o", str(path), "--nonblocking",
         *(["--subprocesses"] if subprocesses else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def summarize_profile(seconds: float, top: int = 25, path: Path = PROFILE) -> dict[str, Any]:
    """Busy fraction of the profiled thread and the frames it spent most time in."""
    if not path.exists():
        return {}
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples += int(count)
        leaf[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    return {
        "seconds": seconds,
        "busy_fraction": samples / (seconds * PROFILE_RATE),
        "top_inclusive": [[f, n / samples] for f, n in inclusive.most_common(top)],
        "top_self": [[f, n / samples] for f, n in leaf.most_common(top)],
    }


# --- Plain loops ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoopRun:
    name: str
    seconds: float
    rate: float
    errors: int
    since_start: list[float]


async def _loop(
    name: str,
    send: Callable[[int], Awaitable[int]],
    n: int,
    concurrency: int,
    base: str,
) -> LoopRun:
    """Send posts 0..n-1 with ``concurrency`` in flight, the way a worker pool would."""
    await reset_arrivals(base)
    errors = 0
    next_index = 0

    async def worker() -> None:
        nonlocal errors, next_index
        while next_index < n:
            i = next_index
            next_index += 1
            if await send(i) != 200:
                errors += 1

    started = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.time() - started
    got: list[Arrival] = await arrivals(base)
    return LoopRun(name, seconds, n / seconds, errors, [a.at - started for a in got])


def _request(i: int, accounts: int) -> tuple[dict[str, str], dict[str, str]]:
    headers = {
        "Authorization": f"Bearer bench-token-{i % accounts}",
        "Idempotency-Key": f"loop-{i}",
    }
    return headers, {"status": f"bench post {i}", "visibility": "public"}


async def plain_loops(base: str, n: int, accounts: int, concurrency: int) -> list[LoopRun]:
    url = base + "/api/v1/statuses"
    runs = []
    limits = httpx.Limits(max_connections=concurrency)
    for name, transport in (
        ("httpx loop", None),
        ("httpx+aiohttp transport loop", AiohttpTransport()),
    ):
        async with httpx.AsyncClient(transport=transport, limits=limits, timeout=60) as client:

            async def send_httpx(i: int, client: httpx.AsyncClient = client) -> int:
                headers, body = _request(i, accounts)
                return (await client.post(url, json=body, headers=headers)).status_code

            runs.append(await _loop(name, send_httpx, n, concurrency, base))
    # What Herald's adapters call: herald_common.http's client, with its short lane.
    settings = Settings(environment="test", http_max_connections=concurrency)
    async with create_http_client(settings) as herald_client:

        async def send_herald(i: int) -> int:
            headers, body = _request(i, accounts)
            return (await herald_client.post(url, json=body, headers=headers)).status_code

        runs.append(await _loop("Herald HTTP client loop", send_herald, n, concurrency, base))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send_aiohttp(i: int) -> int:
            headers, body = _request(i, accounts)
            async with session.post(url, json=body, headers=headers) as response:
                await response.read()
                return response.status

        runs.append(await _loop("aiohttp loop", send_aiohttp, n, concurrency, base))
    return runs


# --- The benchmarks -------------------------------------------------------------------------


def _herald_rows(run: HeraldRun, unit: str) -> list[tuple[str, object]]:
    scale = 1000.0 if unit == "ms" else 1.0
    s = lateness_summary(run.lateness)
    return [
        ("targets", run.targets),
        ("published (Herald)", run.statuses.get("published", 0)),
        ("other statuses", {k: v for k, v in run.statuses.items() if k != "published"} or "-"),
        (f"lateness p50 ({unit})", s["p50_s"] * scale),
        (f"lateness p95 ({unit})", s["p95_s"] * scale),
        (f"lateness p99 ({unit})", s["p99_s"] * scale),
        (f"lateness max ({unit})", s["max_s"] * scale),
        ("drain time (s)", run.drain_s),
        ("503s from the fake", run.extra.get("non_200_arrivals", 0)),
        ("duplicates", run.duplicates),
        ("lost", run.lost),
        ("publisher peak RSS (MiB)", run.publisher_rss_mib),
        ("scheduler peak RSS (MiB)", run.scheduler_rss_mib),
        ("timed out", run.timed_out),
        *_cpu_rows(run),
    ]


def _cpu_rows(run: HeraldRun) -> list[tuple[str, object]]:
    """Where the cores went from the due time until all were done, per target."""
    cpu: dict[str, float] = run.extra.get("cpu_seconds", {})
    total = cpu.get("machine total", 0.0)
    if not total:
        return []
    rows: list[tuple[str, object]] = [
        ("machine busy (%)", 100 * cpu["machine busy"] / total),
    ]
    parts = sorted((k for k in cpu if not k.startswith("machine")), key=lambda k: -cpu[k])
    rows += [(f"CPU ms per target: {k}", 1000 * cpu[k] / run.targets) for k in parts]
    return rows


def _herald_json(run: HeraldRun) -> dict[str, Any]:
    return {
        "targets": run.targets,
        "statuses": run.statuses,
        **{f"lateness_{k}": v for k, v in lateness_summary(run.lateness).items()},
        "drain_s": run.drain_s,
        "duplicates": run.duplicates,
        "lost": run.lost,
        "publisher_peak_rss_mib": run.publisher_rss_mib,
        "scheduler_peak_rss_mib": run.scheduler_rss_mib,
        "timed_out": run.timed_out,
        **run.extra,
    }


def spike(args: argparse.Namespace) -> dict[str, Any]:
    n: int = args.targets
    accounts: int = args.accounts or max(1, n // 10)
    # Requests Herald may have in flight: jobs x targets per job, at most the HTTP pool, per
    # publisher.
    pool = Settings(environment="test").http_max_connections
    concurrency: int = min(args.max_jobs * args.job_size, pool) * args.publishers

    async def go(database_url: str, redis_url: str, base: str) -> dict[str, Any]:
        due = utc_in(args.lead)
        note(f"spike: {n:,} targets over {accounts:,} accounts, all due at {due:%H:%M:%S}")
        run = await run_herald(
            database_url, redis_url, base, [due] * n, accounts, args.timeout,
            {
                "HERALD_PUBLISHER_MAX_JOBS": str(args.max_jobs),
                "HERALD_PUBLISHER_JOB_SIZE": str(args.job_size),
            },
            publishers=args.publishers, profile_s=args.profile,
        )  # fmt: skip
        loops = []
        if not args.no_loops:
            note("spike: plain loops")
            loops = await plain_loops(base, n, accounts, concurrency)
        herald_rate = n / run.drain_s if run.drain_s > 0 else 0.0
        best = max(loops, key=lambda r: r.rate, default=None)
        rows = _herald_rows(run, "s")
        rows += [("Herald throughput (posts/s)", herald_rate)]
        rows += [(f"{r.name} (posts/s)", r.rate) for r in loops]
        if best is not None:
            rows += [(f"Herald / {best.name}", herald_rate / best.rate)]
        print_table(
            f"spike: {n:,} targets / {accounts:,} accounts, fake latency {args.latency_ms} ms",
            rows,
        )
        png = plot_publishing(
            RESULTS / f"{result_name('spike', args)}.png",
            f"spike: {n:,} posts over {accounts:,} accounts due at the same second "
            f"(fake platform latency {args.latency_ms:g} ms)",
            run.lateness,
            {"Herald (since due)": run.since_due, **{r.name: r.since_start for r in loops}},
            bin_s=0.25,
        )
        return {
            **_herald_json(run),
            "accounts": accounts,
            "latency_ms": args.latency_ms,
            "fail_rate": args.fail_rate,
            "concurrency": concurrency,
            "herald_posts_per_s": herald_rate,
            "loops": {
                r.name: {"posts_per_s": r.rate, "seconds": r.seconds, "errors": r.errors}
                for r in loops
            },
            "herald_over_fastest_loop": None if best is None else herald_rate / best.rate,
            "fastest_loop": None if best is None else best.name,
            "plot": str(png),
            "lateness": run.lateness,
        }

    return _with_stack(args.latency_ms, go, args.fail_rate)


def steady(args: argparse.Namespace) -> dict[str, Any]:
    n = max(1, int(args.duration / args.interval))
    accounts: int = args.accounts

    async def go(database_url: str, redis_url: str, base: str) -> dict[str, Any]:
        start = utc_in(args.lead)
        due = [start + timedelta(seconds=i * args.interval) for i in range(n)]
        note(f"steady: {n:,} posts, one every {args.interval * 1000:g} ms from {start:%H:%M:%S}")
        env = {}
        if args.poll_delay is not None:
            env["HERALD_PUBLISHER_POLL_DELAY_SECONDS"] = str(args.poll_delay)
        run = await run_herald(database_url, redis_url, base, due, accounts, args.timeout, env)
        faults = f", {args.fail_rate:.0%} answered 503" if args.fail_rate else ""
        print_table(
            f"steady: one post every {args.interval * 1000:g} ms for {args.duration:g} s "
            f"over {accounts} accounts, fake latency {args.latency_ms} ms{faults}",
            _herald_rows(run, "ms"),
        )
        png = plot_publishing(
            RESULTS / f"{result_name('steady', args)}.png",
            f"steady: one post every {args.interval * 1000:g} ms for {args.duration:g} s "
            f"(fake platform latency {args.latency_ms:g} ms{faults})",
            run.lateness,
            {"Herald (since first due)": run.since_due},
            bin_s=1.0,
            lateness_unit="ms",
            lateness_over_time=run.lateness_by_due,
        )
        return {
            **_herald_json(run),
            "interval_s": args.interval,
            "poll_delay_s": args.poll_delay,
            "duration_s": args.duration,
            "accounts": accounts,
            "latency_ms": args.latency_ms,
            "fail_rate": args.fail_rate,
            "retry_delays_s": _retry_delays(),
            "plot": str(png),
            "lateness": run.lateness,
        }

    return _with_stack(args.latency_ms, go, args.fail_rate)


def _retry_delays() -> str:
    """The retry schedule the services ran with (HERALD_PUBLISHER_RETRY_DELAYS_SECONDS in the
    bench's environment, else Settings' default), for the record of a run with faults."""
    return os.environ.get("HERALD_PUBLISHER_RETRY_DELAYS_SECONDS") or ",".join(
        f"{d:g}" for d in Settings(environment="test").publisher_retry_delays_seconds
    )


def _with_stack(
    latency_ms: float,
    go: Callable[[str, str, str], Coroutine[Any, Any, dict[str, Any]]],
    fail_rate: float = 0.0,
) -> dict[str, Any]:
    with (
        fresh_database() as database_url,
        RedisServer() as redis,
        fake_platform(latency_ms, fail_rate) as base,
    ):
        return asyncio.run(go(database_url, redis.url, base))


def add_arguments(
    spike_parser: argparse.ArgumentParser, steady_parser: argparse.ArgumentParser
) -> None:
    spike_parser.add_argument("--targets", type=int, default=10_000)
    spike_parser.add_argument("--accounts", type=int, default=0, help="default: targets / 10")
    spike_parser.add_argument("--lead", type=float, default=15.0, help="seconds until due")
    spike_parser.add_argument("--timeout", type=float, default=300.0, help="after due")
    spike_parser.add_argument("--latency-ms", type=float, default=20.0)
    spike_parser.add_argument("--publishers", type=int, default=1, help="publisher processes")
    defaults = Settings(environment="test")  # production's, unless a flag says otherwise
    spike_parser.add_argument(
        "--max-jobs", type=int, default=defaults.publisher_max_jobs, help="per publisher"
    )
    spike_parser.add_argument(
        "--job-size", type=int, default=defaults.publisher_job_size, help="targets per job"
    )
    spike_parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds")
    spike_parser.add_argument(
        "--no-loops", action="store_true", help="Herald alone, no plain loops (quick A/B runs)"
    )
    steady_parser.add_argument("--duration", type=float, default=120.0)
    steady_parser.add_argument("--interval", type=float, default=0.1)
    steady_parser.add_argument("--accounts", type=int, default=100)
    steady_parser.add_argument("--lead", type=float, default=10.0)
    steady_parser.add_argument("--timeout", type=float, default=60.0, help="after last due")
    steady_parser.add_argument("--latency-ms", type=float, default=20.0)
    steady_parser.add_argument(
        "--poll-delay", type=float, default=None, help="HERALD_PUBLISHER_POLL_DELAY_SECONDS"
    )
    for parser in (spike_parser, steady_parser):
        parser.add_argument(
            "--fail-rate",
            type=float,
            default=0.0,
            help="fraction of requests the fake answers 503 (results kept apart: _5pct_5xx)",
        )
