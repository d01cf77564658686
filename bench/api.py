"""API throughput: POST /v1/posts and GET /v1/posts under wrk (64 connections) against
herald-api as its own process, beside the same routes on a bare FastAPI app (bench.bare_api,
no database) served the same way, as the framework's ceiling on this machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.publishing import start_profiler, summarize_profile
from bench.report import RESULTS, note, print_table
from bench.seed import db_sessions, seed_targets
from bench.servers import RedisServer, free_port, fresh_database, wait_http
from bench.services import bench_settings, service_env, spawn, spawn_module, stop
from bench.usage import cpu_between, cpu_seconds, tree_cpu_seconds

POST_LUA = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""
GET_LUA = """
wrk.headers["Authorization"] = "Bearer %s"
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
PROFILE = RESULTS / "api-post.pyspy.txt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per run")
    parser.add_argument("--workers", type=int, default=1, help="API processes (HERALD_API_WORKERS)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the API during the POST run; top frames in the JSON result",
    )


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if match is None:
        return float("nan")
    return float(match.group(1)) * UNITS[match.group(2)]


def wrk(url: str, script: str, args: argparse.Namespace) -> dict[str, Any]:
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("bench api needs wrk (Debian: apt-get install -y wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        out = subprocess.run(
            [binary, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
             "--latency", "-s", lua.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(lua.name)
    result: dict[str, Any] = {"raw": out}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["req_per_s"] = float(rate.group(1)) if rate else float("nan")
    for q in ("50", "90", "99"):
        found = re.search(rf"^\s+{q}%\s+(\S+)", out, re.MULTILINE)
        result[f"p{q}_ms"] = _ms(found.group(1)) if found else float("nan")
    total = re.search(r"(\d+) requests in", out)
    result["requests"] = int(total.group(1)) if total else 0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = errors.group(1) if errors else ""
    return result


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (uvicorn's workers), from /proc."""
    pids = [pid]
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        pids += [int(child) for child in children.read().split()]
    total = 0
    for one in pids:
        try:
            with open(f"/proc/{one}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # a child that just exited
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, within: float = 120.0) -> None:
    """Until the API's processes have finished starting: under a tenth of a core for 0.5 s."""
    deadline = time.monotonic() + within
    before = _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        after = _cpu_seconds(pid)
        if after - before < 0.05:
            return
        before = after
    raise RuntimeError(f"herald-api still busy starting after {within} s")


def _bodies(account_id: str) -> str:
    due = (datetime.now(UTC) + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"content": "bench post", "scheduled_at": due, "targets": [{"account_id": account_id}]}
    )


async def _seed(database_url: str, redis_url: str) -> tuple[str, str]:
    settings = bench_settings(database_url, redis_url)
    async with db_sessions(settings) as sessions:
        # One sandbox account and a post, so GET has something to list from the start.
        seeded = await seed_targets(
            sessions, settings, None, 1, [datetime.now(UTC) + timedelta(days=30)]
        )
        from sqlalchemy import select

        from herald_common.db.models import SocialAccount

        async with sessions() as session:
            account_id = await session.scalar(
                select(SocialAccount.id).where(SocialAccount.workspace_id == seeded.workspace_id)
            )
    return seeded.api_key, str(account_id)


def _measure(
    base: str,
    key: str,
    account_id: str,
    args: argparse.Namespace,
    server_pid: int,
    profile: bool = False,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    note(f"wrk POST {base}/v1/posts")
    profiler = (
        start_profiler(server_pid, args.duration, PROFILE, subprocesses=args.workers > 1)
        if profile
        else None
    )
    results["post"] = _with_cpu(
        server_pid, lambda: wrk(base + "/v1/posts", POST_LUA % (_bodies(account_id), key), args)
    )
    if profiler is not None:
        profiler.wait()
        results["post_profile"] = summarize_profile(args.duration, path=PROFILE)
    note(f"wrk GET {base}/v1/posts")
    results["get"] = _with_cpu(server_pid, lambda: wrk(base + "/v1/posts", GET_LUA % key, args))
    return results


def _with_cpu(server_pid: int, run_wrk: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """wrk's result plus the CPU the server (all its processes) and Postgres spent per
    request: steadier than requests per second on a shared two-core machine."""
    server_before, stack_before = tree_cpu_seconds(server_pid), cpu_seconds()
    result = run_wrk()
    server = tree_cpu_seconds(server_pid) - server_before
    stack = cpu_between(stack_before, cpu_seconds())
    requests = max(1, result["requests"])
    result["server_cpu_ms_per_request"] = 1000 * server / requests
    result["postgres_cpu_ms_per_request"] = 1000 * stack.get("postgres", 0.0) / requests
    result["machine_busy"] = stack["machine busy"] / stack["machine total"]
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database() as database_url, RedisServer() as redis:
        key, account_id = asyncio.run(_seed(database_url, redis.url))
        settings = bench_settings(database_url, redis.url)
        port = free_port()
        env = service_env(settings, HERALD_API_PORT=str(port), HERALD_API_WORKERS=str(args.workers))
        api = spawn("herald-api", env)
        base = f"http://127.0.0.1:{port}"
        try:
            # Every worker imports the app on its own; the first may answer long before the last.
            asyncio.run(wait_http(base + "/healthz", within=30.0 * args.workers))
            wait_until_idle(api.pid)
            herald = _measure(base, key, account_id, args, api.pid, args.profile)
        finally:
            stop([api])
    bare_port = free_port()
    bare = spawn_module(
        ["uvicorn", "bench.bare_api:app", "--host", "127.0.0.1", "--port", str(bare_port),
         "--no-access-log", "--log-level", "warning"]
    )  # fmt: skip
    bare_base = f"http://127.0.0.1:{bare_port}"
    try:
        asyncio.run(wait_http(bare_base + "/healthz"))
        baseline = _measure(bare_base, key, account_id, args, bare.pid)
    finally:
        stop([bare])
    rows: list[tuple[str, object]] = []
    for op in ("post", "get"):
        for name, res in (("herald-api", herald[op]), ("bare FastAPI", baseline[op])):
            rows.append((f"{op.upper()} {name} req/s", res["req_per_s"]))
            rows.append((f"{op.upper()} {name} p50/p99 ms", f"{res['p50_ms']} / {res['p99_ms']}"))
            rows.append((f"{op.upper()} {name} non-2xx", res["non_2xx"]))
            rows.append((f"{op.upper()} {name} CPU ms/request", res["server_cpu_ms_per_request"]))
        rows.append(
            (f"{op.upper()} Postgres CPU ms/request", herald[op]["postgres_cpu_ms_per_request"])
        )
        rows.append(
            (f"{op.upper()} herald / bare", herald[op]["req_per_s"] / baseline[op]["req_per_s"])
        )
    processes = "one uvicorn process" if args.workers == 1 else f"{args.workers} uvicorn workers"
    print_table(
        f"api: wrk -t{args.threads} -c{args.connections} -d{args.duration}s, herald-api on "
        f"{processes} (bare FastAPI on one)",
        rows,
    )
    return {
        "workers": args.workers,
        "connections": args.connections,
        "threads": args.threads,
        "duration_s": args.duration,
        "herald": herald,
        "bare": baseline,
        "post_req_per_s": herald["post"]["req_per_s"],
        "get_req_per_s": herald["get"]["req_per_s"],
        "post_over_bare": herald["post"]["req_per_s"] / baseline["post"]["req_per_s"],
        "get_over_bare": herald["get"]["req_per_s"] / baseline["get"]["req_per_s"],
    }
