""" "The request may have left": written just before a request goes to the platform.

A worker that dies between sending and recording leaves its target ``publishing``; whoever
takes the claim over must know whether the request may have reached the platform (ask it
before anything is sent again) or certainly did not (send it). That fact is ``sent_at``,
committed before the network write. Writing it for each request on its own would cost a
transaction per post, so every attempt that is ready at the same moment shares one: the
targets of a job reach this point together, and a job pays one round trip.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.repositories.claims import ClaimedTarget, mark_sending


class ClaimLost(Exception):
    """The target's claim was taken over before its request went out: it must not be sent."""


class SendJournal:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._waiting: list[ClaimedTarget] = []
        self._write: asyncio.Future[set[uuid.UUID]] | None = None

    async def about_to_send(self, target: ClaimedTarget) -> None:
        """Return once ``target``'s "may have left" is committed; raise ClaimLost when its
        claim no longer holds (nothing may be sent for it)."""
        self._waiting.append(target)
        if self._write is None:
            self._write = asyncio.ensure_future(self._flush())
        # Shielded: an attempt cancelled while waiting must not cancel its neighbours' write.
        if target.id not in await asyncio.shield(self._write):
            raise ClaimLost(f"the claim on target {target.id} was taken over")

    async def _flush(self) -> set[uuid.UUID]:
        # One turn of the event loop: the attempts ready in this same moment join the write.
        await asyncio.sleep(0)
        batch, self._waiting, self._write = self._waiting, [], None
        async with self._sessions() as session:
            marked = await mark_sending(session, batch, clock.now())
            await session.commit()
        return marked
