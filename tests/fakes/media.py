"""Pictures for tests: real image bytes made with Pillow, and an in-memory MediaSource for
adapter tests that exercise an adapter alone (the publisher's real source reads Postgres)."""

from __future__ import annotations

import io
import os
import struct
import uuid
import zlib
from dataclasses import dataclass, field

from PIL import Image

from herald_common.platforms.base import Media

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}


def image_bytes(
    content_type: str = "image/png", *, width: int = 8, height: int = 6, noise: bool = False
) -> bytes:
    """A real picture of the given type and size; ``noise`` makes it hard to compress (large)."""
    if noise:
        picture = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        picture = Image.new("RGB", (width, height), (200, 40, 90))
    out = io.BytesIO()
    picture.save(out, format=FORMATS[content_type])
    return out.getvalue()


def media_of(data: bytes, content_type: str = "image/png", *, alt_text: str | None = None) -> Media:
    with Image.open(io.BytesIO(data)) as picture:
        width, height = picture.size
    return Media(
        id=uuid.uuid4(),
        content_type=content_type,
        size_bytes=len(data),
        width=width,
        height=height,
        alt_text=alt_text,
    )


@dataclass
class MemoryMedia:
    """A MediaSource over a dict; records what was read and remembered."""

    files: dict[uuid.UUID, bytes] = field(default_factory=dict)
    remembered: dict[uuid.UUID, str] = field(default_factory=dict)
    reads: list[uuid.UUID] = field(default_factory=list)

    def add(
        self,
        content_type: str = "image/png",
        *,
        alt_text: str | None = None,
        width: int = 8,
        height: int = 6,
        noise: bool = False,
    ) -> Media:
        data = image_bytes(content_type, width=width, height=height, noise=noise)
        media = media_of(data, content_type, alt_text=alt_text)
        self.files[media.id] = data
        return media

    async def read(self, media_id: uuid.UUID) -> bytes:
        self.reads.append(media_id)
        return self.files[media_id]

    async def remember(self, media_id: uuid.UUID, reference: str) -> None:
        self.remembered[media_id] = reference


def png_inflating_to(width: int, height: int, inflated_bytes: int, *, rgba: bool = False) -> bytes:
    """A well-formed PNG (right chunk CRCs) of ``width`` x ``height`` 8-bit RGB (or RGBA)
    pixels whose pixel data inflates to ``inflated_bytes`` of zeros, however many that is.
    Compressed as a stream, so a bomb never sits in the test's memory whole."""
    packer = zlib.compressobj(9)
    piece = bytes(min(inflated_bytes, 1 << 20))
    compressed, left = [], inflated_bytes
    while left > 0:
        compressed.append(packer.compress(piece[: min(left, len(piece))]))
        left -= len(piece)
    compressed.append(packer.flush())
    colour_type = 6 if rgba else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(compressed))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
