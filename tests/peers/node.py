"""Running the node programs under tests/peers/ (real third-party code used as test oracles
and servers). Each lives in its own folder with a committed package-lock.json;
``npm ci --prefix tests/peers/<name>`` installs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PEERS = Path(__file__).parent


def peer_dir(name: str) -> Path:
    """The installed peer's folder. Skips only when node itself is missing; a peer that is
    not installed fails the test, since ``make test`` installs it."""
    folder = PEERS / name
    if shutil.which("node") is None:
        pytest.skip(f"node is not installed, so the {name} peer cannot run")
    if not (folder / "node_modules").is_dir():
        pytest.fail(f"the {name} peer is not installed: run npm ci --prefix tests/peers/{name}")
    return folder
