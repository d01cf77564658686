"""Recording when each API key was last used, off the request's path.

A key used a thousand times a minute is written once a minute: this process remembers when
it last wrote each key and skips the write until a minute has passed, and the UPDATE itself
is guarded by the stored time, so several API processes together still write once a minute.
The write runs as a task of its own after authentication, never delaying the request.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.repositories.workspaces import touch_api_key
from herald_common.logging import get_logger

# How stale last_used_at may be: "last used" is for people deciding which keys to revoke.
LAST_USED_RESOLUTION = timedelta(minutes=1)
log = get_logger(__name__)


class KeyUsage:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._written: dict[uuid.UUID, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def touch(self, key_id: uuid.UUID) -> None:
        now = clock.now()
        last = self._written.get(key_id)
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        self._written[key_id] = now
        task = asyncio.create_task(self._write(key_id, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, key_id: uuid.UUID, now: datetime) -> None:
        try:
            async with self._sessions.begin() as session:
                await touch_api_key(session, key_id, now, LAST_USED_RESOLUTION)
        except Exception as exc:  # a lost "last used" time is not worth failing anything for
            log.warning("api key last-used not recorded", error_type=type(exc).__name__)
            self._written.pop(key_id, None)

    async def drain(self) -> None:
        """Wait for writes in flight (at shutdown, and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
