"""The one outbound HTTP client factory.

httpx is the API; the transport underneath is aiohttp's (httpx-aiohttp), because httpcore's
pool costs ~5 ms of CPU per request at 50 connections on our machines against ~0.7 ms for the
aiohttp transport (DESIGN.md, "HTTP out"). ``transport`` stays injectable for tests.
"""

from __future__ import annotations

import json as jsonlib
import logging
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver
from httpx._client import USE_CLIENT_DEFAULT, UseClientDefault
from httpx._types import (
    AuthTypes,
    CookieTypes,
    HeaderTypes,
    QueryParamTypes,
    RequestContent,
    RequestData,
    RequestExtensions,
    RequestFiles,
    TimeoutTypes,
)
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions
from multidict import CIMultiDict

from herald_common.caller_urls import LOCAL_ENVIRONMENTS, GuardedResolver
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


class _SharedSession:
    """Makes the aiohttp session on first use (inside the event loop) and hands the same one to
    every caller: the transport and the client's short lane share one connection pool."""

    def __init__(self, make: Callable[[], aiohttp.ClientSession]) -> None:
        self._make = make
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self._make()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@lru_cache(maxsize=1024)
def _parsed_url(url: str) -> httpx.URL:
    """httpx parses URLs in Python (a tenth of a millisecond each); a handful of API endpoints
    serve every post, so each is parsed once. ``httpx.URL`` is immutable, hence shareable."""
    return httpx.URL(url)


def _encode_json(value: Any) -> bytes:
    """The bytes httpx sends for ``json=`` (httpx._content.encode_json), so both lanes agree."""
    return jsonlib.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _client_timeout(timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
    """httpx's timeouts in aiohttp's terms, as httpx-aiohttp's transport translates them."""
    return aiohttp.ClientTimeout(
        sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool
    )


_log = logging.getLogger("httpx")


class HeraldClient(httpx.AsyncClient):
    """httpx's client without a cookie jar (see _NoCookies), with a short lane to aiohttp.

    Most of what an adapter sends is one call shape: an absolute URL, headers and a JSON or
    bytes body. For that shape ``request`` skips httpx's request pipeline (building and
    re-normalising headers several times, parsing the URL, the auth and redirect loops, the
    transport's translation) and calls the aiohttp session directly, then returns the same
    ``httpx.Response`` the long way would: same status, headers, decoded body, request and
    mapped errors. That halves the client's CPU per request (bench/README.md). Every other
    shape (forms, files, query params, per-request auth or redirects, mounted transports, a
    MockTransport in tests) takes httpx's own path unchanged.
    """

    _no_cookies = _NoCookies()

    def __init__(self, *, session: _SharedSession | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Mounted transports (none today) would be bypassed, so they close the lane.
        self._short_lane = session if not self._mounts else None

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("Herald's HTTP client keeps no cookies")

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: RequestContent | None = None,
        data: RequestData | None = None,
        files: RequestFiles | None = None,
        json: Any | None = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        cookies: CookieTypes | None = None,
        auth: AuthTypes | UseClientDefault | None = USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
        timeout: TimeoutTypes | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 (httpx's)
        extensions: RequestExtensions | None = None,
    ) -> httpx.Response:
        short = (
            isinstance(url, str)
            and self._short_lane is not None
            and url.startswith(("https://", "http://"))
            and (content is None or isinstance(content, bytes))
            and data is None
            and files is None
            and params is None
            and cookies is None
            and auth is USE_CLIENT_DEFAULT
            and follow_redirects is USE_CLIENT_DEFAULT
            and extensions is None
            and self.auth is None
            and not self.follow_redirects
            and not self.base_url.raw_host
            and not any(self.event_hooks.values())
        )
        if not short:
            return await super().request(
                method, url, content=content, data=data, files=files, json=json,
                params=params, headers=headers, cookies=cookies, auth=auth,
                follow_redirects=follow_redirects, timeout=timeout, extensions=extensions,
            )  # fmt: skip
        body = content if isinstance(content, bytes) else None
        return await self._short_request(method, str(url), body, json, headers, timeout)

    async def aclose(self) -> None:
        await super().aclose()
        await self._close_short_lane()

    async def __aexit__(self, *exc_info: Any) -> None:
        await super().__aexit__(*exc_info)
        await self._close_short_lane()

    async def _close_short_lane(self) -> None:
        """The transport closes the shared session only if it ever used it itself."""
        if self._short_lane is not None:
            await self._short_lane.close()

    async def _short_request(
        self,
        method: str,
        url: str,
        content: bytes | None,
        json: Any,
        headers: HeaderTypes | None,
        timeout: TimeoutTypes | UseClientDefault,  # noqa: ASYNC109 (httpx's)
    ) -> httpx.Response:
        assert self._short_lane is not None
        # The client's headers and timeout are read per request, as httpx does, so a change
        # to either (client.headers["X"] = ..., client.timeout = ...) reaches both lanes.
        sent = CIMultiDict(self.headers.multi_items())
        if headers:
            sent.update(httpx.Headers(headers).multi_items())
        body = content
        if content is None and json is not None:
            body = _encode_json(json)
            sent.setdefault("Content-Type", "application/json")
        if body == b"":
            body = None
        client_timeout = _client_timeout(
            self.timeout if isinstance(timeout, UseClientDefault) else httpx.Timeout(timeout)
        )
        method = method.upper()
        request = _request_as_httpx_builds_it(method, _parsed_url(url), sent, body)
        started = time.perf_counter()
        with map_aiohttp_exceptions():
            async with self._short_lane().request(
                method, url, headers=sent, data=body, allow_redirects=False,
                auto_decompress=False, compress=False, timeout=client_timeout,
            ) as answer:  # fmt: skip
                raw = await answer.read()
        response = httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=httpx.ByteStream(raw),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (answer.reason or "").encode(),
            },
        )
        await response.aread()  # decodes Content-Encoding, as the long way does
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                'HTTP Request: %s %s "%s %d %s"',
                method, request.url, response.http_version, response.status_code,
                response.reason_phrase,
            )  # fmt: skip
        return response


def _request_as_httpx_builds_it(
    method: str, url: httpx.URL, sent: CIMultiDict[str], body: bytes | None
) -> httpx.Request:
    """The ``httpx.Request`` the long way reports for this call, with the headers httpx adds
    (``Host`` first; ``Content-Length`` after the others, or ``0`` first for a bodiless
    POST/PUT/PATCH), built in one pass: ``Request(content=...)`` re-reads and rebuilds its
    headers three times (~15 µs against ~7 µs here, measured on the bench machine)."""
    first: list[tuple[str, str]] = []
    items = list(sent.items())
    if "Host" not in sent:
        first.append(("Host", url.netloc.decode("ascii")))
    if "Content-Length" not in sent and "Transfer-Encoding" not in sent:
        if body:
            items.append(("Content-Length", str(len(body))))
        elif method in ("POST", "PUT", "PATCH"):
            first.append(("Content-Length", "0"))
    request = httpx.Request(
        method, url, headers=first + items, stream=httpx.ByteStream(body or b"")
    )
    request.read()
    return request


def _aiohttp_session(
    settings: Settings, resolver: AbstractResolver | None, ssl_context: ssl.SSLContext | None
) -> _SharedSession:
    """The aiohttp session under the transport, made on first use (inside the event loop):
    its pool takes HERALD_HTTP_MAX_CONNECTIONS (the transport's own default is 100, and the
    limits given to httpx never reach it), and like the httpx side it keeps no cookies.
    Outside dev and test its resolver refuses non-public answers for every name but the
    operator's own (caller_urls.GuardedResolver), which pins each connection to checked
    addresses: the media importer, webhooks and every adapter get that by using this client."""
    context = ssl_context or httpx.create_ssl_context()

    def make() -> aiohttp.ClientSession:
        names = resolver or aiohttp.ThreadedResolver()
        if settings.environment not in LOCAL_ENVIRONMENTS:
            names = GuardedResolver(names, operator_hosts(settings))
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.http_max_connections,
                keepalive_timeout=KEEPALIVE_SECONDS,
                ssl=context,
                resolver=names,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    return _SharedSession(make)


# Settings naming where Herald itself sends requests: the operator's choice, not a caller's
# (``_base_url``: the AI model's server, often a vLLM or Ollama inside the cluster).
OPERATOR_URL_SUFFIXES = ("_api_base", "_base_url", "_authorize_url", "_token_url", "_revoke_url")


def operator_hosts(settings: Settings) -> frozenset[str]:
    """Hosts of the platform addresses configured in settings."""
    hosts = set()
    for name in type(settings).model_fields:
        if name.endswith(OPERATOR_URL_SUFFIXES):
            host = urlsplit(str(getattr(settings, name))).hostname
            if host:
                hosts.add(host)
    return frozenset(hosts)


# httpx's default keep-alive expiry, kept for the aiohttp pool.
KEEPALIVE_SECONDS = 5.0


def create_http_client(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    resolver: AbstractResolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The process's outbound client. ``resolver`` (aiohttp's threaded getaddrinfo by default)
    and ``ssl_context`` (certifi's roots, as httpx's) are for tests."""
    session = None if transport is not None else _aiohttp_session(settings, resolver, ssl_context)
    return HeraldClient(
        session=session,
        transport=transport or AiohttpTransport(client=session),
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

    The message says what happened in words a person reads on the target ("the connection
    closed after the request was sent, so its answer was lost"), not the transport's
    exception, whose type hides it: httpx-aiohttp reports a server that took the request and
    hung up as ``ConnectTimeout('Server disconnected')``. An error it cannot name is shown as
    ``repr(exc)``, or as ``shown`` where that would hold a secret (a token in the URL).
    """
    if request_never_sent(exc):
        return Transient(f"{platform} could not be reached: {_never_sent(exc, shown)}")
    return OutcomeUnknown(f"{platform} may have received {what}, but {_answer_lost(exc, shown)}")


def _never_sent(exc: BaseException, shown: str | None) -> str:
    cause = _aiohttp_error(exc)
    if isinstance(cause, aiohttp.ClientConnectorError):
        return f"the connection failed ({cause.os_error.strerror or type(cause.os_error).__name__})"
    if isinstance(cause, aiohttp.ConnectionTimeoutError) or isinstance(
        exc, httpx.ConnectTimeout | httpx.PoolTimeout
    ):
        return "no connection could be made within the timeout"
    if isinstance(exc, httpx.ConnectError):
        return "the connection failed"
    return shown or repr(exc)


def _answer_lost(exc: BaseException, shown: str | None) -> str:
    """Why no answer came to a request that may have been received."""
    cause = _aiohttp_error(exc)
    if isinstance(cause, aiohttp.ServerDisconnectedError) or isinstance(
        exc, httpx.RemoteProtocolError
    ):
        return "the connection closed after the request was sent, so its answer was lost"
    if isinstance(cause, aiohttp.ServerTimeoutError) or isinstance(
        exc, httpx.ReadTimeout | TimeoutError
    ):
        return "no answer came within the timeout after the request was sent"
    if isinstance(cause, aiohttp.ClientPayloadError) or isinstance(exc, httpx.ReadError):
        return "its answer was cut off"
    if isinstance(cause, aiohttp.ClientOSError) or isinstance(exc, httpx.WriteError):
        return "the connection broke while the request was sent or answered"
    return f"no answer came: {shown or repr(exc)}"


def _aiohttp_error(exc: BaseException) -> BaseException | None:
    """The aiohttp error behind ``exc`` (httpx-aiohttp chains it as the cause), if any."""
    return exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__


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
