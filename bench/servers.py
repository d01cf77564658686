"""The servers under a benchmark: Postgres, Redis and the fake platform, each its own.

Postgres comes from ``herald_dev.stack.open_stack`` (``HERALD_DATABASE_URL`` when set, else the
embedded server under ``.herald/``); each run gets a fresh database built by the migrations
and dropped afterwards. Redis is a private server on a free port. The fake platform
(bench/fake_platform.py) runs as its own process and is asked what reached it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.services import spawn_module, stop
from herald_common.db.migrate import upgrade
from herald_dev.embedded_redis import server_binary
from herald_dev.stack import open_stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_http(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer within {within} s") from None
                await asyncio.sleep(0.05)


# --- Postgres -------------------------------------------------------------------------------


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database, migrated to head, on the dev stack's Postgres; dropped afterwards."""
    with open_stack("herald_bench") as stack:
        server = make_url(stack.database_url)
        admin = server.set(database="postgres").render_as_string(False)
        name = f"herald_bench_{os.getpid()}"
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
        url = server.set(database=name).render_as_string(False)
        try:
            upgrade(url)
            yield url
        finally:
            asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- Redis ----------------------------------------------------------------------------------


class RedisServer:
    """A private Redis on a free port, no persistence (as tests/chaos/harness.py)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="herald-bench-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        binary = shutil.which("redis-server") or str(server_binary())
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        asyncio.run(self._wait_ready())
        return self

    async def _wait_ready(self) -> None:
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except (OSError, RedisConnectionError):
                    await asyncio.sleep(0.05)
            raise RuntimeError("bench Redis did not start")
        finally:
            await client.aclose()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


# --- Fake platform --------------------------------------------------------------------------


@contextmanager
def fake_platform(latency_ms: float, fail_rate: float = 0.0) -> Iterator[str]:
    """bench.fake_platform in its own process; yields its base URL."""
    port = free_port()
    process = spawn_module(
        ["bench.fake_platform", "--port", str(port), "--latency-ms", str(latency_ms),
         "--fail-rate", str(fail_rate)]
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_http(base + "/_bench/arrivals"))
        yield base
    finally:
        stop([process])


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # Unix time the request reached the fake
    key: str  # Idempotency-Key header
    status: int


async def arrivals(base: str) -> list[Arrival]:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(base + "/_bench/arrivals")
        response.raise_for_status()
        return [Arrival(at, key, status) for at, key, status in response.json()]


async def reset_arrivals(base: str) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        (await client.post(base + "/_bench/reset")).raise_for_status()
