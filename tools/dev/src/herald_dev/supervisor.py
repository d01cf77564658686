"""Runs services as child processes, streams their output prefixed with their name, restarts
one that dies, and stops them together (dev-only).

A service that exits while nobody asked it to (killed, out of memory, crashed) is started
again after a back-off, as Kubernetes restarts a container; everything stops only when asked
(Ctrl-C) or when one service keeps dying right after it starts, which a restart cannot fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

# How long a service gets to finish its in-flight work after SIGTERM before it is killed:
# longer than the publisher's own drain (HERALD_PUBLISHER_GRACE_SECONDS, 25 s by default).
GRACE_SECONDS = 30.0
# Longest output line passed on whole; structlog's JSON lines with tracebacks can be long.
LINE_LIMIT_BYTES = 1 << 20

# Restarts follow Kubernetes' container back-off (10 s doubling to 5 min, forgotten after
# 10 min of running: kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle, "Container
# restarts"), scaled to a laptop where a person is watching: 1 s doubling to 30 s, forgotten
# after a minute of running. Kubernetes never gives up; here the fifth death in a row, each
# within a minute of starting, stops everything, since the log already shows why.
FIRST_RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0
MAX_QUICK_DEATHS = 5


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_delay_seconds: float = FIRST_RESTART_DELAY_SECONDS
    max_delay_seconds: float = MAX_RESTART_DELAY_SECONDS
    healthy_run_seconds: float = HEALTHY_RUN_SECONDS
    max_quick_deaths: int = MAX_QUICK_DEATHS

    def delay(self, quick_deaths: int) -> float:
        """The wait before the restart that follows this many deaths in a row."""
        return min(self.first_delay_seconds * 2.0 ** (quick_deaths - 1), self.max_delay_seconds)


@dataclass
class Child:
    """One service: the command it runs and, while it runs, its current process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    pass_fds: Sequence[int]
    process: asyncio.subprocess.Process | None = None
    output: asyncio.Task[None] | None = None
    starts: int = 0
    # Deaths in a row, each within `healthy_run_seconds` of its start.
    quick_deaths: int = 0
    keeper: asyncio.Task[None] | None = field(default=None, repr=False)


def note(message: str) -> None:
    print(f"herald-dev: {message}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(
        self,
        env: dict[str, str],
        name_width: int,
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] = note,
    ) -> None:
        self.env = env
        self.name_width = name_width
        self.policy = policy or RestartPolicy()
        self.say = say
        self.children: list[Child] = []
        self._stopping = asyncio.Event()
        self._gave_up: asyncio.Future[Child] = asyncio.get_running_loop().create_future()

    async def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> Child:
        """Starts the service and keeps it running until ``stop_all``; ``env`` is added to the
        supervisor's. ``pass_fds`` are open descriptors (listening sockets) the service
        inherits at the same numbers, each time it is started."""
        child = Child(name, argv, {**self.env, **(env or {})}, pass_fds)
        await self._spawn(child)
        child.keeper = asyncio.create_task(self._keep_running(child))
        self.children.append(child)
        return child

    def gave_up(self) -> asyncio.Future[Child]:
        """Done, with the service, once a service keeps dying; nothing restarts after that."""
        return asyncio.shield(self._gave_up)

    async def stop_all(self) -> list[str]:
        """SIGTERM every child's process group, SIGKILL what is left after the grace period.
        Returns the names of the children that had to be killed."""
        self._stopping.set()
        self._signal_all(signal.SIGTERM)
        keepers = [c.keeper for c in self.children if c.keeper is not None]
        if keepers:
            await asyncio.wait(keepers, timeout=GRACE_SECONDS)
        killed = [c.name for c in self.children if c.keeper is not None and not c.keeper.done()]
        self.kill_all()
        if keepers:
            await asyncio.gather(*keepers)
        outputs = [c.output for c in self.children if c.output is not None]
        if outputs:  # let the last lines of output through
            await asyncio.wait(outputs, timeout=GRACE_SECONDS)
        return killed

    def kill_all(self) -> None:
        self._signal_all(signal.SIGKILL)

    async def _keep_running(self, child: Child) -> None:
        loop = asyncio.get_running_loop()
        while True:
            assert child.process is not None
            started = loop.time()
            code = await child.process.wait()
            if self._stopping.is_set():
                return
            ran = loop.time() - started
            quick = ran < self.policy.healthy_run_seconds
            child.quick_deaths = child.quick_deaths + 1 if quick else 1
            ended = f"{child.name} {_how_it_ended(code)} after {ran:.0f}s"
            if child.quick_deaths >= self.policy.max_quick_deaths:
                self.say(
                    f"{ended}: {child.quick_deaths} times in a row within "
                    f"{self.policy.healthy_run_seconds:.0f}s of starting; stopping everything"
                )
                if not self._gave_up.done():
                    self._gave_up.set_result(child)
                return
            delay = self.policy.delay(child.quick_deaths)
            self.say(f"{ended}; restarting it in {delay:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set() or self._gave_up.done():
                return
            await self._spawn(child)
            assert child.process is not None
            self.say(f"{child.name} restarted (start {child.starts}, pid {child.process.pid})")

    async def _spawn(self, child: Child) -> None:
        # Each child leads its own process group: a Ctrl-C in the terminal reaches only this
        # supervisor, which then stops every service once, in order, instead of each service
        # seeing SIGINT and then SIGTERM on top of it.
        process = await asyncio.create_subprocess_exec(
            *child.argv,
            env=child.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=LINE_LIMIT_BYTES,
            process_group=0,
            pass_fds=child.pass_fds,
        )
        assert process.stdout is not None
        if child.output is not None:  # the last lines of the process before
            await child.output
        prefix = f"{child.name:<{self.name_width}} | "
        child.output = asyncio.create_task(_stream(prefix, process.stdout))
        child.process = process
        child.starts += 1
        if self._stopping.is_set():  # stop_all signalled the others while this one started
            _signal_group(process, signal.SIGTERM)

    def _signal_all(self, signum: signal.Signals) -> None:
        for child in self.children:
            if child.process is not None:
                _signal_group(child.process, signum)


def _signal_group(process: asyncio.subprocess.Process, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group already exited
        os.killpg(process.pid, signum)


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


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
