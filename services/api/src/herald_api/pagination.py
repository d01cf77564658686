"""Opaque cursors over UUIDv7 ids (time-ordered, so "older than the cursor" pages stably)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import Query

from herald_api.problems import FieldProblem, ProblemError

T = TypeVar("T")

# The query parameters of every paged list: where to continue, and how many per page.
CursorQuery = Annotated[str | None, Query(max_length=64)]
LimitQuery = Annotated[int, Query(ge=1, le=100)]


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor.encode() + b"=="))
    except (ValueError, binascii.Error):
        raise ProblemError(
            422,
            "validation-failed",
            "The cursor is not one this API returned.",
            [FieldProblem(field="cursor", message="Invalid cursor.")],
        ) from None


def encode_cursor(item_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(item_id.bytes).decode().rstrip("=")


def page(
    fetched: Sequence[T], limit: int, id_of: Callable[[T], uuid.UUID]
) -> tuple[Sequence[T], str | None]:
    """The page of ``fetched`` (read with ``limit + 1``, newest first) and the cursor to the
    next page, None on the last one."""
    items = fetched[:limit]
    more = len(fetched) > limit
    return items, encode_cursor(id_of(items[-1])) if more else None
