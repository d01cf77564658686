"""Reading a stored picture for the model: the one place AI code reads picture bytes, so
moving them to object storage changes this file alone."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.problems import ProblemError
from herald_common.db.repositories.media import media_by_id, media_bytes


@dataclass(frozen=True, slots=True)
class Picture:
    content_type: str
    data: bytes

    @property
    def data_url(self) -> str:
        """RFC 2397 ``data:`` URL, as chat completions take a picture inline."""
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


async def read_picture(
    session: AsyncSession, workspace_id: uuid.UUID, media_id: uuid.UUID
) -> Picture:
    found = await media_by_id(session, [workspace_id], [media_id])
    meta = found.get((workspace_id, media_id))
    data = await media_bytes(session, workspace_id, media_id) if meta is not None else None
    if meta is None or data is None:
        raise ProblemError(404, "media-not-found", "No picture with this id in this workspace.")
    return Picture(meta.content_type, data)
