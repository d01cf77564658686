"""Identifiers: UUIDv7, time-ordered so ids double as stable pagination cursors."""

from __future__ import annotations

import uuid

import uuid_utils.compat


def new_id() -> uuid.UUID:
    return uuid_utils.compat.uuid7()
