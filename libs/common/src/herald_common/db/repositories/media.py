"""Pictures as the publisher sees them: their metadata for a job's targets, their bytes when
an adapter uploads them, and what each target uploaded them as. Always within a workspace."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import Media as MediaRow
from herald_common.db.models import MediaUpload
from herald_common.platforms.base import Media


async def media_by_id(
    session: AsyncSession, workspace_ids: Iterable[uuid.UUID], media_ids: Iterable[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], Media]:
    """The metadata (never the bytes) of each picture, keyed by ``(workspace, media id)``."""
    ids, workspaces = set(media_ids), set(workspace_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(
            MediaRow.workspace_id,
            MediaRow.id,
            MediaRow.content_type,
            MediaRow.size_bytes,
            MediaRow.width,
            MediaRow.height,
            MediaRow.alt_text,
        ).where(MediaRow.id.in_(ids), MediaRow.workspace_id.in_(workspaces))
    )
    return {
        (row.workspace_id, row.id): Media(
            id=row.id,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            width=row.width,
            height=row.height,
            alt_text=row.alt_text,
        )
        for row in rows
    }


async def uploads_of(
    session: AsyncSession, target_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID, tuple[str, datetime]]]:
    """For each target, what each of its pictures was uploaded as, and when."""
    ids = set(target_ids)
    found: dict[uuid.UUID, dict[uuid.UUID, tuple[str, datetime]]] = {i: {} for i in ids}
    if not ids:
        return found
    rows = await session.execute(
        select(
            MediaUpload.target_id,
            MediaUpload.media_id,
            MediaUpload.reference,
            MediaUpload.uploaded_at,
        ).where(MediaUpload.target_id.in_(ids))
    )
    for row in rows:
        found[row.target_id][row.media_id] = (row.reference, row.uploaded_at)
    return found


async def media_bytes(
    session: AsyncSession, workspace_id: uuid.UUID, media_id: uuid.UUID
) -> bytes | None:
    return await session.scalar(
        select(MediaRow.data).where(MediaRow.workspace_id == workspace_id, MediaRow.id == media_id)
    )


async def remember_upload(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    target_id: uuid.UUID,
    media_id: uuid.UUID,
    reference: str,
) -> None:
    """Keep (or replace, when an expired one was uploaded again) a target's upload."""
    statement = insert(MediaUpload).values(
        target_id=target_id, media_id=media_id, workspace_id=workspace_id, reference=reference
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[MediaUpload.target_id, MediaUpload.media_id],
            set_={"reference": statement.excluded.reference, "uploaded_at": func.now()},
        )
    )
