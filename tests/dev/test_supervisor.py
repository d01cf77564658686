"""The supervisor behind `make run`, with real child processes: one killed with SIGKILL is
started again after a back-off and the log says so; only one that keeps dying right after it
starts (or Ctrl-C) stops everything."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable

import pytest

from herald_dev import run
from herald_dev.ports import free_port
from herald_dev.run import _watch
from herald_dev.supervisor import Child, RestartPolicy, Supervisor
from tests.services import wait_for

# A service that runs until stopped, and one that dies at once.
RUNS = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]
DIES = [sys.executable, "-c", "import sys; sys.exit(3)"]
# Quick restarts, so the tests do not wait out a laptop's back-off; what they check is the
# order of events, never how long anything took.
QUICK = RestartPolicy(first_delay_seconds=0.01, max_delay_seconds=0.05, max_quick_deaths=3)
# A bound on waiting for something that should happen at once, on a busy machine.
FACT_TIMEOUT_SECONDS = 30.0


async def until(fact: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return fact()

    await wait_for(holds, timeout=FACT_TIMEOUT_SECONDS, interval=0.01)


def running(child: Child) -> bool:
    return child.process is not None and child.process.returncode is None


def pid_of(child: Child) -> int:
    assert child.process is not None
    return child.process.pid


async def test_a_service_killed_with_sigkill_is_restarted_and_the_log_says_so() -> None:
    said: list[str] = []
    supervisor = Supervisor(dict(os.environ), name_width=9, policy=QUICK, say=said.append)
    publisher = await supervisor.start("publisher", RUNS)
    scheduler = await supervisor.start("scheduler", RUNS)
    try:
        first, other = pid_of(publisher), pid_of(scheduler)
        os.kill(first, signal.SIGKILL)
        await until(lambda: publisher.starts == 2 and running(publisher))
        assert pid_of(publisher) != first
        assert said[0] == "publisher was killed by SIGKILL after 0s; restarting it in 0.01s"
        assert said[1] == f"publisher restarted (start 2, pid {pid_of(publisher)})"
        # Nobody else was touched, and nothing was given up.
        assert pid_of(scheduler) == other and running(scheduler)
        assert not supervisor.gave_up().done()
    finally:
        killed = await supervisor.stop_all()
    assert killed == []
    assert not running(publisher) and not running(scheduler)


async def test_a_service_that_keeps_dying_as_it_starts_stops_everything() -> None:
    said: list[str] = []
    supervisor = Supervisor(dict(os.environ), name_width=9, policy=QUICK, say=said.append)
    steady = await supervisor.start("api", RUNS)
    crashing = await supervisor.start("publisher", DIES)
    try:
        gave_up = await asyncio.wait_for(supervisor.gave_up(), FACT_TIMEOUT_SECONDS)
        assert gave_up is crashing
        assert crashing.starts == QUICK.max_quick_deaths
        assert running(steady)  # the supervisor gives up; stopping the rest is run's to do
    finally:
        await supervisor.stop_all()
    restarts = [line for line in said if "restarting it in" in line]
    assert [line.split(";")[1] for line in restarts] == [
        " restarting it in 0.01s",
        " restarting it in 0.02s",
    ]
    assert said[-1] == (
        "publisher exited with code 3 after 0s: 3 times in a row within 60s of starting; "
        "stopping everything"
    )
    assert not running(steady)


async def test_a_service_that_ran_a_healthy_while_before_dying_is_always_restarted() -> None:
    """Each run here counts as healthy (healthy_run_seconds=0), so each death is the first of
    a new series: never given up, always the first delay."""
    said: list[str] = []
    policy = RestartPolicy(
        first_delay_seconds=0.01, max_delay_seconds=0.05, healthy_run_seconds=0.0,
        max_quick_deaths=2,
    )  # fmt: skip
    supervisor = Supervisor(dict(os.environ), name_width=9, policy=policy, say=said.append)
    crashing = await supervisor.start("analytics", DIES)
    try:
        await until(lambda: crashing.starts >= 2 * policy.max_quick_deaths + 1)
    finally:
        await supervisor.stop_all()
    assert not supervisor.gave_up().done()
    restarts = [line for line in said if "restarting it in" in line]
    assert len(restarts) >= 2 * policy.max_quick_deaths
    assert all(line.endswith("restarting it in 0.01s") for line in restarts)


async def test_stopping_during_a_back_off_starts_nothing_more() -> None:
    said: list[str] = []
    slow = RestartPolicy(first_delay_seconds=600.0, max_delay_seconds=600.0)
    supervisor = Supervisor(dict(os.environ), name_width=9, policy=slow, say=said.append)
    publisher = await supervisor.start("publisher", RUNS)
    os.kill(pid_of(publisher), signal.SIGKILL)
    await until(lambda: any("restarting it in 600s" in line for line in said))
    assert await asyncio.wait_for(supervisor.stop_all(), FACT_TIMEOUT_SECONDS) == []
    assert publisher.starts == 1
    assert not running(publisher)


@pytest.fixture
def stop_requested() -> asyncio.Event:
    return asyncio.Event()


async def test_make_run_keeps_going_through_one_death_and_ends_when_one_keeps_dying(
    api_url: str, stop_requested: asyncio.Event, capsys: pytest.CaptureFixture[str]
) -> None:
    """`herald-dev run`'s watch over the services (against a real API's /readyz): before,
    the first service to exit ended the run."""
    said: list[str] = []
    supervisor = Supervisor(dict(os.environ), name_width=9, policy=QUICK, say=said.append)
    publisher = await supervisor.start("publisher", RUNS)
    watch = asyncio.create_task(_watch(supervisor, stop_requested, api_url, "BANNER"))
    try:
        await until(lambda: "BANNER" in capsys.readouterr().out)
        first = pid_of(publisher)
        os.kill(first, signal.SIGKILL)
        await until(lambda: publisher.starts == 2 and running(publisher))
        assert not watch.done()
        stop_requested.set()  # Ctrl-C
        assert await asyncio.wait_for(watch, FACT_TIMEOUT_SECONDS) == 0
    finally:
        await supervisor.stop_all()

    crashing = Supervisor(dict(os.environ), name_width=9, policy=QUICK, say=said.append)
    await crashing.start("publisher", DIES)
    try:
        watched = _watch(crashing, asyncio.Event(), api_url, "BANNER")
        assert await asyncio.wait_for(watched, FACT_TIMEOUT_SECONDS) == 1
    finally:
        await crashing.stop_all()


# Answers each connection on the inherited listening socket with its own pid.
SERVES_INHERITED = [
    sys.executable,
    "-c",
    "import os, socket\n"
    "listener = socket.socket(fileno=int(os.environ['HERALD_METRICS_FD']))\n"
    "while True:\n"
    "    connection, _ = listener.accept()\n"
    "    connection.sendall(str(os.getpid()).encode())\n"
    "    connection.close()\n",
]


async def pid_answering(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = await reader.read()
    writer.close()
    return int(answer)


async def test_a_restarted_service_serves_the_same_inherited_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """make run's probe sockets: held by herald-dev, handed to every start of the service."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        taken_port, usual = taken.getsockname()[1], free_port()
        monkeypatch.setattr(
            run, "PROBE_PORTS", {"scheduler": taken_port, "publisher": usual, "analytics": 0}
        )
        with run.probe_sockets("127.0.0.1") as probes:
            ports = {name: sock.getsockname()[1] for name, sock in probes.items()}
            probe = probes["publisher"]
            supervisor = Supervisor(dict(os.environ), name_width=9, policy=QUICK, say=print)
            publisher = await supervisor.start(
                "publisher",
                SERVES_INHERITED,
                env={"HERALD_METRICS_FD": str(probe.fileno())},
                pass_fds=(probe.fileno(),),
            )
            try:
                assert await pid_answering(ports["publisher"]) == pid_of(publisher)
                first = pid_of(publisher)
                os.kill(first, signal.SIGKILL)
                await until(lambda: publisher.starts == 2 and running(publisher))
                assert await pid_answering(ports["publisher"]) == pid_of(publisher) != first
            finally:
                await supervisor.stop_all()
    # The usual port when free; any free port (which is printed) when it is taken.
    assert ports["publisher"] == usual
    assert ports["scheduler"] != taken_port
