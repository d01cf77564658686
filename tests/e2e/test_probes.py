"""The scheduler and publisher as production runs them (their console scripts, their own
processes): probes answer, a publish shows up in /metrics, and the API sees the publisher."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import PostTarget
from herald_common.settings import Settings
from tests.conftest import Tenant, free_port
from tests.factories import insert_due_targets
from tests.services import (
    SPAWNING_TEST_TIMEOUT_SECONDS,
    service_env,
    spawn,
    stop,
    wait_for,
    wait_ready,
)


def metric_value(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.timeout(SPAWNING_TEST_TIMEOUT_SECONDS)
async def test_workers_serve_probes_and_metrics_and_the_api_sees_the_publisher(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, api_url: str
) -> None:
    ports = {"scheduler": free_port(), "publisher": free_port()}
    processes = [
        spawn(
            f"herald-{name}",
            service_env(
                settings, HERALD_METRICS_PORT=str(port), HERALD_PUBLISHER_PLATFORMS="sandbox"
            ),
        )
        for name, port in ports.items()
    ]
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        await wait_ready(processes, list(urls.values()))
        async with httpx.AsyncClient(timeout=5) as http:
            for url in urls.values():
                assert (await http.get(f"{url}/healthz")).json()["status"] == "ok"

            [target_id] = await insert_due_targets(
                sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
            )

            async def published() -> bool:
                async with sessions() as session:
                    status = await session.scalar(
                        select(PostTarget.status).where(PostTarget.id == target_id)
                    )
                return status == "published"

            await wait_for(published)
            publisher = (await http.get(f"{urls['publisher']}/metrics")).text
            scheduler = (await http.get(f"{urls['scheduler']}/metrics")).text
            api_ready = (await http.get(f"{api_url}/readyz")).json()
    finally:
        stop(processes)

    lateness = 'herald_publish_lateness_seconds_count{platform="sandbox"}'
    assert metric_value(publisher, lateness) == 1
    assert metric_value(publisher, 'herald_publish_total{outcome="published",platform="sandbox"}')
    assert metric_value(publisher, 'herald_queue_ready_jobs{platform="sandbox"}') is not None
    passes = metric_value(scheduler, "herald_scheduler_pass_duration_seconds_count")
    assert passes is not None and passes >= 1
    assert metric_value(scheduler, "herald_scheduler_batch_size_count") == 1
    assert metric_value(scheduler, 'herald_queue_ready_jobs{platform="mastodon"}') is not None
    assert api_ready["publishers"]["sandbox"] == "ok"


async def test_outside_dev_a_service_whose_probe_port_is_taken_does_not_start(
    settings: Settings,
) -> None:
    """Not a warning and a service without probes: a process that exits, saying why."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = service_env(settings, HERALD_METRICS_PORT=str(port), HERALD_LOG_LEVEL="INFO")
        script = os.path.join(os.path.dirname(sys.executable), "herald-scheduler")
        finished = await asyncio.to_thread(
            subprocess.run, [script], env=env, capture_output=True, text=True, timeout=60
        )
    assert finished.returncode != 0
    output = finished.stdout + finished.stderr
    assert f"cannot serve /healthz, /readyz and /metrics on 127.0.0.1:{port}" in output
    assert "scheduler started" not in output
