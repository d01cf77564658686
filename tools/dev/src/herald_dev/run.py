"""``herald-dev run``: servers up, migrate, seed the dev workspace, run the four services."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from herald_common.probe_server import DEFAULT_PORTS
from herald_dev.datadir import data_dir
from herald_dev.ports import port_is_free
from herald_dev.scripts import script
from herald_dev.stack import DEV_DATABASE, open_stack
from herald_dev.supervisor import GRACE_SECONDS, Supervisor

SERVICES = ("api", "scheduler", "publisher", "analytics", "ai-worker")
DEV_KEY_PREFIX = "hk_dev_"
READY_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.25
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = "8000"
DEFAULT_METRICS_HOST = "127.0.0.1"
# The services that serve /healthz, /readyz and /metrics on a port of their own (the API
# serves them on its port), and the port each prefers: its own default.
PROBE_PORTS = {
    name: DEFAULT_PORTS[name] for name in ("scheduler", "publisher", "analytics", "ai-worker")
}


class RunError(Exception):
    pass


def run() -> int:
    with open_stack(DEV_DATABASE) as stack:
        env = {**os.environ, **stack.env(), "PYTHONUNBUFFERED": "1"}
        env.setdefault("HERALD_ENVIRONMENT", "dev")
        host = env.setdefault("HERALD_API_HOST", DEFAULT_API_HOST)
        port = env.setdefault("HERALD_API_PORT", DEFAULT_API_PORT)
        if not port_is_free(int(port), host):
            raise RunError(f"{host}:{port} is already in use: stop that or set HERALD_API_PORT")
        _step("migrating the database", [script("herald-migrate")], env)
        api_key = dev_api_key(data_dir())
        password = dev_demo_password(data_dir())
        seeded = _seed(api_key, password, env)
        api_url = f"http://{_reachable(host)}:{port}"
        metrics_host = env.get("HERALD_METRICS_HOST", DEFAULT_METRICS_HOST)
        # asyncio resets SIGTERM to the default action when its loop closes; restore ours so a
        # SIGTERM while the servers stop still unwinds cleanly.
        on_sigterm = signal.getsignal(signal.SIGTERM)
        try:
            with probe_sockets(metrics_host) as probes:
                ports = {name: sock.getsockname()[1] for name, sock in probes.items()}
                banner = _banner(api_url, api_key, seeded, password, metrics_host, ports)
                return asyncio.run(_supervise(env, api_url, banner, probes))
        finally:
            signal.signal(signal.SIGTERM, on_sigterm)


@contextmanager
def probe_sockets(host: str) -> Iterator[dict[str, socket.socket]]:
    """A listening socket for each service's probes: on its usual port when that is free,
    else on any free one. Held here for the whole run and handed to every start of the
    service (HERALD_METRICS_FD), so the ports printed are the ports served, across restarts,
    whatever else starts on the machine meanwhile."""
    with ExitStack() as held:
        sockets = {}
        for name, port in PROBE_PORTS.items():
            try:
                sock = socket.create_server((host, port))
            except OSError:  # taken: any free port will do, and is printed
                sock = socket.create_server((host, 0))
            sockets[name] = held.enter_context(sock)
        yield sockets


def dev_api_key(directory: Path) -> str:
    """The dev workspace's API key, made once and kept in ``dev.json`` so it survives restarts."""
    path = directory / "dev.json"
    if path.exists():
        key = json.loads(path.read_text()).get("api_key")
        if isinstance(key, str) and key:
            return key
    key = DEV_KEY_PREFIX + secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(json.dumps({"api_key": key}, indent=2) + "\n")
    return key


def dev_demo_password(directory: Path) -> str:
    """The demo user's password, made once and kept in ``dev.json`` beside the API key."""
    path = directory / "dev.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    password = saved.get("demo_password")
    if isinstance(password, str) and password:
        return password
    password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(json.dumps({**saved, "demo_password": password}, indent=2) + "\n")
    return password


def _seed(api_key: str, password: str, env: dict[str, str]) -> dict[str, str]:
    """The seeded ids: ``workspace_id``, ``account_id`` and the demo user's ``email``."""
    output = _step(
        "seeding the dev workspace",
        [script("herald-seed-dev"), "--api-key", api_key, "--password", password],
        env,
    )
    for line in reversed(output.splitlines()):
        try:
            seeded = json.loads(line)
        except ValueError:
            continue
        if isinstance(seeded, dict) and "account_id" in seeded:
            return {str(k): str(v) for k, v in seeded.items()}
    raise RunError(f"herald-seed-dev printed no account id:\n{output}")


def _step(what: str, argv: list[str], env: dict[str, str]) -> str:
    _note(what)
    result = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise RunError(f"{what} failed: `{' '.join(argv)}` exited with {result.returncode}")
    return result.stdout


async def _supervise(
    env: dict[str, str], api_url: str, banner: str, probes: dict[str, socket.socket]
) -> int:
    loop = asyncio.get_running_loop()
    supervisor = Supervisor(env, name_width=max(map(len, SERVICES)))
    stop_requested = asyncio.Event()

    def on_signal() -> None:
        if stop_requested.is_set():  # a second Ctrl-C: do not wait out the grace period
            supervisor.kill_all()
        stop_requested.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        for name in SERVICES:
            probe = probes.get(name)
            await supervisor.start(
                name,
                [script(f"herald-{name}")],
                env={} if probe is None else {"HERALD_METRICS_FD": str(probe.fileno())},
                pass_fds=() if probe is None else (probe.fileno(),),
            )
        return await _watch(supervisor, stop_requested, api_url, banner)
    finally:
        _note("stopping the services")
        killed = await supervisor.stop_all()
        if killed:
            _note(f"killed after {GRACE_SECONDS:.0f}s without exiting on SIGTERM: {killed}")


async def _watch(
    supervisor: Supervisor, stop_requested: asyncio.Event, api_url: str, banner: str
) -> int:
    """0 when stopped on request; 1 when a service keeps dying or the API never becomes ready.
    A service that dies once is the supervisor's to restart."""
    stopping: asyncio.Future[Any] = asyncio.create_task(stop_requested.wait())
    gave_up: asyncio.Future[Any] = supervisor.gave_up()
    ready = asyncio.create_task(_wait_ready(api_url))
    try:
        await asyncio.wait({stopping, gave_up, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and not (stopping.done() or gave_up.done()):
            if not ready.result():
                _note(f"the API at {api_url} was not ready within {READY_TIMEOUT_SECONDS:.0f}s")
                return 1
            print(banner, flush=True)
            await asyncio.wait({stopping, gave_up}, return_when=asyncio.FIRST_COMPLETED)
        return 1 if gave_up.done() and not stopping.done() else 0
    finally:
        for task in (stopping, gave_up, ready):
            task.cancel()


async def _wait_ready(api_url: str) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    # trust_env=False: a developer's HTTP(S)_PROXY must not capture requests to localhost.
    async with httpx.AsyncClient(timeout=READY_POLL_SECONDS * 8, trust_env=False) as client:
        while loop.time() < deadline:
            try:
                if (await client.get(f"{api_url}/readyz")).status_code == httpx.codes.OK:
                    return True
            except httpx.HTTPError:
                pass  # not listening yet
            await asyncio.sleep(READY_POLL_SECONDS)
    return False


def _banner(
    api_url: str,
    api_key: str,
    seeded: dict[str, str],
    password: str,
    metrics_host: str,
    probe_ports: dict[str, int],
) -> str:
    probes = "  ".join(
        f"{name} http://{_reachable(metrics_host)}:{port}" for name, port in probe_ports.items()
    )
    return "\n".join(
        [
            "",
            "Herald is running (Ctrl-C stops everything; a service that dies is restarted).",
            f"  API              {api_url}",
            f"  Docs             {api_url}/docs",
            f"  Probes, metrics  {probes}  (/healthz /readyz /metrics)",
            f"  Workspace        {seeded['workspace_id']}",
            f"  Demo user        {seeded['email']}  password: {password}",
            f"  API key          {api_key}",
            f"  Sandbox account  {seeded['account_id']}",
            f'  Try              curl -H "Authorization: Bearer {api_key}" {api_url}/v1/accounts',
            "",
        ]
    )


def _reachable(host: str) -> str:
    """The address to print and poll for a bind address (0.0.0.0 is not one to connect to)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _note(message: str) -> None:
    print(f"herald-dev: {message}", file=sys.stderr, flush=True)
