"""The small HTTP server the scheduler, publisher and analytics serve beside their work:
``/healthz`` (alive: restart me if not), ``/readyz`` (doing its work) and ``/metrics``.

A service describes its checks as :class:`Probes`; each check returns ``None`` when fine or a
short reason. Both health endpoints answer ``{"status": "ok"|"unavailable", "checks": {...}}``,
the same shape as the API's, with 200 or 503.

The port comes from ``HERALD_METRICS_PORT`` (else the service's default). In dev, a port
already in use is swapped for any free one, which the log line names: a second copy of a
service on a developer's machine must not lose its probes for it. Anywhere else it is a start-up
error: a pod whose probes cannot be served would be restarted for a reason nobody can see.
A supervisor can instead hand the service a listening socket (``HERALD_METRICS_FD``), as
``make run`` does, so the ports it prints are the ones served, whoever starts meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from herald_common.logging import get_logger
from herald_common.metrics import LOOP_LAST_SUCCESS
from herald_common.settings import Settings

log = get_logger(__name__)

Check = Callable[[], Awaitable[str | None]]
# Each check gets this long; a dependency that hangs is a failed check, not a hung probe.
CHECK_TIMEOUT_SECONDS = 2.0
DEFAULT_PORTS = {"scheduler": 9101, "publisher": 9102, "analytics": 9103, "ai-worker": 9104}


@dataclass(frozen=True, slots=True)
class Probes:
    live: Mapping[str, Check]
    ready: Mapping[str, Check]
    # Refreshes gauges that are read from elsewhere (queue depth) just before a scrape.
    before_scrape: Callable[[], Awaitable[None]] | None = None


@dataclass(slots=True)
class LoopHealth:
    """When a service's main loop last finished a turn, and last finished one successfully.

    Liveness asks whether the loop still turns (a pass that fails because Postgres is down
    still turns, and a restart would not help); readiness asks whether it does its work.
    """

    name: str
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    last_finished: float | None = field(init=False, default=None)
    last_succeeded: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def record(self, ok: bool) -> None:
        self.last_finished = self.clock()
        if ok:
            self.last_succeeded = self.last_finished
            LOOP_LAST_SUCCESS.labels(loop=self.name).set(time.time())

    def stalled(self, stall_seconds: float) -> str | None:
        # Until the first turn the start counts, so a slow first pass is not a stall yet.
        last = self.started if self.last_finished is None else self.last_finished
        since = self.clock() - last
        if since > stall_seconds:
            return f"no {self.name} finished for {since:.0f} s"
        return None

    def failing(self, stall_seconds: float) -> str | None:
        if self.last_succeeded is None:
            return f"no {self.name} has succeeded yet"
        since = self.clock() - self.last_succeeded
        if since > stall_seconds:
            return f"no {self.name} succeeded for {since:.0f} s"
        return None

    def checks(self, stall_seconds: float) -> tuple[Check, Check]:
        """The (liveness, readiness) checks for this loop."""

        async def live() -> str | None:
            return self.stalled(stall_seconds)

        async def ready() -> str | None:
            return self.failing(stall_seconds)

        return live, ready


async def run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            problem = await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # a check that raises has failed; the reason is reported
            problem = f"error: {type(exc).__name__}"
        results[name] = problem or "ok"
    return all(v == "ok" for v in results.values()), results


def build_app(probes: Probes) -> web.Application:
    async def health(checks: Mapping[str, Check]) -> web.Response:
        ok, results = await run_checks(checks)
        body = {"status": "ok" if ok else "unavailable", "checks": results}
        return web.json_response(body, status=200 if ok else 503)

    async def healthz(_: web.Request) -> web.Response:
        return await health(probes.live)

    async def readyz(_: web.Request) -> web.Response:
        return await health(probes.ready)

    async def metrics(_: web.Request) -> web.Response:
        if probes.before_scrape is not None:
            try:
                await asyncio.wait_for(probes.before_scrape(), CHECK_TIMEOUT_SECONDS)
            except Exception as exc:  # serve the other series; the gauges keep their last value
                log.warning("metrics refresh failed", error=type(exc).__name__)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


class ProbePortUnavailable(Exception):
    """The probe server cannot listen where the settings say (outside dev)."""


class ProbeServer:
    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner: web.AppRunner | None = runner
        self.port = port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def start_probe_server(settings: Settings, service: str, probes: Probes) -> ProbeServer:
    """Serve ``probes`` on the inherited socket, else on ``HERALD_METRICS_HOST``/``PORT``.

    Raises ProbePortUnavailable when the port is taken, except in dev, where any free port
    is taken instead."""
    runner = web.AppRunner(build_app(probes), access_log=None, handle_signals=False)
    await runner.setup()
    host = settings.metrics_host
    port = settings.metrics_port if settings.metrics_port is not None else DEFAULT_PORTS[service]
    try:
        if settings.metrics_fd is not None:
            await web.SockSite(runner, socket.socket(fileno=settings.metrics_fd)).start()
        else:
            await _listen(runner, settings, port)
    except BaseException:
        await runner.cleanup()
        raise
    bound = _bound_port(runner) or port
    log.info("probe server listening", host=host, port=bound)
    return ProbeServer(runner, bound)


async def _listen(runner: web.AppRunner, settings: Settings, port: int) -> None:
    host = settings.metrics_host
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        if settings.environment != "dev":
            log.error("probe server cannot listen", host=host, port=port, error=str(exc))
            raise ProbePortUnavailable(
                f"cannot serve /healthz, /readyz and /metrics on {host}:{port} ({exc}); "
                "free that port or set HERALD_METRICS_PORT to another (0: any free port)"
            ) from exc
        await web.TCPSite(runner, host, 0).start()
        log.warning(
            "probe port taken; listening on a free port instead",
            host=host,
            port=port,
            bound=_bound_port(runner),
            error=str(exc),
        )


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
