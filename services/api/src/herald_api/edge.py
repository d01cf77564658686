"""What every response carries and every request must fit: secure headers, CORS for the web
app, and a limit on request bodies. Plain ASGI middleware, so bodies are never re-wrapped."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from herald_api.problems import problem_response
from herald_common.settings import Settings

# JSON answers load nothing and may be framed by nobody.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The interactive docs (Swagger UI, ReDoc) are FastAPI's pages: an inline script starts them
# and their bundles, fonts and favicon come from these hosts.
DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# Two years, the preload list's expectation (hstspreload.org).
HSTS = "max-age=63072000; includeSubDomains"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SecureHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] in DOCS_PATHS else API_CSP
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"content-security-policy", csp.encode()),
        ]
        if self.hsts:
            extra.append((b"strict-transport-security", HSTS.encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in extra if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# Room for a multipart upload's boundaries, part headers and alt text around the picture.
MULTIPART_OVERHEAD = 64 * 1024


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, by Content-Length when sent, else by
    counting (chunked uploads): the body is read here, at most ``limit`` bytes, and replayed.
    Paths in ``larger`` (exact) have a limit of their own: picture uploads."""

    def __init__(self, app: ASGIApp, *, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413, "body-too-large", f"The request body is larger than {limit} bytes."
        )
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def install_edge(app: FastAPI, settings: Settings) -> None:
    """Innermost first: the body limit, then CORS, then the headers on every answer, then
    the client's address from a trusted proxy's X-Forwarded-For."""
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_body_bytes,
        larger={"/v1/media": settings.media_max_bytes + MULTIPART_OVERHEAD},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Bearer tokens, not cookies: no credentials mode needed.
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "X-API-Key",
                "X-Workspace-ID",
            ],
            expose_headers=["ETag", "Location", "Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(SecureHeaders, hsts=settings.environment != "dev")
    if settings.trusted_proxies:
        # Outermost, so everything inside (sign-in throttles, logs) sees the client the
        # trusted proxy reports. uvicorn's own copy of this middleware, which trusts
        # X-Forwarded-For from 127.0.0.1 unless told otherwise, is switched off (main.py),
        # so this setting alone decides.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
