"""Running a service's event loop: uvloop where it is installed (the publisher and scheduler
depend on it outside Windows), asyncio's own elsewhere. uvloop cuts the loop's own cost per
socket event, a large share of a publisher's time outside the platforms' HTTP
(bench/README.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    return uvloop.run(main)
