"""The one clock every Herald component reads, so tests can move time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    """Current time in UTC, shifted by whatever a test has moved the clock by."""
    return datetime.now(UTC) + _offset


def advance(delta: timedelta) -> None:
    """Move this process's clock forward (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)
