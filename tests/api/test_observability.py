"""The API's request ids, request metrics by route template, and readiness report."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from herald_api.main import create_app
from herald_api.observability import REQUEST_ID_HEADER
from herald_common.platforms.registry import PLATFORM_NAMES
from herald_common.settings import Settings
from tests.conftest import Tenant
from tests.logs import json_logs, log_lines


@pytest.fixture
async def in_process(settings: Settings, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """The app called in this task (no server), so its log lines land in a captured buffer."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=tenant.headers
        ) as http:
            yield http


async def test_a_request_id_is_made_returned_and_on_every_log_line(
    in_process: httpx.AsyncClient,
) -> None:
    with json_logs("api") as buffer:
        response = await in_process.get("/v1/posts")
    assert response.status_code == 200
    request_id = response.headers[REQUEST_ID_HEADER]
    assert len(request_id) == 32

    # Everything the app wrote (the test's own httpx client logs its call too).
    lines = [line for line in log_lines(buffer) if line.get("logger") != "httpx"]
    [request_line] = [line for line in lines if line["event"] == "request"]
    assert (request_line["route"], request_line["status"]) == ("/v1/posts", 200)
    assert all(line["request_id"] == request_id for line in lines)


async def test_the_callers_request_id_is_kept_unless_unsafe(
    in_process: httpx.AsyncClient,
) -> None:
    kept = await in_process.get("/healthz", headers={REQUEST_ID_HEADER: "edge-7f3a:01"})
    assert kept.headers[REQUEST_ID_HEADER] == "edge-7f3a:01"

    forged = '1" level=error msg="injected'
    replaced = await in_process.get("/healthz", headers={REQUEST_ID_HEADER: forged})
    assert replaced.headers[REQUEST_ID_HEADER] != forged
    assert len(replaced.headers[REQUEST_ID_HEADER]) == 32


async def test_latency_is_measured_per_route_template_not_per_path(
    api_url: str, client: httpx.AsyncClient
) -> None:
    missing = uuid.uuid4()
    assert (await client.get(f"/v1/posts/{missing}")).status_code == 404

    metrics = (await client.get(f"{api_url}/metrics")).text
    assert (
        'herald_http_request_duration_seconds_count{method="GET",route="/v1/posts/{post_id}",'
        'status="404"}'
    ) in metrics
    assert str(missing) not in metrics
    assert "herald_publish_lateness_seconds" in metrics
    # Operational, not part of the API contract: absent from the OpenAPI document.
    assert "/metrics" not in (await client.get(f"{api_url}/openapi.json")).json()["paths"]


async def test_readiness_reports_publishers_without_depending_on_them(
    api_url: str, redis: Redis
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        none_alive = await http.get("/readyz")
        # What an arq worker polling the sandbox queue keeps writing.
        await redis.set("herald:publish:sandbox:health-check", "j_complete=0 queued=0", px=6000)
        sandbox_alive = await http.get("/readyz")

    assert none_alive.status_code == 200
    assert none_alive.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert none_alive.json()["publishers"] == dict.fromkeys(PLATFORM_NAMES, "no live publisher")
    assert sandbox_alive.status_code == 200
    assert sandbox_alive.json()["publishers"]["sandbox"] == "ok"
