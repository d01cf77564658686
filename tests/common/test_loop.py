"""herald_common.loop.stop_signals: how the long-running services hear that they must stop."""

from __future__ import annotations

import asyncio
import os
import signal

from herald_common.loop import stop_signals


async def test_stop_signals_reach_the_handler_inside_and_are_given_back_outside() -> None:
    heard = asyncio.Event()
    with stop_signals(heard.set):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
        await asyncio.wait_for(heard.wait(), timeout=5)
    # Outside, Ctrl-C is Python's own again (a KeyboardInterrupt), not the service's.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
