"""Every time the API accepts, turned into a UTC instant Herald can keep, in one place.

A time arrives as RFC 3339 with an offset, or as a local time plus an IANA zone name. It is
refused (as a problem naming its field) when it cannot be represented in UTC (Python's
datetimes end at year 9999, so ``9999-12-31T23:59:59-14:00`` has no UTC instant), when the
zone is not a real IANA zone, when a local time falls in a daylight-saving gap, and when it
lies further ahead than ``HERALD_SCHEDULE_MAX_AHEAD_DAYS``: a post ten thousand years ahead
is a typo, not a plan. Posts, their list filters, and every later endpoint that takes a time
(queue slots, recurring rules) use these functions as they are, so the bound is one setting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from herald_api.problems import FieldProblem
from herald_common import clock
from herald_common.settings import Settings

# Names available_timezones() can list that are no place's time: tzdb's "Factory" zone
# (abbreviation "-00", for machines whose zone is not set yet) and "localtime", the host's
# own /etc/localtime link that some systems keep in the zone directory. "posixrules" is
# never listed.
NOT_A_PLACE = frozenset({"Factory", "localtime"})


class TimingError(ValueError):
    def __init__(self, problem: FieldProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def latest_schedulable(settings: Settings) -> datetime:
    """The furthest instant ahead that Herald accepts a time for."""
    return clock.now() + timedelta(days=settings.schedule_max_ahead_days)


def accepted_instant(value: datetime, settings: Settings, *, field: str) -> datetime:
    """``value`` (with an offset) as UTC, within the scheduling bound."""
    if value.tzinfo is None:
        raise TimingError(
            FieldProblem(field=field, message="Give an offset, e.g. 2026-12-01T09:00:00Z.")
        )
    return _within_bound(_as_utc(value, field), settings, field)


def resolve_scheduled_at(
    scheduled_at: datetime,
    timezone: str | None,
    settings: Settings,
    *,
    field: str = "scheduled_at",
    zone_field: str = "timezone",
) -> datetime:
    """The UTC instant meant by ``scheduled_at`` (and ``timezone`` for a local time)."""
    if timezone is None:
        if scheduled_at.tzinfo is None:
            raise TimingError(
                FieldProblem(
                    field=field,
                    message="Give an offset (e.g. 2026-12-01T09:00:00+01:00) or a timezone.",
                )
            )
        return _within_bound(_as_utc(scheduled_at, field), settings, field)
    zone = iana_zone(timezone, field=zone_field)
    if scheduled_at.tzinfo is not None:
        raise TimingError(
            FieldProblem(
                field=field, message="With a timezone, give a local time without an offset."
            )
        )
    local = scheduled_at.replace(tzinfo=zone)
    as_utc = _as_utc(local, field)
    # A wall time skipped by a daylight-saving jump does not round-trip: refuse it rather
    # than publish an hour away from what the person meant.
    try:
        round_trip = as_utc.astimezone(zone).replace(tzinfo=None)
    except OverflowError:
        raise _unrepresentable(field) from None
    if round_trip != scheduled_at:
        raise TimingError(
            FieldProblem(
                field=field,
                message=f"{scheduled_at.isoformat()} does not exist in {timezone} "
                "(a daylight-saving gap).",
            )
        )
    return _within_bound(as_utc, settings, field)


def iana_zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The zone of a real IANA name (what ``zoneinfo.available_timezones()`` lists, places
    only); ZoneInfo itself also opens any file in the zone directory, e.g. ``posixrules``."""
    if name not in _zone_names():
        raise TimingError(FieldProblem(field=field, message=f"Unknown IANA time zone: {name!r}."))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimingError(
            FieldProblem(field=field, message=f"Unknown IANA time zone: {name!r}.")
        ) from None


@cache
def _zone_names() -> frozenset[str]:
    # available_timezones() walks the zone directories: read once per process.
    return frozenset(available_timezones()) - NOT_A_PLACE


def _as_utc(value: datetime, field: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _unrepresentable(field) from None


def _unrepresentable(field: str) -> TimingError:
    return TimingError(
        FieldProblem(
            field=field,
            message="This time cannot be represented in UTC (it falls outside years 1 to 9999).",
        )
    )


def _within_bound(moment: datetime, settings: Settings, field: str) -> datetime:
    latest = latest_schedulable(settings)
    if moment > latest:
        days = settings.schedule_max_ahead_days
        raise TimingError(
            FieldProblem(
                field=field,
                message=f"Herald accepts times at most {days} days ahead "
                f"(until {latest.isoformat().replace('+00:00', 'Z')}).",
            )
        )
    return moment
