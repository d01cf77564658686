"""Find or start Postgres and Redis for a dev or test run (dev-only).

A URL in ``HERALD_DATABASE_URL`` / ``HERALD_REDIS_URL`` is used when it answers and is an
error when it does not (no silent fallback: a typo should not quietly give you an empty
database). Unset, the server is embedded under the data dir, reused if a previous run left it
running there, and stopped again when the last ``herald-dev`` process that needed it exits,
unless ``herald-dev env`` pinned it to keep running (which is said on the way out).

An embedded server's port is the one ``HERALD_EMBEDDED_POSTGRES_PORT`` /
``HERALD_EMBEDDED_REDIS_PORT`` pin, else the one it had last time, else the default, else any
free one. A port found free can still be taken by another process before the server binds
it (two stacks starting at once prefer the same default); the server then starts again on
another free port, unless the port was pinned.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from herald_dev import probe
from herald_dev.datadir import StackState, data_dir, locked
from herald_dev.embedded_postgres import SUPERUSER, EmbeddedPostgres
from herald_dev.embedded_redis import EmbeddedRedis
from herald_dev.ports import (
    HOST,
    POSTGRES_PORT,
    POSTGRES_PORT_ENV,
    REDIS_PORT,
    REDIS_PORT_ENV,
    PortSettingError,
    PortTakenError,
    choose_port,
    free_port,
    pin_port,
    port_is_free,
)

DATABASE_URL_ENV = "HERALD_DATABASE_URL"
REDIS_URL_ENV = "HERALD_REDIS_URL"
DEV_DATABASE = "herald"
# `make test` gets a database of its own so it never wipes what `make run` created.
TEST_DATABASE = "herald_test"
# Starts of an embedded server, each on a fresh free port, before giving up: a port taken
# between the check and the bind is a race with another process, rarely lost twice in a row.
START_ATTEMPTS = 5


class StackError(Exception):
    """A configured server does not answer, or an embedded one could not start."""


@dataclass(frozen=True)
class Stack:
    database_url: str
    redis_url: str

    def env(self) -> dict[str, str]:
        return {DATABASE_URL_ENV: self.database_url, REDIS_URL_ENV: self.redis_url}


@contextmanager
def open_stack(database: str = DEV_DATABASE, *, keep_running: bool = False) -> Iterator[Stack]:
    database_url = _configured(DATABASE_URL_ENV, probe.postgres_error)
    redis_url = _configured(REDIS_URL_ENV, probe.redis_error)
    if database_url and redis_url:
        yield Stack(database_url, redis_url)
        return
    directory = data_dir()
    me = os.getpid()
    with locked(directory) as state:
        try:
            if not database_url:
                database_url = _embedded_postgres(directory, state, database, keep_running)
            if not redis_url:
                redis_url = _embedded_redis(directory, state, keep_running)
        except StackError:
            if not state.live_users():  # do not leave half a stack running
                _stop(directory, state, only_auto=True)
            raise
        state.values["users"] = [*state.live_users(), me]
    try:
        yield Stack(database_url, redis_url)
    finally:
        with locked(directory) as state:
            users = [pid for pid in state.live_users() if pid != me]
            state.values["users"] = users
            if users:
                _note(
                    "the embedded servers keep running: herald-dev process "
                    f"{', '.join(map(str, users))} still uses them"
                )
            else:
                _stop(directory, state, only_auto=True)
                _say_what_stays_pinned(directory, state)


def stop_embedded() -> None:
    """Stops the embedded servers in the data dir, whoever started them."""
    with locked(data_dir()) as state:
        _stop(data_dir(), state, only_auto=False)
        state.values["users"] = []


def _configured(name: str, error_of: probe.Check) -> str | None:
    url = os.environ.get(name)
    if not url:
        return None
    error = error_of(url)
    if error is not None:
        raise StackError(
            f"{name}={redact(url)} does not answer ({error}).\n"
            f"Start that server, or unset {name} to use an embedded one under the data dir."
        )
    return url


def _embedded_postgres(directory: Path, state: StackState, database: str, keep: bool) -> str:
    server = EmbeddedPostgres(directory / "postgres")
    port = server.running_port()
    if port is None:
        where = f"data in {server.pgdata}"
        port = _start("Postgres", server.start, where, POSTGRES_PORT_ENV, POSTGRES_PORT, state)
        state.values["postgres_port"] = port
        state.values["postgres_auto_stop"] = not keep
    elif keep:
        state.values["postgres_auto_stop"] = False
    url = f"postgresql+asyncpg://{SUPERUSER}@{HOST}:{port}/{database}"
    error = probe.postgres_error(url)  # also creates the database on first use
    if error is not None:
        raise StackError(
            f"embedded Postgres on port {port} does not answer: {error}\n"
            f"If no Postgres runs on {server.pgdata}, delete its postmaster.pid; log: {server.log}"
        )
    return url


def _embedded_redis(directory: Path, state: StackState, keep: bool) -> str:
    server = EmbeddedRedis(directory / "redis")
    port = state.get_int("redis_port")
    if port is None or not server.answers(port):
        where = f"data in {server.directory}"
        port = _start("Redis", server.start, where, REDIS_PORT_ENV, REDIS_PORT, state)
        state.values["redis_port"] = port
        state.values["redis_auto_stop"] = not keep
    elif keep:
        state.values["redis_auto_stop"] = False
    return f"redis://{HOST}:{port}/0"


def _start(
    name: str, start: Callable[[int], None], where: str, variable: str, default: int,
    state: StackState,
) -> int:  # fmt: skip
    """Starts an embedded server on its pinned port, or on a free one (another if that is
    taken before the server binds it); returns the port."""
    try:
        pinned = pin_port(variable)
    except PortSettingError as exc:
        raise StackError(str(exc)) from exc
    if pinned is not None and not port_is_free(pinned):
        raise StackError(f"{variable}={pinned}, but that port is in use: free it, or unset it")
    key = f"{name.lower()}_port"
    port = pinned if pinned is not None else choose_port(default, state.get_int(key))
    for attempt in range(1, START_ATTEMPTS + 1):
        _note(f"starting embedded {name} on {HOST}:{port} ({where})")
        try:
            start(port)
        except PortTakenError as exc:
            if pinned is not None:
                raise StackError(f"{variable}={pinned}, but {exc}: free it, or unset it") from exc
            if attempt == START_ATTEMPTS:
                raise StackError(
                    f"embedded {name} found each of {START_ATTEMPTS} free ports taken before "
                    f"it could bind them; set {variable} to a port kept for it"
                ) from exc
            taken, port = port, free_port()
            _note(f"port {taken} was taken by another process before {name} bound it")
        except (RuntimeError, OSError) as exc:
            raise StackError(str(exc)) from exc
        else:
            return port
    raise AssertionError("unreachable: the last attempt returns or raises")


def _say_what_stays_pinned(directory: Path, state: StackState) -> None:
    """On the way out, names the servers left running because `herald-dev env` pinned them."""
    redis_port = state.get_int("redis_port")
    running = {
        "Postgres": EmbeddedPostgres(directory / "postgres").running_port() is not None,
        "Redis": redis_port is not None and EmbeddedRedis(directory / "redis").answers(redis_port),
    }
    pinned = [
        name
        for name, up in running.items()
        if up and state.values.get(f"{name.lower()}_auto_stop") is False
    ]
    if pinned:
        _note(
            f"embedded {' and '.join(pinned)} keep running in {directory}: `herald-dev env` "
            "pinned them; `herald-dev stop` (or `make clean`) stops them"
        )


def _stop(directory: Path, state: StackState, *, only_auto: bool) -> None:
    postgres = EmbeddedPostgres(directory / "postgres")
    if postgres.running_port() and (state.values.get("postgres_auto_stop") or not only_auto):
        _note("stopping embedded Postgres")
        try:
            postgres.stop()
        except subprocess.CalledProcessError as exc:  # report it; Redis still gets stopped
            _note(f"pg_ctl stop failed ({exc.stderr.strip()}); see {postgres.log}")
    redis = EmbeddedRedis(directory / "redis")
    if redis.pid() and (state.values.get("redis_auto_stop") or not only_auto):
        _note("stopping embedded Redis")
        redis.stop(state.get_int("redis_port"))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _note(message: str) -> None:
    print(f"herald-dev: {message}", file=sys.stderr, flush=True)
