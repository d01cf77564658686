"""Several API processes on one port (HERALD_API_WORKERS), with metrics added up across them."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager

from herald_api import main as api_main
from herald_api.main import create_app
from herald_api.observability import MULTIPROCESS_DIR_ENV
from herald_common.settings import Settings, get_settings
from tests.conftest import free_port
from tests.services import service_env, spawn, stop, wait_for

HEALTHZ_COUNT = re.compile(
    r'^herald_http_request_duration_seconds_count\{method="GET",route="/healthz",'
    r'status="200"\} ([\d.e+]+)$',
    re.MULTILINE,
)


def healthz_count(metrics: str) -> float:
    found = HEALTHZ_COUNT.search(metrics)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """main() with uvicorn.run recorded instead of serving, and the settings it reads."""
    calls: list[dict[str, Any]] = []

    def run(app: object, **options: Any) -> None:
        calls.append(
            {
                "app": app,
                "env_dir": os.environ.get(MULTIPROCESS_DIR_ENV),
                "frozen": gc.get_freeze_count(),
                **options,
            }
        )
        if options.get("workers", 1) > 1:
            assert Path(os.environ[MULTIPROCESS_DIR_ENV]).is_dir()

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(api_main, "configure_logging", lambda *_: None)
    monkeypatch.delenv(MULTIPROCESS_DIR_ENV, raising=False)
    get_settings.cache_clear()
    thresholds = gc.get_threshold()
    yield calls
    get_settings.cache_clear()
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_one_worker_serves_the_app_itself(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HERALD_API_WORKERS", raising=False)
    api_main.main()
    [call] = served
    assert call["workers"] == 1
    assert call["app"].__class__.__name__ == "FastAPI"
    assert call["env_dir"] is None
    # What start-up built is out of the garbage collector's way before serving.
    assert call["frozen"] > 0


def test_several_workers_build_the_app_each_and_share_a_metrics_dir(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_API_WORKERS", "3")
    api_main.main()
    [call] = served
    assert (call["app"], call["factory"], call["workers"]) == (
        "herald_api.main:worker_app",
        True,
        3,
    )
    # Private to that run: gone, and unset again, once the workers have stopped.
    assert call["env_dir"] is not None
    assert not Path(call["env_dir"]).exists()
    assert MULTIPROCESS_DIR_ENV not in os.environ


def test_a_given_metrics_dir_is_used_and_emptied_of_an_earlier_runs_files(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stale = tmp_path / "histogram_12345.db"
    stale.write_bytes(b"left by an earlier run")
    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("HERALD_API_WORKERS", "2")
    api_main.main()
    assert served[0]["env_dir"] == str(tmp_path)
    assert not stale.exists()
    assert tmp_path.is_dir()


OBSERVE_IN_ANOTHER_PROCESS = """
from herald_common.metrics import HTTP_REQUEST_SECONDS
for _ in range({n}):
    HTTP_REQUEST_SECONDS.labels(method="GET", route="/healthz", status="200").observe(0.001)
"""


async def test_metrics_add_up_what_every_process_recorded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {**os.environ, MULTIPROCESS_DIR_ENV: str(tmp_path)}
    for n in (3, 4):
        code = OBSERVE_IN_ANOTHER_PROCESS.format(n=n)
        subprocess.run([sys.executable, "-c", code], env=env, check=True)  # noqa: ASYNC221
    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(tmp_path))
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            metrics = (await http.get("/metrics")).text
    assert healthz_count(metrics) == 7


async def test_two_worker_processes_answer_on_one_port_and_count_together(
    settings: Settings,
) -> None:
    port = free_port()
    api = spawn(
        "herald-api", service_env(settings, HERALD_API_PORT=str(port), HERALD_API_WORKERS="2")
    )
    base = f"http://127.0.0.1:{port}"
    answered = 0

    async def healthy() -> bool:
        nonlocal answered
        try:
            # A connection per request, so the kernel hands them to either process.
            async with httpx.AsyncClient(base_url=base) as http:
                ok = (await http.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False
        answered += ok
        return ok

    try:
        # Each process imports the app on its own: seconds each, without compiled bytecode.
        await wait_for(healthy, timeout=120)
        for _ in range(40):
            assert await healthy()
        async with httpx.AsyncClient(base_url=base) as http:
            metrics = (await http.get("/metrics")).text
    finally:
        stop([api])
    assert healthz_count(metrics) == answered
    assert api.returncode == 0
