"""What the media API answers."""

from __future__ import annotations

import uuid

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field

from herald_api.posts.schemas import UtcDatetime

# Mastodon's limit, the longest of the platforms'; each platform checks its own.
MAX_ALT_TEXT_LENGTH = 1_500


class MediaUpload(BaseModel):
    """A picture to store: multipart/form-data with a ``file`` part."""

    model_config = ConfigDict(extra="forbid")

    file: UploadFile = Field(description="The picture: JPEG, PNG, GIF or WebP.")
    alt_text: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ALT_TEXT_LENGTH,
        description="What the picture shows, for people who cannot see it.",
    )


class MediaOut(BaseModel):
    id: uuid.UUID = Field(description="Name it in a post's `media_ids`.")
    content_type: str = Field(
        description="Read from the picture itself: image/jpeg, image/png, image/gif or image/webp."
    )
    size_bytes: int
    width: int
    height: int
    alt_text: str | None = Field(description="Sent to platforms as the picture's description.")
    sha256: str = Field(description="Hex digest of the stored bytes.")
    created_at: UtcDatetime


class MediaPage(BaseModel):
    items: list[MediaOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
