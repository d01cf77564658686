"""Abuse: sign-in and sign-up throttles per IP and per account, lockout with a notice, secure
headers, CORS for the web app only, and a cap on request bodies.

Each test runs its own app with tight limits, called in-process with a chosen client IP.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from herald_api.mail import Outbox
from herald_api.main import create_app
from herald_common.settings import Settings
from tests.api.test_auth import PASSWORD, mail_to, token_of
from tests.api.test_bad_input import assert_problem

Client = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[tuple[Client, Outbox]]:
    """The API with ``changes`` to its settings; ``client(ip)`` calls it from that address."""
    outbox = Outbox()
    app = create_app(settings.model_copy(update=changes), mailer=outbox)
    async with LifespanManager(app) as manager:

        def client(ip: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=manager.app, client=(ip, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://herald.test")

        yield client, outbox


def login_body(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"email": email, "password": password}


async def sign_up(client: Client, email: str) -> None:
    async with client("192.0.2.200") as http:
        response = await http.post("/v1/auth/signup", json=login_body(email))
        assert response.status_code == 201, response.text


def assert_throttled(response: httpx.Response) -> None:
    assert_problem(response, 429)
    assert int(response.headers["retry-after"]) >= 1


async def test_logins_from_one_ip_are_throttled_and_other_ips_are_not(
    settings: Settings, redis: Redis, db: None
) -> None:
    async with app_with(settings, login_per_ip=3, lockout_threshold=100) as (client, _):
        async with client("192.0.2.1") as http:
            for _ in range(3):
                wrong = await http.post("/v1/auth/login", json=login_body("a@example.com", "x"))
                assert wrong.status_code == 401
            assert_throttled(
                await http.post("/v1/auth/login", json=login_body("b@example.com", "x"))
            )
        async with client("192.0.2.2") as http:
            other_ip = await http.post("/v1/auth/login", json=login_body("b@example.com", "x"))
            assert other_ip.status_code == 401


async def test_one_source_is_throttled_for_one_account_and_the_owner_elsewhere_is_not(
    settings: Settings, redis: Redis, db: None
) -> None:
    email = f"busy-{uuid.uuid4().hex[:8]}@example.com"
    async with app_with(settings, login_per_account=3, lockout_threshold=100) as (client, _):
        await sign_up(client, email)
        async with client("198.51.100.1") as http:
            for _ in range(3):
                response = await http.post("/v1/auth/login", json=login_body(email, "x"))
                assert response.status_code == 401
            assert_throttled(await http.post("/v1/auth/login", json=login_body(email, "x")))
            # The same source may still try other accounts (up to its per-IP allowance).
            other = await http.post("/v1/auth/login", json=login_body("c@example.com", "x"))
            assert other.status_code == 401
        async with client("203.0.113.40") as http:
            assert (await http.post("/v1/auth/login", json=login_body(email))).status_code == 200


async def test_failed_logins_lock_out_their_source_not_the_owner_and_notify_once(
    settings: Settings, redis: Redis, db: None
) -> None:
    email = f"locked-{uuid.uuid4().hex[:8]}@example.com"
    async with app_with(settings, lockout_threshold=3) as (client, outbox):
        await sign_up(client, email)
        async with client("203.0.113.5") as attacker:
            for _ in range(3):
                wrong = await attacker.post("/v1/auth/login", json=login_body(email, "wrong"))
                assert wrong.status_code == 401
            # Locked: even the right password waits, from there.
            assert_throttled(await attacker.post("/v1/auth/login", json=login_body(email)))
            notice = await mail_to(outbox, email, "locked")
            assert "from one address" in notice.body
            assert "reset your password" in notice.body
            # An unknown email locks the same way (the answer says nothing), with no mail.
            ghost = f"ghost-{uuid.uuid4().hex[:8]}@example.com"
            for _ in range(3):
                await attacker.post("/v1/auth/login", json=login_body(ghost, "wrong"))
            assert_throttled(await attacker.post("/v1/auth/login", json=login_body(ghost, "x")))
            assert outbox.to(ghost) == []
            # Locking again from another source is not news: one mail per window.
        async with client("203.0.113.6") as second:
            for _ in range(3):
                await second.post("/v1/auth/login", json=login_body(email, "wrong"))
        async with client("192.0.2.10") as owner:
            signed_in = await owner.post("/v1/auth/login", json=login_body(email))
            assert signed_in.status_code == 200, signed_in.text
        async with client("203.0.113.5") as attacker:
            await attacker.post("/v1/auth/password-reset", json={"email": email})
            token = token_of(await mail_to(outbox, email, "Reset"))
            new = {"token": token, "new_password": "unlocked at last"}
            reset = await attacker.post("/v1/auth/password-reset/confirm", json=new)
            assert reset.status_code == 204
            unlocked = await attacker.post(
                "/v1/auth/login", json=login_body(email, "unlocked at last")
            )
            assert unlocked.status_code == 200
        assert len([m for m in outbox.to(email) if "locked" in m.subject]) == 1


async def test_an_ipv6_client_counts_as_its_whole_64(
    settings: Settings, redis: Redis, db: None
) -> None:
    email = f"six-{uuid.uuid4().hex[:8]}@example.com"
    async with app_with(settings, lockout_threshold=3) as (client, _):
        await sign_up(client, email)
        for host in range(1, 4):
            async with client(f"2001:db8:1:2::{host}") as http:
                await http.post("/v1/auth/login", json=login_body(email, "wrong"))
        async with client("2001:db8:1:2:ffff::9") as same_64:
            assert_throttled(await same_64.post("/v1/auth/login", json=login_body(email)))
        async with client("2001:db8:1:3::1") as other_64:
            assert (
                await other_64.post("/v1/auth/login", json=login_body(email))
            ).status_code == 200


async def test_the_global_ceiling_stops_guessing_from_many_sources_but_not_known_ones(
    settings: Settings, redis: Redis, db: None
) -> None:
    email = f"ceiling-{uuid.uuid4().hex[:8]}@example.com"
    async with app_with(settings, lockout_threshold=100, lockout_ceiling=4) as (client, outbox):
        await sign_up(client, email)
        async with client("192.0.2.50") as owner:
            assert (await owner.post("/v1/auth/login", json=login_body(email))).status_code == 200
        for i in range(4):
            async with client(f"198.51.100.{10 + i}") as attacker:
                wrong = await attacker.post("/v1/auth/login", json=login_body(email, "wrong"))
                assert wrong.status_code == 401
        # A source the account has never signed in from waits, even with the right password.
        async with client("198.51.100.99") as new_source:
            assert_throttled(await new_source.post("/v1/auth/login", json=login_body(email)))
        notice = await mail_to(outbox, email, "locked")
        assert "from many addresses" in notice.body
        # The owner, where they signed in before, gets in.
        async with client("192.0.2.50") as owner:
            assert (await owner.post("/v1/auth/login", json=login_body(email))).status_code == 200
        # A reset lifts the ceiling for everyone.
        async with client("198.51.100.99") as new_source:
            await new_source.post("/v1/auth/password-reset", json={"email": email})
            token = token_of(await mail_to(outbox, email, "Reset"))
            new = {"token": token, "new_password": "a new password"}
            confirmed = await new_source.post("/v1/auth/password-reset/confirm", json=new)
            assert confirmed.status_code == 204
            again = await new_source.post(
                "/v1/auth/login", json=login_body(email, "a new password")
            )
            assert again.status_code == 200


async def test_x_forwarded_for_counts_only_from_trusted_proxies(
    settings: Settings, redis: Redis, db: None
) -> None:
    email = f"proxied-{uuid.uuid4().hex[:8]}@example.com"

    async def fail_three_times_then_sign_in_as_the_owner(client: Client) -> int:
        async with client("10.0.0.7") as via_proxy:
            for _ in range(3):
                forged = {"X-Forwarded-For": "203.0.113.66"}
                await via_proxy.post(
                    "/v1/auth/login", json=login_body(email, "wrong"), headers=forged
                )
            owner = {"X-Forwarded-For": "192.0.2.31"}
            response = await via_proxy.post("/v1/auth/login", json=login_body(email), headers=owner)
            return response.status_code

    # Not trusted (the default): every request through 10.0.0.7 is one source, the header
    # is ignored, and the attacker's failures lock that source.
    async with app_with(settings, lockout_threshold=3) as (client, _):
        await sign_up(client, email)
        assert await fail_three_times_then_sign_in_as_the_owner(client) == 429
    await redis.flushdb()
    # Trusted: the proxy names each client, so the attacker locks only itself.
    async with app_with(settings, lockout_threshold=3, trusted_proxies=["10.0.0.0/24"]) as (
        client,
        _,
    ):
        assert await fail_three_times_then_sign_in_as_the_owner(client) == 200
        # A client that is not a trusted proxy cannot pick its address with the header.
        async with client("203.0.113.66") as direct:
            spoofed = {"X-Forwarded-For": "192.0.2.31"}
            response = await direct.post(
                "/v1/auth/login", json=login_body(email, "wrong"), headers=spoofed
            )
            assert_throttled(response)


async def test_sign_ups_from_one_ip_are_throttled(
    settings: Settings, redis: Redis, db: None
) -> None:
    async with app_with(settings, signup_per_ip=2) as (client, _), client("192.0.2.77") as http:
        for _ in range(2):
            body = login_body(f"s-{uuid.uuid4().hex[:8]}@example.com")
            assert (await http.post("/v1/auth/signup", json=body)).status_code == 201
        body = login_body(f"s-{uuid.uuid4().hex[:8]}@example.com")
        assert_throttled(await http.post("/v1/auth/signup", json=body))


async def test_secure_headers_and_docs_compatible_csp(settings: Settings, db: None) -> None:
    async with app_with(settings) as (client, _), client("127.0.0.1") as http:
        api = await http.get("/v1/posts")
        assert api.headers["x-content-type-options"] == "nosniff"
        assert api.headers["referrer-policy"] == "no-referrer"
        assert api.headers["x-frame-options"] == "DENY"
        assert api.headers["content-security-policy"].startswith("default-src 'none'")
        # Outside dev, browsers are told to use HTTPS only.
        assert "max-age=" in api.headers["strict-transport-security"]
        docs = await http.get("/docs")
        assert docs.status_code == 200
        assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    async with app_with(settings, environment="dev") as (client, _), client("127.0.0.1") as http:
        assert "strict-transport-security" not in (await http.get("/healthz")).headers


async def test_cors_allows_only_the_configured_web_app(settings: Settings, db: None) -> None:
    app_origin = "https://app.herald.example"
    async with (
        app_with(settings, cors_origins=[app_origin]) as (client, _),
        client("127.0.0.1") as http,
    ):
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-workspace-id",
        }
        allowed = await http.options("/v1/posts", headers={"Origin": app_origin, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == app_origin
        other = await http.options(
            "/v1/posts", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_large_bodies_are_refused_with_413_whether_announced_or_streamed(
    settings: Settings, db: None
) -> None:
    async with (
        app_with(settings, max_request_body_bytes=2048) as (client, _),
        client("127.0.0.1") as http,
    ):
        big = b'{"email": "' + b"a" * 4096 + b'"}'
        announced = await http.post(
            "/v1/auth/login", content=big, headers={"Content-Type": "application/json"}
        )
        assert_problem(announced, 413)

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b" " * 1024

        streamed = await http.post(
            "/v1/auth/login", content=stream(), headers={"Content-Type": "application/json"}
        )
        assert_problem(streamed, 413)
        small = await http.post("/v1/auth/login", json=login_body("d@example.com", "x"))
        assert small.status_code == 401
