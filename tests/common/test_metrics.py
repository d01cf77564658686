"""Queue-depth gauges read from arq's sorted sets, loop health, and the probe server."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from herald_common import clock
from herald_common.metrics import record_publish, refresh_queue_depth
from herald_common.probe_server import (
    LoopHealth,
    ProbePortUnavailable,
    Probes,
    start_probe_server,
)
from herald_common.queue import queue_name
from herald_common.settings import Settings
from tests.logs import json_logs, log_lines


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_queue_depth_counts_only_due_jobs_and_ages_the_oldest(redis: Redis) -> None:
    now_ms = int(clock.now().timestamp() * 1000)
    await redis.zadd(
        queue_name("sandbox"),
        {"due-long-ago": now_ms - 90_000, "due-just-now": now_ms - 1_000, "later": now_ms + 60_000},
    )
    await refresh_queue_depth(redis, ["sandbox", "mastodon"])

    assert sample("herald_queue_ready_jobs", platform="sandbox") == 2
    assert sample("herald_queue_oldest_ready_age_seconds", platform="sandbox") >= 90
    assert sample("herald_queue_ready_jobs", platform="mastodon") == 0
    assert sample("herald_queue_oldest_ready_age_seconds", platform="mastodon") == 0

    # Once the deferred job falls due it counts too; the oldest stays the oldest.
    clock.advance(timedelta(minutes=2))
    await refresh_queue_depth(redis, ["sandbox"])
    assert sample("herald_queue_ready_jobs", platform="sandbox") == 3
    assert sample("herald_queue_oldest_ready_age_seconds", platform="sandbox") >= 210


def test_only_publications_observe_lateness() -> None:
    scheduled = clock.now()
    names: tuple[tuple[str, dict[str, str]], ...] = (
        ("herald_publish_total", {"outcome": "transient"}),
        ("herald_publish_total", {"outcome": "published"}),
        ("herald_publish_lateness_seconds_count", {}),
        ("herald_publish_lateness_seconds_sum", {}),
    )
    before = [sample(name, platform="metrics-test", **labels) for name, labels in names]
    record_publish("metrics-test", "transient", scheduled, scheduled + timedelta(seconds=5))
    record_publish("metrics-test", "published", scheduled, scheduled + timedelta(seconds=5))
    record_publish("metrics-test", "published", None, scheduled)

    after = [sample(name, platform="metrics-test", **labels) for name, labels in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 2, 1, 5]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_loop_health_tells_stalled_from_failing() -> None:
    time = FakeClock()
    health = LoopHealth("test pass", clock=time)
    live, ready = health.checks(stall_seconds=60)
    assert await live() is None  # starting: not a stall yet
    assert await ready() == "no test pass has succeeded yet"

    health.record(ok=True)
    assert (await live(), await ready()) == (None, None)

    # Postgres is down: passes keep failing. The loop turns (alive) but does no work.
    time.now += 120
    health.record(ok=False)
    assert await live() is None
    assert await ready() == "no test pass succeeded for 120 s"

    # The loop hangs: nothing finishes any more.
    time.now += 61
    assert await live() == "no test pass finished for 61 s"


@pytest.fixture
def ops_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_port": 0})


async def test_probe_server_answers_health_readiness_and_metrics(ops_settings: Settings) -> None:
    scrapes: list[int] = []

    async def fine() -> str | None:
        return None

    async def broken() -> str | None:
        return "database unreachable"

    async def before_scrape() -> None:
        scrapes.append(1)

    probes = Probes(
        live={"loop": fine}, ready={"loop": fine, "db": broken}, before_scrape=before_scrape
    )
    server = await start_probe_server(ops_settings, "scheduler", probes)
    assert server.port is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            healthz = await http.get("/healthz")
            readyz = await http.get("/readyz")
            metrics = await http.get("/metrics")
    finally:
        await server.stop()

    assert (healthz.status_code, healthz.json()) == (
        200,
        {"status": "ok", "checks": {"loop": "ok"}},
    )
    assert readyz.status_code == 503
    assert readyz.json() == {
        "status": "unavailable",
        "checks": {"loop": "ok", "db": "database unreachable"},
    }
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE herald_publish_lateness_seconds histogram" in metrics.text
    assert scrapes == [1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        yield taken.getsockname()[1]


async def answers_healthz(port: int) -> bool:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        body = (await http.get("/healthz")).json()
    return bool(body == {"status": "ok", "checks": {}})


@pytest.mark.parametrize("environment", ["test", "production"])
async def test_outside_dev_a_taken_probe_port_is_a_start_up_error(
    ops_settings: Settings, taken_port: int, environment: str
) -> None:
    settings = ops_settings.model_copy(
        update={"metrics_port": taken_port, "environment": environment}
    )
    with pytest.raises(ProbePortUnavailable, match=f"127.0.0.1:{taken_port}.*HERALD_METRICS_PORT"):
        await start_probe_server(settings, "publisher", Probes({}, {}))


async def test_in_dev_a_taken_probe_port_is_swapped_for_a_free_one_and_said(
    ops_settings: Settings, taken_port: int
) -> None:
    settings = ops_settings.model_copy(update={"metrics_port": taken_port, "environment": "dev"})
    with json_logs("publisher") as logs:
        server = await start_probe_server(settings, "publisher", Probes({}, {}))
    try:
        assert server.port != taken_port
        assert await answers_healthz(server.port)
    finally:
        await server.stop()
    said = {line["event"]: line for line in log_lines(logs)}
    swapped = said["probe port taken; listening on a free port instead"]
    assert (swapped["port"], swapped["bound"]) == (taken_port, server.port)
    assert said["probe server listening"]["port"] == server.port


async def test_an_inherited_listening_socket_is_served_instead_of_the_port(
    ops_settings: Settings, taken_port: int
) -> None:
    """As `make run` hands each service the socket it printed: the settings' port (here one
    held by someone else) is not even tried."""
    with socket.create_server(("127.0.0.1", 0)) as inherited:
        # The service's own copy of the descriptor, as a child process has: it closes it.
        fd = os.dup(inherited.fileno())
        settings = ops_settings.model_copy(update={"metrics_fd": fd, "metrics_port": taken_port})
        server = await start_probe_server(settings, "scheduler", Probes({}, {}))
        try:
            assert server.port == inherited.getsockname()[1]
            assert await answers_healthz(server.port)
        finally:
            await server.stop()
