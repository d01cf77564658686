"""Herald's services as a benchmark runs them: their own OS processes, started through their
console scripts as production does, with production's settings unless a benchmark says
otherwise."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet

from bench.report import RESULTS
from herald_common.settings import Settings

# Benchmarks run the services in the test environment, which refuses the published
# development keys as production does: each run makes its own, inherited by every service.
os.environ.setdefault("HERALD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("HERALD_JWT_SIGNING_KEY", secrets.token_urlsafe(48))


def bench_settings(database_url: str, redis_url: str, **update: Any) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        log_level="WARNING",
        **update,
    )


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Production defaults except where a benchmark says otherwise: logging too (JSON at
    production's default level), since a log line per post is part of what a post costs."""
    return {
        **os.environ,
        "HERALD_ENVIRONMENT": "test",
        "HERALD_DATABASE_URL": settings.database_url,
        "HERALD_REDIS_URL": settings.redis_url,
        "HERALD_LOG_LEVEL": Settings.model_fields["log_level"].default,
        "HERALD_LOG_FORMAT": "json",
        "HERALD_METRICS_PORT": "0",
        **extra,
    }


LOGS = RESULTS / "logs"


def spawn(entry_point: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A service by its console script, as production starts it; what it logs is appended to
    bench/results/logs/<service>.log (a file, as a container runtime collects it)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    script = os.path.join(os.path.dirname(sys.executable), entry_point)
    with open(LOGS / f"{entry_point}.log", "ab") as log:
        return subprocess.Popen([script], env=env, stdout=log, stderr=subprocess.STDOUT)


def spawn_module(args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], env=env)


def stop(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
