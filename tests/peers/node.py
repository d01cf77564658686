"""Running the node programs under tests/peers/ (real third-party code used as test oracles
and servers). Each lives in its own folder with a committed package-lock.json, installed
with ``npm ci --prefix tests/peers/<name>`` (``make test`` does that up front; a test that
finds its peer missing installs it itself, so a fresh clone still runs every test).

Node.js and npm must be installed (the machine's, on PATH): a test of a peer fails, saying
so, where they are not. It never skips: a suite that passed without its peers would claim
checks it did not make."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PEERS = Path(__file__).parent
# What the peers' lock files were made with and run on (better-sqlite3 10 under the PDS).
NODE_NEEDED = "Node.js 20 with npm"
# A cold install of the Bluesky peer (PDS, PLC, a native SQLite build) takes 2-4 minutes.
INSTALL_TIMEOUT_SECONDS = 600


def peer_dir(name: str) -> Path:
    """The installed peer's folder (installed first if need be)."""
    folder = PEERS / name
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the {name} peer (tests/peers/{name}) runs under Node.js, and "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH: "
            f"install {NODE_NEEDED} (Debian: apt-get install nodejs npm)",
            pytrace=False,
        )
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
