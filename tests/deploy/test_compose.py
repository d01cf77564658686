"""docker-compose.yml runs what the image ships, checks every service's health, and starts
the services in order. (`make test` also runs `docker compose config -q` where Compose is
installed; this test needs no Docker at all.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from herald_common.settings import DEV_ENCRYPTION_KEY, Settings
from tests.deploy.manifests import ROOT, console_scripts

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "herald:local"
    }


def test_each_service_runs_a_shipped_entry_point(services: dict[str, Any]) -> None:
    commands = {name: service["command"][0] for name, service in services.items()}
    assert commands == {
        "migrate": "herald-migrate",
        "api": "herald-api",
        "scheduler": "herald-scheduler",
        "publisher": "herald-publisher",
        "analytics": "herald-analytics",
        "ai-worker": "herald-ai-worker",
    }
    assert set(commands.values()) <= console_scripts()


def test_services_start_in_order_and_report_their_health(services: dict[str, Any]) -> None:
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, service in services.items():
        if name == "migrate":
            continue
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }, name
        probe = " ".join(service["healthcheck"]["test"])
        port = "8000" if name == "api" else "9100"
        assert re.search(rf"127\.0\.0\.1:{port}/readyz", probe), (name, probe)


def test_environment_names_only_real_settings(services: dict[str, Any]) -> None:
    known = {f"HERALD_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        assert set(service["environment"]) <= known, name


def test_compose_starts_in_a_mode_that_refuses_the_development_keys_unless_told_dev(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        assert "HERALD_ENCRYPTION_KEYS" not in service["environment"], name
        assert "HERALD_JWT_SIGNING_KEY" not in service["environment"], name
        chosen = re.fullmatch(
            r"\$\{HERALD_ENVIRONMENT:-(\w+)\}", service["environment"]["HERALD_ENVIRONMENT"]
        )
        assert chosen is not None, (name, service["environment"]["HERALD_ENVIRONMENT"])
        default = chosen.group(1)
        assert default != "dev", name
        with pytest.raises(ValidationError, match="development key"):
            Settings(
                environment=default,
                encryption_keys=[DEV_ENCRYPTION_KEY],
                jwt_signing_key=Settings.DEV_JWT_SIGNING_KEY,
            )


def test_publishers_get_longer_than_their_drain_to_stop(services: dict[str, Any]) -> None:
    grace = Settings.model_fields["publisher_grace_seconds"].default
    stop_after = services["publisher"]["stop_grace_period"]
    assert stop_after.endswith("s")
    assert float(stop_after[:-1]) >= grace + 5


def compose_installed() -> bool:
    if shutil.which("docker") is None:
        return False
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return version.returncode == 0


@pytest.mark.skipif(not compose_installed(), reason="Docker Compose is not installed")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "observability", "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
