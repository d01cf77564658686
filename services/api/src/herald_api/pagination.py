"""Opaque cursors over UUIDv7 ids (time-ordered, so "older than the cursor" pages stably), and
over (time, id) positions for lists ordered by a time that several rows may share."""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import Query

from herald_api.problems import FieldProblem, ProblemError

T = TypeVar("T")

# The query parameters of every paged list: where to continue, and how many per page.
CursorQuery = Annotated[str | None, Query(max_length=64)]
LimitQuery = Annotated[int, Query(ge=1, le=100)]


# A (time, id) cursor: a tag byte naming the order it belongs to, the id, and the time as
# microseconds since the Unix epoch (Postgres's own precision), absent for a row with no time.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TAG_AND_ID = struct.Struct(">B16s")
_MICROSECONDS = struct.Struct(">q")


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(bytes=_unpack(cursor))
    except ValueError:
        raise _invalid_cursor() from None


def decode_position(cursor: str | None, tag: int) -> tuple[datetime | None, uuid.UUID] | None:
    """The (time, id) where the page before ended, from a cursor made with this ``tag``; a
    cursor of another order (another tag, or an id-only cursor) is refused."""
    if cursor is None:
        return None
    try:
        raw = _unpack(cursor)
        found, id_bytes = _TAG_AND_ID.unpack_from(raw)
        rest = raw[_TAG_AND_ID.size :]
        if found != tag or len(rest) not in (0, _MICROSECONDS.size):
            raise ValueError(cursor)
        at = None
        if rest:
            at = _EPOCH + timedelta(microseconds=_MICROSECONDS.unpack(rest)[0])
        return at, uuid.UUID(bytes=id_bytes)
    except (ValueError, OverflowError, struct.error):
        raise _invalid_cursor() from None


def encode_position(tag: int, at: datetime | None, item_id: uuid.UUID) -> str:
    raw = _TAG_AND_ID.pack(tag, item_id.bytes)
    if at is not None:
        raw += _MICROSECONDS.pack((at - _EPOCH) // timedelta(microseconds=1))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unpack(cursor: str) -> bytes:
    """The cursor's bytes; a ValueError (binascii.Error is one) when it is not base64."""
    return base64.urlsafe_b64decode(cursor.encode() + b"==")


def _invalid_cursor() -> ProblemError:
    return ProblemError(
        422,
        "validation-failed",
        "The cursor is not one this API returned (or was made for another sort).",
        [FieldProblem(field="cursor", message="Invalid cursor.")],
    )


def encode_cursor(item_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(item_id.bytes).decode().rstrip("=")


def page(
    fetched: Sequence[T], limit: int, id_of: Callable[[T], uuid.UUID]
) -> tuple[Sequence[T], str | None]:
    """The page of ``fetched`` (read with ``limit + 1``, newest first) and the cursor to the
    next page, None on the last one."""
    return page_by(fetched, limit, lambda item: encode_cursor(id_of(item)))


def page_by(
    fetched: Sequence[T], limit: int, cursor_of: Callable[[T], str]
) -> tuple[Sequence[T], str | None]:
    """As :func:`page`, in any order: ``cursor_of`` makes the cursor after an item."""
    items = fetched[:limit]
    more = len(fetched) > limit
    return items, cursor_of(items[-1]) if more else None
