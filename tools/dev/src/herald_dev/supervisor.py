"""Runs services as child processes, streams their output prefixed with their name, and stops
them together (dev-only)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass

# How long a service gets to finish its in-flight work after SIGTERM before it is killed:
# longer than the publisher's own drain (HERALD_PUBLISHER_GRACE_SECONDS, 25 s by default).
GRACE_SECONDS = 30.0
# Longest output line passed on whole; structlog's JSON lines with tracebacks can be long.
LINE_LIMIT_BYTES = 1 << 20


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    output: asyncio.Task[None]


class Supervisor:
    def __init__(self, env: dict[str, str], name_width: int) -> None:
        self.env = env
        self.name_width = name_width
        self.children: list[Child] = []

    async def start(self, name: str, argv: list[str]) -> None:
        # Each child leads its own process group: a Ctrl-C in the terminal reaches only this
        # supervisor, which then stops every service once, in order, instead of each service
        # seeing SIGINT and then SIGTERM on top of it.
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=LINE_LIMIT_BYTES,
            process_group=0,
        )
        assert process.stdout is not None
        prefix = f"{name:<{self.name_width}} | "
        output = asyncio.create_task(_stream(prefix, process.stdout))
        self.children.append(Child(name, process, output))

    async def first_exit(self) -> Child:
        """Waits until any child exits and returns it."""
        waits = {asyncio.create_task(c.process.wait()): c for c in self.children}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[next(iter(done))]

    async def stop_all(self) -> list[str]:
        """SIGTERM every child's process group, SIGKILL what is left after the grace period.
        Returns the names of the children that had to be killed."""
        self._signal_all(signal.SIGTERM)
        waits = [asyncio.create_task(c.process.wait()) for c in self.children]
        if waits:
            await asyncio.wait(waits, timeout=GRACE_SECONDS)
        killed = [c.name for c in self.children if c.process.returncode is None]
        self.kill_all()
        await asyncio.gather(*(c.process.wait() for c in self.children))
        if self.children:  # let the last lines of output through
            await asyncio.wait([c.output for c in self.children], timeout=GRACE_SECONDS)
        return killed

    def kill_all(self) -> None:
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, signum: signal.Signals) -> None:
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):  # the whole group already exited
                os.killpg(child.process.pid, signum)


async def _stream(prefix: str, stream: asyncio.StreamReader) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # asyncio drops a line longer than the limit; say so
            sys.stdout.write(f"{prefix}[line longer than {LINE_LIMIT_BYTES} bytes dropped]\n")
            continue
        if not line:
            return
        sys.stdout.write(prefix + line.decode(errors="replace").rstrip("\r\n") + "\n")
        sys.stdout.flush()
