"""Where the embedded servers keep their files, and the small state shared between runs."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "HERALD_DATA_DIR"
DEFAULT_DIR_NAME = ".herald"
# The workspace root is the directory holding uv.lock; the data dir lives there by default so
# `make run` from any subdirectory finds the same servers.
ROOT_MARKER = "uv.lock"


def repo_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / ROOT_MARKER).is_file():
            return directory
    return here


def data_dir() -> Path:
    configured = os.environ.get(DATA_DIR_ENV)
    path = Path(configured).expanduser() if configured else repo_root() / DEFAULT_DIR_NAME
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def text_since(path: Path, offset: int) -> str:
    """What was appended to a server's log file after ``offset`` bytes."""
    if not path.exists():
        return ""
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


class StackState:
    """``stack.json`` in the data dir: chosen ports, who is using the servers, whether to stop
    them when the last user leaves. Read and written only while holding ``locked()``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "stack.json"
        self.values: dict[str, Any] = {}
        if self.path.exists():
            self.values = json.loads(self.path.read_text() or "{}")

    def get_int(self, key: str) -> int | None:
        value = self.values.get(key)
        return value if isinstance(value, int) else None

    def live_users(self) -> list[int]:
        users = self.values.get("users", [])
        return [pid for pid in users if isinstance(pid, int) and _alive(pid)]

    def save(self) -> None:
        self.path.write_text(json.dumps(self.values, indent=2) + "\n")


@contextmanager
def locked(directory: Path) -> Iterator[StackState]:
    """Serialises starting, reusing and stopping across concurrent ``herald-dev`` processes."""
    with (directory / "stack.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        state = StackState(directory)
        try:
            yield state
        finally:
            state.save()
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
