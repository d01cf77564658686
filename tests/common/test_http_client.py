"""The shared outbound client over real HTTP: it keeps no cookies (one client serves every
account), its connection pool takes HERALD_HTTP_MAX_CONNECTIONS, and its short lane to aiohttp
sends and answers exactly as httpx's own path does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from herald_common.http import (
    TRANSPORT_ERRORS,
    create_http_client,
    request_never_sent,
    transport_failure,
)
from herald_common.platforms.errors import OutcomeUnknown, Transient
from herald_common.settings import Settings
from tests.conftest import free_port


class Server:
    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.release = asyncio.Event()
        self.three_in_flight = asyncio.Event()

    async def set_cookie(self, request: web.Request) -> web.Response:
        response = web.Response(text="set")
        response.set_cookie("session", "account-a-secret")
        return response

    async def echo_cookie(self, request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Cookie", ""))

    async def slow(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight == 3:
            self.three_in_flight.set()
        try:
            await self.release.wait()
            return web.Response(text="ok")
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[tuple[str, web.AppRunner]]:
    """``app`` on a free local port: its base URL and runner."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", runner
    finally:
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_get("/set", state.set_cookie)
    app.router.add_get("/echo", state.echo_cookie)
    app.router.add_get("/slow", state.slow)
    async with serving(app) as (base, _):
        yield state, base


async def test_a_cookie_one_response_sets_never_rides_on_the_next_request(
    server: tuple[Server, str],
) -> None:
    _, base = server
    client = create_http_client(Settings(environment="test"))
    try:
        first = await client.get(f"{base}/set")
        assert "account-a-secret" in first.headers["set-cookie"]
        echoed = await client.get(f"{base}/echo")
        assert echoed.text == ""
        assert not client.cookies
    finally:
        await client.aclose()


async def test_the_pool_takes_the_configured_connection_limit(
    server: tuple[Server, str],
) -> None:
    state, base = server
    client = create_http_client(Settings(environment="test", http_max_connections=3))
    try:
        requests = [asyncio.create_task(client.get(f"{base}/slow")) for _ in range(6)]
        await asyncio.wait_for(state.three_in_flight.wait(), 5)
        await asyncio.sleep(0.1)  # room for more to arrive, if the pool allowed them
        state.release.set()
        answers = await asyncio.gather(*requests)
    finally:
        await client.aclose()
    assert [a.status_code for a in answers] == [200] * 6
    assert state.most == 3


# --- The short lane: the common call shape goes to aiohttp directly ---------------------------


class Origin:
    """An API that answers like a real one: a status with its reason, repeated headers, a
    gzip body when the client accepts it, and an echo of what it received."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []

    async def echo(self, request: web.Request) -> web.StreamResponse:
        seen: dict[str, object] = {
            "method": request.method,
            "path": request.path_qs,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode("utf-8", "backslashreplace"),
        }
        self.received.append(seen)
        response = web.json_response(seen, status=201, reason="Created Here")
        response.headers["X-RateLimit-Remaining"] = "7"
        response.headers.add("Link", "<https://a.example/1>; rel=next")
        response.headers.add("Link", "<https://a.example/9>; rel=last")
        response.enable_compression(web.ContentCoding.gzip)
        return response

    async def hang_up(self, request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # took the request, then went away without answering
        return web.Response()

    async def sleep(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()


@pytest.fixture
async def origin() -> AsyncIterator[tuple[Origin, str, web.AppRunner]]:
    state = Origin()
    app = web.Application()
    app.router.add_route("*", "/echo", state.echo)
    app.router.add_post("/hang-up", state.hang_up)
    app.router.add_get("/sleep", state.sleep)
    async with serving(app) as (base, runner):
        yield state, base, runner


class CountingTransport(AiohttpTransport):
    """The production transport, counting the requests that reach it (the long way)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.handled = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.handled += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def counted(client: httpx.AsyncClient) -> CountingTransport:
    transport = CountingTransport(client._transport)
    client._transport = transport
    return transport


# Any `params`, even none, takes httpx's own path: the same request the long way.
LONG_WAY: dict[str, Any] = {"params": {}}


def _comparable(response: httpx.Response) -> tuple[object, ...]:
    return (
        response.status_code,
        response.reason_phrase,
        response.http_version,
        # The gzipped echo's length follows the order headers arrived in (see below).
        [(k, v) for k, v in response.headers.multi_items() if k not in ("date", "content-length")],
        response.json(),  # the echo: header order on the wire may differ, nothing else
        response.request.method,
        str(response.request.url),
        sorted(response.request.headers.multi_items()),
    )


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("POST", {"json": {"status": "héllo ✨", "n": [1, 2.5, None]}}),
        ("PUT", {"content": b"\x89PNG raw bytes"}),
        ("GET", {}),
        ("DELETE", {}),
        ("POST", {}),  # no body: httpx reports Content-Length: 0
        ("PATCH", {"content": b""}),
    ],
)
async def test_the_short_lane_sends_and_answers_exactly_as_httpx_would(
    origin: tuple[Origin, str, web.AppRunner], method: str, body: dict[str, Any]
) -> None:
    state, base, _ = origin
    async with create_http_client(Settings(environment="test")) as client:
        transport = counted(client)
        headers = {"Authorization": "Bearer t0k3n", "Idempotency-Key": "key-1"}
        short = await client.request(method, f"{base}/echo", headers=headers, **body)
        assert transport.handled == 0, "the common shape should not go through httpx's pipeline"
        long = await client.request(method, f"{base}/echo", headers=headers, **body, **LONG_WAY)
        assert transport.handled == 1

    assert _comparable(short) == _comparable(long)
    assert state.received[0] == state.received[1]  # byte for byte what the API received
    assert short.status_code == 201 and short.reason_phrase == "Created Here"
    assert short.headers.get_list("link") == [
        "<https://a.example/1>; rel=next",
        "<https://a.example/9>; rel=last",
    ]
    assert short.headers["content-encoding"] == "gzip"  # and the body was decoded:
    assert short.json()["headers"]["authorization"] == "Bearer t0k3n"
    assert short.json()["headers"]["user-agent"].startswith("Herald/")
    assert short.elapsed.total_seconds() > 0
    if "json" in body:
        assert short.json()["body"] == '{"status":"héllo ✨","n":[1,2.5,null]}'
        assert short.json()["headers"]["content-type"] == "application/json"


async def test_forms_take_httpx_own_path_and_arrive_as_forms(
    origin: tuple[Origin, str, web.AppRunner],
) -> None:
    _, base, _ = origin
    async with create_http_client(Settings(environment="test")) as client:
        transport = counted(client)
        response = await client.post(f"{base}/echo", data={"grant_type": "refresh_token"})
    assert transport.handled == 1
    assert response.json()["body"] == "grant_type=refresh_token"


async def test_failures_raise_what_the_long_way_raises(
    origin: tuple[Origin, str, web.AppRunner],
) -> None:
    _, base, _ = origin
    refused = f"http://127.0.0.1:{free_port()}/statuses"
    settings = Settings(environment="test", http_timeout_seconds=0.3)
    async with create_http_client(settings) as client:
        for url, method, never_sent in (
            (refused, "POST", True),  # nothing listening: certainly not sent
            (f"{base}/hang-up", "POST", False),  # received, then the connection dropped
            (f"{base}/sleep", "GET", False),  # no answer within the read timeout
        ):
            errors = []
            for extra in ({}, LONG_WAY):
                with pytest.raises(TRANSPORT_ERRORS) as caught:
                    await client.request(method, url, json={"status": "x"}, **extra)
                errors.append(caught.value)
            short, long = errors
            assert type(short) is type(long), url
            assert type(short.__cause__) is type(long.__cause__), url
            assert request_never_sent(short) is request_never_sent(long) is never_sent, url
            assert isinstance(short, httpx.HTTPError)


async def test_a_request_that_got_no_answer_is_named_for_what_happened(
    origin: tuple[Origin, str, web.AppRunner],
) -> None:
    """A person reads these on the target: a server that took the request and hung up is
    "its answer was lost", not the ConnectTimeout('Server disconnected') httpx-aiohttp
    raises for it."""
    _, base, _ = origin
    refused = f"http://127.0.0.1:{free_port()}/statuses"
    settings = Settings(environment="test", http_timeout_seconds=0.3)
    async with create_http_client(settings) as client:
        for url, method, kind, words in (
            (refused, "POST", Transient, "Mastodon could not be reached: the connection failed"),
            (
                f"{base}/hang-up",
                "POST",
                OutcomeUnknown,
                "Mastodon may have received the post, but the connection closed after the "
                "request was sent, so its answer was lost",
            ),
            (
                f"{base}/sleep",
                "GET",
                OutcomeUnknown,
                "Mastodon may have received the post, but no answer came within the timeout "
                "after the request was sent",
            ),
        ):
            for extra in ({}, LONG_WAY):
                with pytest.raises(TRANSPORT_ERRORS) as caught:
                    await client.request(method, url, json={"status": "x"}, **extra)
                failure = transport_failure(caught.value, "Mastodon", "the post")
                assert type(failure) is kind, url
                assert failure.message.startswith(words), failure.message
                assert "ConnectTimeout" not in failure.message


async def test_closing_the_client_closes_the_connections_the_short_lane_opened(
    origin: tuple[Origin, str, web.AppRunner],
) -> None:
    _, base, runner = origin
    async with create_http_client(Settings(environment="test")) as client:
        await client.get(f"{base}/echo")
        assert runner.server is not None and len(runner.server.connections) == 1
    for _ in range(100):
        if not runner.server.connections:
            break
        await asyncio.sleep(0.02)
    assert not runner.server.connections


async def test_a_change_to_the_clients_headers_reaches_the_short_lane(
    origin: tuple[Origin, str, web.AppRunner],
) -> None:
    state, base, _ = origin
    async with create_http_client(Settings(environment="test")) as client:
        transport = counted(client)
        client.headers["X-Deployment"] = "blue"
        await client.post(f"{base}/echo", json={"status": "x"})
        assert transport.handled == 0
    assert state.received[0]["headers"]["x-deployment"] == "blue"  # type: ignore[index]
