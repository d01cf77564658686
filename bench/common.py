"""What every benchmark needs: a real stack of its own.

Postgres comes from ``herald_dev.stack.open_stack`` (``HERALD_DATABASE_URL`` when set, else the
embedded server under ``.herald/``); each run gets a fresh database built by the migrations
and dropped afterwards. Redis is a private server on a free port. Herald's services run as
their own OS processes, started through their console scripts as production does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, insert, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from herald_common.crypto import TokenCipher
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.db.migrate import upgrade
from herald_common.db.models import Post, PostTarget, SocialAccount
from herald_common.db.repositories.workspaces import add_api_key, create_workspace
from herald_common.ids import new_id
from herald_common.settings import Settings
from herald_dev.embedded_redis import server_binary
from herald_dev.stack import open_stack

# Benchmarks run the services in the test environment, which refuses the published
# development keys as production does: each run makes its own, inherited by every service.
os.environ.setdefault("HERALD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("HERALD_JWT_SIGNING_KEY", secrets.token_urlsafe(48))

RESULTS = Path(__file__).parent / "results"
TERMINAL = ("published", "failed", "unknown", "cancelled")
MACHINE = f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"  # noqa: E501


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def note(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Postgres -------------------------------------------------------------------------------


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database, migrated to head, on the dev stack's Postgres; dropped afterwards."""
    with open_stack("herald_bench") as stack:
        server = make_url(stack.database_url)
        admin = server.set(database="postgres").render_as_string(False)
        name = f"herald_bench_{os.getpid()}"
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(False)
        try:
            upgrade(url)
            yield url
        finally:
            asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- Redis ----------------------------------------------------------------------------------


class RedisServer:
    """A private Redis on a free port, no persistence (as tests/chaos/harness.py)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="herald-bench-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        binary = shutil.which("redis-server") or str(server_binary())
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        asyncio.run(self._wait_ready())
        return self

    async def _wait_ready(self) -> None:
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except (OSError, RedisConnectionError):
                    await asyncio.sleep(0.05)
            raise RuntimeError("bench Redis did not start")
        finally:
            await client.aclose()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


# --- Processes ------------------------------------------------------------------------------


def bench_settings(database_url: str, redis_url: str, **update: Any) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        log_level="WARNING",
        **update,
    )


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Production defaults except where a benchmark says otherwise: logging too (JSON at
    production's default level), since a log line per post is part of what a post costs."""
    return {
        **os.environ,
        "HERALD_ENVIRONMENT": "test",
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_REDIS_URL": settings.redis_url,
        "HERALD_LOG_LEVEL": Settings.model_fields["log_level"].default,
        "HERALD_LOG_FORMAT": "json",
        "HERALD_METRICS_PORT": "0",
        **extra,
    }


LOGS = RESULTS / "logs"


def spawn(entry_point: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A service by its console script, as production starts it; what it logs is appended to
    bench/results/logs/<service>.log (a file, as a container runtime collects it)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    script = os.path.join(os.path.dirname(sys.executable), entry_point)
    with open(LOGS / f"{entry_point}.log", "ab") as log:
        return subprocess.Popen([script], env=env, stdout=log, stderr=subprocess.STDOUT)


def spawn_module(args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], env=env)


def stop(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a live process, from /proc, in MiB."""
    values: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _component(pid: int) -> str | None:
    """Which part of the stack a process is, by its command line; None for the rest."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    for needle, name in (
        ("herald-publisher", "publisher"),
        ("herald-scheduler", "scheduler"),
        ("herald-api", "api"),
        ("bench.fake_platform", "fake platform"),
        ("redis-server", "redis"),
        ("postgres", "postgres"),
        ("-m bench", "bench driver"),
    ):
        if needle in cmdline:
            return name
    return None


def _processes() -> Iterator[tuple[int, int, float]]:
    """Every live process as (pid, parent pid, CPU seconds used so far, user + system)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command come fields 3 onwards of stat(5): ppid is 4, utime 14, stime 15.
        yield int(pid), int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) used so far by each part of the stack, summed over its
    processes, plus ``machine busy`` and ``machine total`` (all cores) from /proc/stat.
    Two snapshots subtracted say where the cores went between them."""
    used: dict[str, float] = {}
    for pid, _, seconds in _processes():
        name = _component(pid)
        if name is not None:
            used[name] = used.get(name, 0.0) + seconds
    with open("/proc/stat") as stat:
        cpu = [int(v) for v in stat.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    used["machine busy"] = (sum(cpu) - idle) / CLOCK_TICKS
    used["machine total"] = sum(cpu) / CLOCK_TICKS
    return used


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by process ``root`` and its live descendants
    (uvicorn's worker processes, say, whose command lines do not name the service)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for pid, parent, seconds in _processes():
        parents[pid] = parent
        used[pid] = seconds

    def in_tree(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    return sum(seconds for pid, seconds in used.items() if in_tree(pid))


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part used between two ``cpu_seconds()`` snapshots."""
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


async def wait_http(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer within {within} s") from None
                await asyncio.sleep(0.05)


# --- Fake platform --------------------------------------------------------------------------


@contextmanager
def fake_platform(latency_ms: float) -> Iterator[str]:
    """bench.fake_platform in its own process; yields its base URL."""
    port = free_port()
    process = spawn_module(
        ["bench.fake_platform", "--port", str(port), "--latency-ms", str(latency_ms)]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_http(base + "/_bench/arrivals"))
        yield base
    finally:
        stop([process])


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # Unix time the request reached the fake
    key: str  # Idempotency-Key header
    status: int


async def arrivals(base: str) -> list[Arrival]:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(base + "/_bench/arrivals")
        response.raise_for_status()
        return [Arrival(at, key, status) for at, key, status in response.json()]


async def reset_arrivals(base: str) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        (await client.post(base + "/_bench/reset")).raise_for_status()


# --- Data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seeded:
    workspace_id: uuid.UUID
    api_key: str
    due: dict[uuid.UUID, datetime]  # target id -> scheduled_at


@asynccontextmanager
async def db_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def seed_workspace(sessions: async_sessionmaker[AsyncSession]) -> tuple[uuid.UUID, str]:
    async with sessions.begin() as session:
        workspace = await create_workspace(session, "bench")
        key = await add_api_key(session, workspace.id, "bench key")
        return workspace.id, key.key


async def seed_targets(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    platform_base: str | None,
    accounts: int,
    due_times: Sequence[datetime],
    chunk: int = 5000,
) -> Seeded:
    """One workspace, ``accounts`` Mastodon accounts (or sandbox ones when ``platform_base``
    is None) pointing at the fake, and one post with one pending target per due time, spread
    round-robin over the accounts. Bulk inserts: 10,000 targets take about a second."""
    workspace_id, api_key = await seed_workspace(sessions)
    cipher = TokenCipher.from_settings(settings)
    rows: list[dict[str, Any]] = []
    for i in range(accounts):
        if platform_base is None:
            rows.append(
                {"id": new_id(), "workspace_id": workspace_id, "platform": "sandbox",
                 "external_id": f"bench-{i}", "handle": f"bench-{i}"}
            )  # fmt: skip
        else:
            rows.append(
                {"id": new_id(), "workspace_id": workspace_id, "platform": "mastodon",
                 "external_id": str(i), "handle": f"user{i}@bench.test",
                 "instance_url": platform_base,
                 "access_token_enc": cipher.encrypt(f"bench-token-{i}")}
            )  # fmt: skip
    async with sessions.begin() as session:
        await session.execute(insert(SocialAccount), rows)
    due: dict[uuid.UUID, datetime] = {}
    for start in range(0, len(due_times), chunk):
        posts, targets = [], []
        for i in range(start, min(start + chunk, len(due_times))):
            account = rows[i % accounts]
            post_id, target_id = new_id(), new_id()
            posts.append(
                {"id": post_id, "workspace_id": workspace_id, "content": f"bench post {i}",
                 "scheduled_at": due_times[i], "status": "scheduled"}
            )  # fmt: skip
            targets.append(
                {"id": target_id, "workspace_id": workspace_id, "post_id": post_id,
                 "account_id": account["id"], "platform": account["platform"],
                 "scheduled_at": due_times[i], "status": "pending"}
            )  # fmt: skip
            due[target_id] = due_times[i]
        async with sessions.begin() as session:
            await session.execute(insert(Post), posts)
            await session.execute(insert(PostTarget), targets)
    return Seeded(workspace_id, api_key, due)


async def status_counts(
    sessions: async_sessionmaker[AsyncSession], workspace_id: uuid.UUID
) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(PostTarget.status, func.count())
            .where(PostTarget.workspace_id == workspace_id)
            .group_by(PostTarget.status)
        )
        return {str(status): int(count) for status, count in rows.all()}


def utc_in(seconds: float) -> datetime:
    """A whole second at least ``seconds`` from now."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


# --- Numbers --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def lateness_summary(lateness: Sequence[float]) -> dict[str, float]:
    return {
        "p50_s": percentile(lateness, 50),
        "p95_s": percentile(lateness, 95),
        "p99_s": percentile(lateness, 99),
        "max_s": max(lateness) if lateness else math.nan,
        "min_s": min(lateness) if lateness else math.nan,
    }


def print_table(title: str, rows: Sequence[tuple[str, object]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print("-" * len(title))
    for name, value in rows:
        if isinstance(value, float):
            shown = f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = str(value)
        print(f"{name:>{width}}  {shown}")
    sys.stdout.flush()


# The suffix of quick A/B runs (spike --no-loops): results of their own, never in summary.json.
HERALD_ONLY = "_herald_only"


def result_name(name: str, args: argparse.Namespace) -> str:
    """Runs with several processes keep results (and pictures) of their own
    (``spike_2_publishers``, ``api_2_workers``) beside the one-process ones, and so do
    spikes without the plain loops (``spike_herald_only``)."""
    if getattr(args, "no_loops", False):
        name += HERALD_ONLY
    for option in ("publishers", "workers"):
        count = getattr(args, option, 1)
        if count != 1:
            return f"{name}_{count}_{option}"
    return name


def write_result(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>.json (ignored by git) and, except for A/B runs, the benchmark's
    entry in summary.json."""
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": name,
        "machine": MACHINE,
        "load_average_at_end": os.getloadavg(),
        "at": datetime.now(UTC).isoformat(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if HERALD_ONLY in name:
        return path  # a quick A/B run (spike --no-loops), not a number for the README
    summary_path = RESULTS / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
    summary[name] = {k: v for k, v in result.items() if not isinstance(v, list)}
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return path
