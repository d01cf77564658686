"""HTTP for pictures: thin; the behaviour lives in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Response, status

from herald_api.deps import ResourcesDep, SessionDep, WorkspaceDep
from herald_api.media import service
from herald_api.media.schemas import MediaOut, MediaPage, MediaUpload
from herald_api.pagination import CursorQuery, LimitQuery, decode_cursor, page
from herald_api.problems import CONFLICT, NOT_FOUND, ProblemError, problem_doc
from herald_common.db.models import Media

router = APIRouter(prefix="/v1/media", tags=["media"])
BINARY = {"type": "string", "format": "binary"}


def _out(media: Media) -> MediaOut:
    return MediaOut.model_validate(media, from_attributes=True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MediaOut,
    responses={415: problem_doc("The file is not a JPEG, PNG, GIF or WebP picture.")},
)
async def upload_media(
    session: SessionDep,
    workspace_id: WorkspaceDep,
    resources: ResourcesDep,
    response: Response,
    upload: Annotated[MediaUpload, File()],
) -> MediaOut:
    """Store a picture to attach to posts (multipart/form-data). Its type is read from the
    bytes; each platform's own limits are checked when a post names it."""
    limit = resources.settings.media_max_bytes
    data = await upload.file.read(limit + 1)
    if len(data) > limit:
        raise ProblemError(
            413, "body-too-large", f"Pictures are stored up to {limit} bytes; this one is larger."
        )
    media = await service.store(
        session,
        workspace_id,
        data,
        upload.alt_text,
        max_decoded_bytes=resources.settings.media_max_decoded_bytes,
    )
    response.headers["Location"] = f"/v1/media/{media.id}"
    return _out(media)


@router.get("", response_model=MediaPage)
async def list_media(
    session: SessionDep,
    workspace_id: WorkspaceDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> MediaPage:
    """The workspace's pictures, newest first, a page at a time."""
    fetched = await service.list_media(session, workspace_id, decode_cursor(cursor), limit + 1)
    items, next_cursor = page(fetched, limit, lambda media: media.id)
    return MediaPage(items=[_out(m) for m in items], next_cursor=next_cursor)


@router.get("/{media_id:uuid}", response_model=MediaOut, responses=NOT_FOUND)
async def get_media(
    session: SessionDep, workspace_id: WorkspaceDep, media_id: uuid.UUID
) -> MediaOut:
    """A picture's details."""
    return _out(await service.get(session, workspace_id, media_id))


@router.get(
    "/{media_id:uuid}/content",
    response_class=Response,
    responses={
        200: {
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in service.FORMATS.values()
            },
            "description": "The picture's bytes, as uploaded.",
        },
        **NOT_FOUND,
    },
)
async def get_media_content(
    session: SessionDep, workspace_id: WorkspaceDep, media_id: uuid.UUID
) -> Response:
    """The picture itself, e.g. for a preview."""
    content_type, data = await service.content(session, workspace_id, media_id)
    return Response(
        data,
        media_type=content_type,
        headers={"Cache-Control": "private, max-age=3600", "Content-Disposition": "inline"},
    )


@router.delete(
    "/{media_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, **CONFLICT},
)
async def delete_media(
    session: SessionDep, workspace_id: WorkspaceDep, media_id: uuid.UUID
) -> None:
    """Delete a picture. Refused with 409 while a draft, scheduled or publishing post names it."""
    await service.delete(session, workspace_id, media_id)
