"""Running the node programs under tests/peers/ (real third-party code used as test oracles
and servers). Each lives in its own folder with a committed package-lock.json, installed
with ``npm ci --prefix tests/peers/<name>`` (``make test`` should do that up front; a test
that finds its peer missing installs it itself, so a fresh clone still runs every test)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PEERS = Path(__file__).parent
# A cold install of the Bluesky peer (PDS, PLC, a native SQLite build) takes 2-4 minutes.
INSTALL_TIMEOUT_SECONDS = 600


def peer_dir(name: str) -> Path:
    """The installed peer's folder. Skips only when node or npm is missing."""
    folder = PEERS / name
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(f"node and npm are needed to run the {name} peer and are not installed")
    # One installer at a time, even across concurrent test processes.
    lock_path = Path(tempfile.gettempdir()) / f"herald-peer-{name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "node_modules" / ".package-lock.json").is_file():
            result = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(folder)],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
                check=False,
            )
            if result.returncode != 0:
                pytest.fail(f"npm ci --prefix tests/peers/{name} failed:\n{result.stderr[-2000:]}")
    return folder
