"""Does a Postgres or Redis URL answer? Short timeouts: a URL that does not answer at once is
reported, not waited for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

CONNECT_TIMEOUT_SECONDS = 3.0
# SQLSTATEs: the database named in the URL does not exist / was created concurrently.
INVALID_CATALOG_NAME = "3D000"
DUPLICATE_DATABASE = "42P04"
MAINTENANCE_DATABASE = "postgres"

# A check returns None when the server answers, else a one-line reason.
Check = Callable[[str], str | None]


def asyncpg_url(url: str) -> URL:
    return make_url(url).set(drivername="postgresql+asyncpg")


def redis_error(url: str) -> str | None:
    """None when Redis at ``url`` answers PING, else why not."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=CONNECT_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def postgres_error(url: str) -> str | None:
    """None when Postgres at ``url`` answers (creating the URL's database if the server answers
    but the database is missing), else why not."""
    return asyncio.run(_postgres_error(asyncpg_url(url)))


async def _postgres_error(url: URL) -> str | None:
    try:
        await _select_one(url)
    except DBAPIError as exc:
        if _sqlstate(exc) != INVALID_CATALOG_NAME or url.database is None:
            return _describe(exc)
        try:
            await _create_database(url.set(database=MAINTENANCE_DATABASE), url.database)
            await _select_one(url)
        except (DBAPIError, OSError, TimeoutError) as create_exc:
            return f"database {url.database!r} is missing and could not be created: " + (
                _describe(create_exc)
            )
    except (OSError, TimeoutError) as exc:
        return _describe(exc)
    return None


async def _select_one(url: URL) -> None:
    engine = create_async_engine(
        url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_SECONDS}
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def _create_database(maintenance_url: URL, name: str) -> None:
    engine = create_async_engine(
        maintenance_url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",  # CREATE DATABASE cannot run inside a transaction
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )
    quoted = '"' + name.replace('"', '""') + '"'
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE {quoted}"))
    except DBAPIError as exc:
        if _sqlstate(exc) != DUPLICATE_DATABASE:  # another process created it first: fine
            raise
    finally:
        await engine.dispose()


def _sqlstate(exc: DBAPIError) -> str | None:
    # SQLAlchemy's asyncpg adapter keeps the server's SQLSTATE on the wrapped error.
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return state if isinstance(state, str) else None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
