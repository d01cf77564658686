"""Proving that a statement waits on a row lock: the waiting connection shows up in
Postgres's ``pg_blocking_pids()``. A test waits on that fact (with a generous timeout only as
a failure bound) instead of sleeping a while and finding the task not done, which passes on a
busy machine without proving anything."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.services import wait_for

# A statement waiting on a lock that ``holder`` holds, anywhere in the cluster.
_BLOCKED_BY = text(
    "SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"
)
# A statement of this database waiting on any other's lock.
_ANY_BLOCKED = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0"
)


async def backend_pid(session: AsyncSession) -> int:
    """The server process of the session's connection (and so of its transaction)."""
    pid = await session.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def wait_until_blocked(
    sessions: async_sessionmaker[AsyncSession], holder: int | None = None, timeout: float = 30.0
) -> None:
    """Until some connection waits on a lock held by backend ``holder`` (by any backend of the
    test database when ``None``)."""

    async def blocked() -> bool:
        async with sessions() as session:
            if holder is None:
                waiting = await session.scalar(_ANY_BLOCKED)
            else:
                waiting = await session.scalar(_BLOCKED_BY, {"holder": holder})
        return bool(waiting)

    await wait_for(blocked, timeout=timeout)
