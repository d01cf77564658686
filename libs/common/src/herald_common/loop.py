"""Running a service's process: its event loop (uvloop where it is installed: the publisher
and scheduler depend on it outside Windows; asyncio's own elsewhere), and what it built at
start-up kept out of the garbage collector's way. uvloop cuts the loop's own cost per socket
event, a large share of a publisher's time outside the platforms' HTTP (bench/README.md)."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    return uvloop.run(main)


@contextmanager
def stop_signals(handler: Callable[[], object]) -> Iterator[None]:
    """While inside, SIGTERM (a pod being stopped) and SIGINT (Ctrl-C) call ``handler`` on the
    running event loop; on the way out the handlers are removed, so a caller that embeds the
    service (a test) has its signals back."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


# Allocations (less deallocations) between two collections of the youngest generation;
# CPython's default is 700. A publisher allocates steadily and nearly all of it dies young by
# reference counting, so at 700 it ran ~115 collections per thousand posts; at this it runs
# about one, for a few MB more of cyclic garbage waiting (bench/README.md).
GEN0_THRESHOLD = 20_000


def settle_garbage_collector() -> None:
    """Call once start-up is done: take what start-up built (modules, routes, schemas,
    SQLAlchemy's and aiohttp's machinery: alive as long as the process) out of the garbage
    collector's sight, and collect the youngest generation less often.

    A service holds a few hundred thousand such objects and allocates steadily while it
    works, so the collector's older generations kept walking all of them: in the API a pause
    of about 250 ms every thousand requests or so, in a publisher draining a spike about a
    sixth of its CPU per post; the frequent young collections cost it about a tenth more
    (bench/README.md).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
