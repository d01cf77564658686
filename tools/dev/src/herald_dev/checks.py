"""The checks behind ``make test``, ``make lint`` and ``make typecheck``: one list, one place."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from herald_dev.datadir import repo_root
from herald_dev.scripts import script

# Every top-level directory holding Python code. mypy resolves the src-layout packages through
# `mypy_path` in the root pyproject.toml; a directory with no .py file yet (bench/) is skipped
# because mypy refuses an empty target.
TYPED_DIRS = ("libs", "services", "tools", "tests", "bench")

Step = tuple[str, list[str]]


def lint_steps() -> list[Step]:
    return [
        ("ruff check", [script("ruff"), "check", "."]),
        ("ruff format", [script("ruff"), "format", "--check", "."]),
    ]


def typecheck_steps() -> list[Step]:
    root = repo_root()
    dirs = [d for d in TYPED_DIRS if any((root / d).glob("**/*.py"))]
    return [("mypy", [script("mypy"), *dirs])]


def compose_steps() -> list[Step]:
    """``docker compose config -q`` checks docker-compose.yml (no engine needed) where Docker
    Compose is installed; elsewhere the step is skipped with a note."""
    docker = shutil.which("docker")
    if docker is None:
        print("herald-dev: no docker CLI; skipping `docker compose config -q`", file=sys.stderr)
        return []
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        print(
            "herald-dev: docker has no compose plugin; skipping `docker compose config -q`",
            file=sys.stderr,
        )
        return []
    return [("docker compose config", [docker, "compose", "config", "-q"])]


def peer_steps() -> list[Step]:
    """Install the node peers the tests run (a real Bluesky PDS, twitter-text) from their lock
    files before pytest starts, so a cold install (about two minutes for the PDS) is not
    counted against a test's timeout. Where node or npm is missing those tests fail, saying
    so (tests/peers/node.py), and this says it first."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        print(
            "herald-dev: Node.js and npm are not both on PATH: the tests of the node peers "
            "(tests/peers) will fail; install Node.js 20 with npm",
            file=sys.stderr,
        )
        return []
    return [
        (
            f"npm ci {lock.parent.name}",
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(lock.parent)],
        )
        for lock in sorted((repo_root() / "tests" / "peers").glob("*/package-lock.json"))
        if not (lock.parent / "node_modules").is_dir()
    ]


def pytest_step(args: list[str]) -> Step:
    return ("pytest", [script("pytest"), *args])


def run_steps(steps: list[Step], env: dict[str, str] | None = None) -> int:
    """Runs every step (a lint error should not hide the test results) and returns the first
    failing step's exit code, or 0."""
    codes: list[tuple[str, int]] = []
    for name, argv in steps:
        shown = " ".join([Path(argv[0]).name, *argv[1:]])
        print(f"herald-dev: $ {shown}", file=sys.stderr, flush=True)
        result = subprocess.run(argv, cwd=repo_root(), env=env, stdin=subprocess.DEVNULL)
        codes.append((name, result.returncode))
    summary = ", ".join(f"{name}: {f'exit {code}' if code else 'ok'}" for name, code in codes)
    print(f"herald-dev: {summary}", file=sys.stderr, flush=True)
    return next((code for _, code in codes if code), 0)
