"""Turning what a person typed (an offset time, or a local time and a zone) into UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald_api.problems import FieldProblem


class TimingError(ValueError):
    def __init__(self, problem: FieldProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def resolve_scheduled_at(scheduled_at: datetime, timezone: str | None) -> datetime:
    """The UTC instant meant by ``scheduled_at`` (and ``timezone`` for a local time)."""
    if timezone is None:
        if scheduled_at.tzinfo is None:
            raise TimingError(
                FieldProblem(
                    field="scheduled_at",
                    message="Give an offset (e.g. 2026-12-01T09:00:00+01:00) or a timezone.",
                )
            )
        return scheduled_at.astimezone(UTC)
    zone = _zone(timezone)
    if scheduled_at.tzinfo is not None:
        raise TimingError(
            FieldProblem(
                field="scheduled_at",
                message="With a timezone, give a local time without an offset.",
            )
        )
    local = scheduled_at.replace(tzinfo=zone)
    as_utc = local.astimezone(UTC)
    # A wall time skipped by a daylight-saving jump does not round-trip: refuse it rather
    # than publish an hour away from what the person meant.
    if as_utc.astimezone(zone).replace(tzinfo=None) != scheduled_at:
        raise TimingError(
            FieldProblem(
                field="scheduled_at",
                message=f"{scheduled_at.isoformat()} does not exist in {timezone} "
                "(a daylight-saving gap).",
            )
        )
    return as_utc


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimingError(
            FieldProblem(field="timezone", message=f"Unknown IANA time zone: {name!r}.")
        ) from None
