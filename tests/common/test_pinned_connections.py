"""Connections to caller-chosen names are pinned to checked addresses (DNS rebinding).

A name is checked when a caller gives it (caller_urls.checked_origin) and resolved again when
Herald's shared client connects. These tests give each step its own DNS: the check sees a
public address, the connection sees 127.0.0.1, where a real TLS server waits. Outside dev
and test the connection is refused and the server sees nothing; TLS is still verified for
the name at the address the resolver gave.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from herald_common.caller_urls import checked_origin
from herald_common.http import create_http_client, transport_failure
from herald_common.platforms.errors import Transient
from herald_common.settings import Settings
from tests.conftest import free_port

# A public address the check-time DNS answers. Nothing connects to it: the connection-time
# DNS answers loopback only, so a failure of the guard reaches the local server, not this.
PUBLIC = "93.184.215.14"
NAMES = ["pinned.example", "bot-api.internal"]


class ScriptedDNS(AbstractResolver):
    """aiohttp's resolver interface, answering each name from a table."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".")
        self.asked.append(name)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in self.answers[name]
        ]

    async def close(self) -> None:
        return None


@dataclass
class TLSServer:
    port: int
    requests: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_tls(authority: trustme.CA) -> ssl.SSLContext:
    """What Herald's client trusts in these tests: the local authority only."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


@pytest.fixture
async def server(authority: trustme.CA) -> AsyncIterator[TLSServer]:
    """A real HTTPS server on 127.0.0.1 with a certificate for NAMES, recording each request
    and the name each TLS client asked for (SNI)."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*NAMES).configure_cert(tls)
    running = TLSServer(free_port())
    tls.sni_callback = lambda _sock, name, _ctx: running.server_names.append(name)

    async def answer(request: web.Request) -> web.Response:
        running.requests.append(f"{request.host} {request.path}")
        return web.json_response({"uri": request.host})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", running.port, ssl_context=tls).start()
    yield running
    await runner.cleanup()


def production(telegram_api_base: str = "https://api.telegram.org") -> Settings:
    # Keys come from the environment the test session set up (tests/conftest.py).
    return Settings(environment="production", telegram_api_base=telegram_api_base)


@pytest.fixture
def rebinding_dns() -> ScriptedDNS:
    return ScriptedDNS({"pinned.example": ["127.0.0.1"]})


async def test_a_name_that_rebinds_to_loopback_after_its_check_gets_no_request(
    server: TLSServer, client_tls: ssl.SSLContext, rebinding_dns: ScriptedDNS
) -> None:
    async def check_time_dns(host: str, port: int) -> list[str]:
        return [PUBLIC]

    url = f"https://pinned.example:{server.port}"
    origin = await checked_origin(url, environment="production", resolver=check_time_dns)
    assert origin == url
    client = create_http_client(production(), resolver=rebinding_dns, ssl_context=client_tls)
    async with client:
        # The short lane (aiohttp directly) and httpx's own path share one connection pool.
        attempts = [
            client.get(f"{origin}/api/v1/instance"),
            client.get(f"{origin}/api/v1/instance", params={"lane": "httpx"}),
            client.post(f"{origin}/api/v1/statuses", data={"status": "hi"}),
        ]
        for attempt in attempts:
            with pytest.raises(httpx.TransportError) as refused:
                await attempt
            assert "points to a loopback address" in repr(refused.value.__cause__)
            # Refused before anything was sent: an adapter retries it as Transient.
            assert isinstance(transport_failure(refused.value, "mastodon", "a post"), Transient)
    assert rebinding_dns.asked  # the connection did resolve the name itself
    assert server.requests == []
    assert server.server_names == []


async def test_without_the_guard_the_same_request_reaches_the_server(
    server: TLSServer, client_tls: ssl.SSLContext, rebinding_dns: ScriptedDNS
) -> None:
    """The control for the test above: in the test environment (local addresses allowed, for
    fakes) the same name, DNS and server do get the request, so the refusal there is the
    guard's doing."""
    client = create_http_client(
        Settings(environment="test"), resolver=rebinding_dns, ssl_context=client_tls
    )
    async with client:
        response = await client.get(f"https://pinned.example:{server.port}/api/v1/instance")
    assert response.status_code == 200
    assert server.requests == [f"pinned.example:{server.port} /api/v1/instance"]


async def test_tls_is_verified_for_the_name_at_the_address_the_resolver_gave(
    server: TLSServer, client_tls: ssl.SSLContext
) -> None:
    dns = ScriptedDNS({"pinned.example": ["127.0.0.1"], "impostor.example": ["127.0.0.1"]})
    client = create_http_client(Settings(environment="test"), resolver=dns, ssl_context=client_tls)
    async with client:
        ok = await client.get(f"https://pinned.example:{server.port}/")
        assert ok.status_code == 200
        # Same address, another name: the certificate does not name it, so no request.
        with pytest.raises(httpx.TransportError) as refused:
            await client.get(f"https://impostor.example:{server.port}/")
    assert "certificate" in repr(refused.value.__cause__).lower()
    assert server.server_names == ["pinned.example", "impostor.example"]
    assert server.requests == [f"pinned.example:{server.port} /"]


async def test_the_operators_own_platform_hosts_may_resolve_to_private_addresses(
    server: TLSServer, client_tls: ssl.SSLContext
) -> None:
    """A platform address in settings (here a self-hosted Bot API server inside the cluster)
    is the operator's choice; a caller-chosen name at the same address is still refused."""
    settings = production(telegram_api_base=f"https://bot-api.internal:{server.port}")
    dns = ScriptedDNS({"bot-api.internal": ["127.0.0.1"], "pinned.example": ["127.0.0.1"]})
    client = create_http_client(settings, resolver=dns, ssl_context=client_tls)
    async with client:
        own = await client.get(f"{settings.telegram_api_base}/botTOKEN/getMe")
        assert own.status_code == 200
        with pytest.raises(httpx.TransportError):
            await client.get(f"https://pinned.example:{server.port}/")
    assert server.requests == [f"bot-api.internal:{server.port} /botTOKEN/getMe"]


async def test_the_operators_own_ai_model_server_may_resolve_to_a_private_address(
    server: TLSServer, client_tls: ssl.SSLContext
) -> None:
    """HERALD_OPENAI_BASE_URL is the operator's too: a model served inside the cluster."""
    model = f"https://bot-api.internal:{server.port}/v1"
    settings = production().model_copy(update={"openai_base_url": model})
    dns = ScriptedDNS({"bot-api.internal": ["127.0.0.1"]})
    async with create_http_client(settings, resolver=dns, ssl_context=client_tls) as client:
        answer = await client.get(f"{model}/models")
    assert answer.status_code == 200
    assert server.requests == [f"bot-api.internal:{server.port} /v1/models"]
