"""What the media API does: store a picture after checking it really is one, read it back,
delete it when no post that may still be published names it. Always within one workspace."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageMode, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.media.inflation import Overinflated, check_png
from herald_api.problems import FieldProblem, ProblemError
from herald_common.db.models import Media, Post
from herald_common.db.repositories.media import media_by_id
from herald_common.platforms.base import MEDIA_TYPES
from herald_common.platforms.base import Media as MediaInfo
from herald_common.statuses import PostStatus

# Pillow's names for the formats Herald stores.
FORMATS = dict(zip(("JPEG", "PNG", "GIF", "WEBP"), MEDIA_TYPES, strict=True))
# Larger than any platform takes (LinkedIn: 36,152,320), small enough that checking a
# picture cannot exhaust the API's memory (a decompression bomb is refused unread).
MAX_PIXELS = 40_000_000
# Posts in these states may still be published, so their pictures must stay.
USING = (PostStatus.DRAFT, PostStatus.SCHEDULED, PostStatus.PUBLISHING)


@dataclass(frozen=True, slots=True)
class Picture:
    content_type: str
    width: int
    height: int


def _inspect(data: bytes, max_decoded_bytes: int) -> Picture:
    """What ``data`` is, checked by decoding its structure rather than trusting a name or
    header; raises ProblemError for anything that is not a whole picture Herald stores, or
    that would take more than ``max_decoded_bytes`` once decoded (a decompression bomb)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as picture:
                kind, (width, height) = picture.format, picture.size
                if width * height > MAX_PIXELS:
                    raise _too_many_pixels(width, height)
                frames = getattr(picture, "n_frames", 1)
                decoded = width * height * _bytes_per_pixel(picture.mode) * frames
                if decoded > max_decoded_bytes:
                    raise _too_large_decoded(decoded, max_decoded_bytes, frames)
                picture.verify()
        check_png(data)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _too_many_pixels(0, 0) from None
    except Overinflated as exc:
        raise ProblemError(
            422,
            "picture-too-large",
            f"The picture's pixel data {exc} (a decompression bomb); save it again.",
            [FieldProblem(field="file", message=f"The pixel data {exc}.")],
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ProblemError(
            415,
            "unsupported-media-type",
            "The file is not a JPEG, PNG, GIF or WebP picture, or it is damaged.",
        ) from None
    content_type = FORMATS.get(kind or "")
    if content_type is None:
        raise ProblemError(
            415,
            "unsupported-media-type",
            f"Herald stores JPEG, PNG, GIF and WebP pictures; this file is {kind}.",
        )
    return Picture(content_type, width, height)


def _bytes_per_pixel(mode: str) -> int:
    """Bytes one pixel takes once decoded in Pillow's ``mode`` (RGB 3, RGBA 4, I;16 2)."""
    described = ImageMode.getmode(mode)
    return len(described.bands) * int(described.typestr[-1])


def _too_many_pixels(width: int, height: int) -> ProblemError:
    size = f" ({width} x {height})" if width else ""
    return ProblemError(
        422,
        "picture-too-large",
        f"The picture has more than {MAX_PIXELS:,} pixels{size}; scale it down.",
        [FieldProblem(field="file", message=f"At most {MAX_PIXELS:,} pixels.")],
    )


def _too_large_decoded(decoded: int, limit: int, frames: int) -> ProblemError:
    of_frames = f" in {frames} frames" if frames > 1 else ""
    return ProblemError(
        422,
        "picture-too-large",
        f"The picture takes {decoded:,} bytes once decoded{of_frames}; Herald stores pictures "
        f"up to {limit:,} (HERALD_MEDIA_MAX_DECODED_BYTES). Scale it down or use fewer frames.",
        [FieldProblem(field="file", message=f"At most {limit:,} bytes once decoded.")],
    )


async def store(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    data: bytes,
    alt_text: str | None,
    *,
    max_decoded_bytes: int,
) -> Media:
    if not data:
        raise ProblemError(
            422,
            "validation-failed",
            "The file is empty.",
            [FieldProblem(field="file", message="Send the picture's bytes.")],
        )
    # Parsing and inflating are CPU work: off the event loop, so other requests keep moving.
    picture = await asyncio.to_thread(_inspect, data, max_decoded_bytes)
    media = Media(
        workspace_id=workspace_id,
        content_type=picture.content_type,
        size_bytes=len(data),
        width=picture.width,
        height=picture.height,
        alt_text=alt_text,
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )
    session.add(media)
    await session.commit()
    return media


def _not_found() -> ProblemError:
    return ProblemError(404, "media-not-found", "No picture with this id in this workspace.")


async def get(session: AsyncSession, workspace_id: uuid.UUID, media_id: uuid.UUID) -> Media:
    media = await session.scalar(
        select(Media).where(Media.workspace_id == workspace_id, Media.id == media_id)
    )
    if media is None:
        raise _not_found()
    return media


async def content(
    session: AsyncSession, workspace_id: uuid.UUID, media_id: uuid.UUID
) -> tuple[str, bytes]:
    row = (
        await session.execute(
            select(Media.content_type, Media.data).where(
                Media.workspace_id == workspace_id, Media.id == media_id
            )
        )
    ).one_or_none()
    if row is None:
        raise _not_found()
    return row.content_type, row.data


async def list_media(
    session: AsyncSession, workspace_id: uuid.UUID, after_id: uuid.UUID | None, limit: int
) -> Sequence[Media]:
    query = select(Media).where(Media.workspace_id == workspace_id)
    if after_id is not None:
        query = query.where(Media.id < after_id)
    return (await session.scalars(query.order_by(Media.id.desc()).limit(limit))).all()


async def delete(session: AsyncSession, workspace_id: uuid.UUID, media_id: uuid.UUID) -> None:
    media = await session.scalar(
        select(Media)
        .where(Media.workspace_id == workspace_id, Media.id == media_id)
        .with_for_update()
    )
    if media is None:
        raise _not_found()
    using = await session.scalar(
        select(Post.id)
        .where(
            Post.workspace_id == workspace_id,
            Post.media_ids.contains([media_id]),
            Post.status.in_(USING),
        )
        .limit(1)
    )
    if using is not None:
        raise ProblemError(
            409,
            "media-in-use",
            f"Post {using} may still be published with this picture; remove it from the "
            "post (or cancel the post) first.",
        )
    await session.delete(media)
    await session.commit()


async def resolve(
    session: AsyncSession, workspace_id: uuid.UUID, media_ids: Sequence[uuid.UUID]
) -> tuple[list[MediaInfo], list[FieldProblem]]:
    """The pictures a post names, in its order, and a problem for each that is not one of the
    workspace's (for ``media_ids[i]``)."""
    stored = await media_by_id(session, [workspace_id], media_ids)
    found = {media_id: media for (_, media_id), media in stored.items()}
    problems = [
        FieldProblem(
            field=f"media_ids[{i}]",
            message="No picture with this id in this workspace; upload it with POST /v1/media.",
        )
        for i, media_id in enumerate(media_ids)
        if media_id not in found
    ]
    return [found[m] for m in media_ids if m in found], problems
