"""The one outbound HTTP client factory.

httpx is the API; the transport underneath is aiohttp's (httpx-aiohttp), because httpcore's
pool costs ~5 ms of CPU per request at 50 connections on our machines against ~0.7 ms for the
aiohttp transport (DESIGN.md, "HTTP out"). ``transport`` stays injectable for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from herald_common.logging import redact_text
from herald_common.platforms.errors import OutcomeUnknown, PublishError, Transient
from herald_common.settings import Settings


class _RedactSecretsInUrls(logging.Filter):
    """httpx logs every request's URL at INFO, and some platforms put secrets in the path
    (Telegram's bot token, Discord's webhook token): mask them before any handler sees the
    record (the structlog pipeline redacts too, but test and third-party handlers would not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_httpx_logger = logging.getLogger("httpx")
if not any(isinstance(f, _RedactSecretsInUrls) for f in _httpx_logger.filters):
    _httpx_logger.addFilter(_RedactSecretsInUrls())

USER_AGENT = "Herald/0.1 (+https://github.com/herald-social/herald)"

# What a request through the shared client can raise when no HTTP answer arrives: httpx's
# errors, aiohttp's when the transport lets one through, and asyncio's timeout.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    httpx.HTTPError,
    aiohttp.ClientError,
)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing. One client serves every account of every platform, so
    a cookie one account's response set must never ride on another's request; and no adapter
    uses cookies. Skipping the jar also saves httpx building a urllib request per response."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class HeraldClient(httpx.AsyncClient):
    """httpx's client without a cookie jar (see _NoCookies)."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("Herald's HTTP client keeps no cookies")


def _aiohttp_session(settings: Settings) -> Callable[[], aiohttp.ClientSession]:
    """The aiohttp session under the transport, made on first use (inside the event loop):
    its pool takes HERALD_HTTP_MAX_CONNECTIONS (the transport's own default is 100, and the
    limits given to httpx never reach it), and like the httpx side it keeps no cookies."""
    ssl_context = httpx.create_ssl_context()

    def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.http_max_connections,
                keepalive_timeout=KEEPALIVE_SECONDS,
                ssl=ssl_context,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    return make


# httpx's default keep-alive expiry, kept for the aiohttp pool.
KEEPALIVE_SECONDS = 5.0


def create_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return HeraldClient(
        transport=transport or AiohttpTransport(client=_aiohttp_session(settings)),
        timeout=httpx.Timeout(settings.http_timeout_seconds),
        limits=httpx.Limits(max_connections=settings.http_max_connections),
        headers={"User-Agent": USER_AGENT},
    )


def request_never_sent(exc: BaseException) -> bool:
    """Whether a request that failed with ``exc`` certainly never reached the server.

    Adapters use it to tell a safe retry (nothing was sent: Transient) from a request that may
    have created a post (OutcomeUnknown).

    httpx-aiohttp maps aiohttp's errors onto httpx types in a way that hides this: a server
    that accepted the request and then closed the connection (``ServerDisconnectedError``) or
    reset it arrives as ``httpx.ConnectTimeout``, and a refused connection does too. So the
    aiohttp error it chains as ``__cause__`` decides: only a failure to connect at all
    (``ClientConnectorError``: refused, DNS, TLS) or to connect in time
    (``ConnectionTimeoutError``, which also covers waiting for a pooled connection), or a URL
    it refused to use (``InvalidURL``) means nothing was sent. With httpx's own transport its
    types are accurate and are used as is.
    """
    aiohttp_error = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
    if isinstance(aiohttp_error, aiohttp.ClientError):
        return isinstance(
            aiohttp_error,
            aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError | aiohttp.InvalidURL,
        )
    return isinstance(
        exc,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol,
    )


def transport_failure(
    exc: BaseException, platform: str, what: str, *, shown: str | None = None
) -> PublishError:
    """What a request to ``platform`` that got no HTTP answer means for the attempt:
    Transient when it certainly never left, else OutcomeUnknown (``what`` may exist now).
    ``shown`` replaces ``repr(exc)`` in the message where the URL holds a secret."""
    detail = repr(exc) if shown is None else shown
    if request_never_sent(exc):
        return Transient(f"{platform} could not be reached: {detail}")
    return OutcomeUnknown(f"{platform} may have received {what}, but no answer came: {detail}")


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """An HTTP ``Retry-After`` value (RFC 9110: delay-seconds or an HTTP date) as seconds from
    ``now``, or ``None`` when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or ``{}`` when the body is not one (a proxy's HTML page)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
