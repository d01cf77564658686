"""Request ids, request metrics and ``/metrics`` for the API.

Every request carries an id: the caller's ``X-Request-ID`` when it is a sane token, else a new
one. It is bound in structlog's contextvars for the whole request, so every log line written
while handling it (ours, and uvicorn's or SQLAlchemy's through the stdlib bridge) names it,
and it is sent back in the response's ``X-Request-ID``.

Latency is labelled with the route template (``/v1/posts/{post_id}``), never the raw path,
so ids in URLs cannot blow up the number of series.

With several API processes (``HERALD_API_WORKERS``), each writes its metrics to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode) and ``/metrics``, whichever
process answers it, adds up all of them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald_common.logging import get_logger
from herald_common.metrics import HTTP_REQUEST_SECONDS

log = get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only if it cannot forge log structure or bloat every line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"
# Probes and scrapes arrive every few seconds; they are measured but not logged.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

# prometheus_client reads it when imported: it must be set before the worker processes start.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format. Keep it off the public ingress (deploy/k8s routes only /v1)."""
    if MULTIPROCESS_DIR_ENV not in os.environ:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """A directory for the worker processes' metrics: ``PROMETHEUS_MULTIPROC_DIR`` when set
    (emptied: files left by an earlier run would be added in), else a private one removed
    afterwards."""
    given = os.environ.get(MULTIPROCESS_DIR_ENV)
    directory = Path(given or tempfile.mkdtemp(prefix="herald-api-metrics-"))
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR_ENV] = str(directory)
    try:
        yield directory
    finally:
        if given is None:
            del os.environ[MULTIPROCESS_DIR_ENV]
            shutil.rmtree(directory, ignore_errors=True)


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    # path_format drops converters (`{post_id:uuid}` -> `{post_id}`), as the OpenAPI paths do.
    path = getattr(route, "path_format", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestObservability:
    """Pure ASGI middleware (no BaseHTTPMiddleware: streaming bodies pass straight through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                HTTP_REQUEST_SECONDS.labels(
                    method=scope["method"], route=route, status=str(status)
                ).observe(elapsed)
                if route not in QUIET_ROUTES:
                    log.info(
                        "request",
                        method=scope["method"],
                        route=route,
                        status=status,
                        duration_ms=round(elapsed * 1000, 1),
                    )


def install_observability(app: FastAPI) -> None:
    app.add_middleware(RequestObservability)
    app.include_router(router)
