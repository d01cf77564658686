"""The shared outbound client over real HTTP: it keeps no cookies (one client serves every
account), and its connection pool takes HERALD_HTTP_MAX_CONNECTIONS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from herald_common.http import create_http_client
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


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_get("/set", state.set_cookie)
    app.router.add_get("/echo", state.echo_cookie)
    app.router.add_get("/slow", state.slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


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
