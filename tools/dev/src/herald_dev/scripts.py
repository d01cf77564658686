"""The workspace's console scripts (herald-migrate, ruff, pytest ...), found beside the running
interpreter so ``.venv/bin/herald-dev`` works without an activated venv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


class ScriptNotFoundError(Exception):
    pass


def script(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ScriptNotFoundError(f"`{name}` is not installed in this environment: run `uv sync`")
    return found
