"""The pictures of a job's targets: their metadata, read once per job, and a MediaSource per
target that reads the bytes from Postgres only when an adapter uploads them and remembers
each upload at once, in its own transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.repositories.claims import ClaimedTarget
from herald_common.db.repositories.media import (
    media_by_id,
    media_bytes,
    remember_upload,
    uploads_of,
)
from herald_common.platforms.base import Media, Platform
from herald_common.platforms.errors import Rejected


class ByteBudget:
    """At most ``limit`` bytes of pictures in memory at once across a process's attempts: a
    spike of posts with pictures waits for room instead of reading them all together. A
    request larger than the whole budget waits until nothing else holds any, then runs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        # Holds waiting for room right now.
        self.waiting = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        size = min(size, self.limit)
        async with self._changed:
            self.waiting += 1
            try:
                await self._changed.wait_for(lambda: self.held + size <= self.limit)
            finally:
                self.waiting -= 1
            self.held += size
        try:
            yield
        finally:
            async with self._changed:
                self.held -= size
                self._changed.notify_all()


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """One target's MediaSource."""

    sessions: async_sessionmaker[AsyncSession]
    workspace_id: uuid.UUID
    target_id: uuid.UUID

    async def read(self, media_id: uuid.UUID) -> bytes:
        async with self.sessions() as session:
            data = await media_bytes(session, self.workspace_id, media_id)
        if data is None:
            raise Rejected("A picture of this post was deleted before it went out.")
        return data

    async def remember(self, media_id: uuid.UUID, reference: str) -> None:
        async with self.sessions() as session:
            await remember_upload(session, self.workspace_id, self.target_id, media_id, reference)
            await session.commit()


@dataclass(frozen=True, slots=True)
class TargetMedia:
    media: tuple[Media, ...]
    uploaded: dict[uuid.UUID, str]
    # Set when a picture the post names no longer exists: the attempt is refused.
    missing: bool = False


NO_MEDIA = TargetMedia((), {})


async def media_of_job(
    sessions: async_sessionmaker[AsyncSession],
    claimed: Sequence[ClaimedTarget],
    platforms: dict[str, Platform],
) -> dict[uuid.UUID, TargetMedia]:
    """Each claimed target's pictures, in the post's order, and the uploads of earlier
    attempts the platform still keeps. Two reads for the whole job, none without pictures."""
    with_media = [t for t in claimed if t.media_ids]
    if not with_media:
        return {}
    async with sessions() as session:
        found = await media_by_id(
            session,
            (t.workspace_id for t in with_media),
            (m for t in with_media for m in t.media_ids),
        )
        uploads = await uploads_of(session, (t.id for t in with_media))
    now = clock.now()
    result = {}
    for target in with_media:
        items = [found.get((target.workspace_id, m)) for m in target.media_ids]
        ttl = platforms[target.platform].media_reference_ttl
        result[target.id] = TargetMedia(
            media=tuple(item for item in items if item is not None),
            uploaded={
                media_id: reference
                for media_id, (reference, at) in uploads[target.id].items()
                if _fresh(at, now, ttl)
            },
            missing=None in items,
        )
    return result


def _fresh(uploaded_at: datetime, now: datetime, ttl: timedelta | None) -> bool:
    return ttl is None or now - uploaded_at < ttl
