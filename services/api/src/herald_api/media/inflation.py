"""How far a PNG's compressed pixel data inflates, checked against what its size needs.

A PNG's header states its size, but its zlib stream may inflate to far more: a 1 x 1 picture
can carry 200 MB of pixel data. Pillow stops decoding once the picture is full, but a
platform's decoder may not, and the file itself is the bomb. So the stream is inflated here in
small pieces (constant memory, nothing kept) and refused once it exceeds the bytes its frame
can use (RFC 2083 / W3C PNG: one filter byte per scanline, Adam7 passes when interlaced).
APNG frames (``fcTL`` then ``fdAT``) are held to their own sizes the same way.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel for each PNG colour type (W3C PNG, 11.2.2 IHDR).
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7: (first column, first row, column step, row step) of each of the seven passes.
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
# Inflate at most this much at a time, so checking takes the same memory whatever the file.
PIECE = 64 * 1024


class Overinflated(ValueError):
    def __init__(self, width: int, height: int) -> None:
        super().__init__(f"inflates to more than its {width} x {height} pixels need")
        self.width, self.height = width, height


def check_png(data: bytes) -> None:
    """Raise Overinflated when a frame's pixel data inflates past what the frame can hold.
    Files that are not PNGs, or are damaged, are left to Pillow to judge."""
    if not data.startswith(SIGNATURE):
        return
    header: tuple[int, int, int] | None = None  # bit depth, colour type, interlace
    frame: tuple[int, int] | None = None
    inflater: _Budget | None = None
    for kind, body in _chunks(data):
        if kind == b"IHDR" and len(body) >= 13:
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
            header = (depth, colour, interlace)
            frame = (width, height)
        elif header is None or frame is None:
            continue
        elif kind == b"fcTL" and len(body) >= 12:
            frame = struct.unpack(">II", body[4:12])
            inflater = None
        elif kind in (b"IDAT", b"fdAT"):
            if inflater is None:
                inflater = _Budget(frame, _raw_size(frame, header))
            inflater.feed(body if kind == b"IDAT" else body[4:])  # fdAT: sequence number first


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    at = len(SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        yield kind, data[at + 8 : at + 8 + length]
        if kind == b"IEND":
            return
        at += 12 + length


def _raw_size(frame: tuple[int, int], header: tuple[int, int, int]) -> int:
    """Bytes the filtered scanlines of a ``frame`` take once inflated."""
    width, height = frame
    depth, colour, interlace = header
    bits = CHANNELS.get(colour, 4) * max(depth, 1)

    def lines(columns: int, rows: int) -> int:
        return 0 if columns == 0 or rows == 0 else rows * (1 + (columns * bits + 7) // 8)

    if interlace != 1:
        return lines(width, height)
    return sum(
        lines((width - x + dx - 1) // dx, (height - y + dy - 1) // dy)
        for x, y, dx, dy in ADAM7
        if width > x and height > y
    )


class _Budget:
    """One frame's zlib stream, inflated piece by piece against the bytes it may produce."""

    def __init__(self, frame: tuple[int, int], allowed: int) -> None:
        self._frame = frame
        self._allowed = allowed
        self._produced = 0
        self._inflate = zlib.decompressobj()

    def feed(self, compressed: bytes) -> None:
        pending = compressed
        while pending and not self._inflate.eof:
            try:
                out = self._inflate.decompress(pending, PIECE)
            except zlib.error:
                return  # damaged: Pillow refuses it with its own reason
            self._produced += len(out)
            if self._produced > self._allowed:
                raise Overinflated(*self._frame)
            pending = self._inflate.unconsumed_tail
