"""Opaque cursors over UUIDv7 ids (time-ordered, so "older than the cursor" pages stably)."""

from __future__ import annotations

import base64
import binascii
import uuid

from herald_api.problems import FieldProblem, ProblemError


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
