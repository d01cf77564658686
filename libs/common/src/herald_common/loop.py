"""Running a service's process: its event loop (uvloop where it is installed: the publisher
and scheduler depend on it outside Windows; asyncio's own elsewhere), and what it built at
start-up kept out of the garbage collector's way. uvloop cuts the loop's own cost per socket
event, a large share of a publisher's time outside the platforms' HTTP (bench/README.md)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    return uvloop.run(main)


def freeze_startup_objects() -> None:
    """Take what start-up built (modules, routes, schemas, SQLAlchemy's and aiohttp's
    machinery: alive as long as the process) out of the garbage collector's sight.

    A service holds a few hundred thousand such objects and allocates steadily while it
    works, so the collector's older generations kept walking all of them: in the API a pause
    of about 250 ms every thousand requests or so, in a publisher draining a spike about a
    sixth of its CPU per post (bench/README.md). Call it once start-up is done.
    """
    gc.collect()
    gc.freeze()
