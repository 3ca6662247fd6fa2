"""Parsing and formatting of times and IANA time zones.

Storage is always aware UTC. Users may type a time with an offset
("2026-01-01T00:00:00+01:00", "...Z"), or a local time that is read in the
zone given next to it (``--tz``), or the words ``now``/``today``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cpaas_cli import clock


class TimeError(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    """Return the IANA zone or raise TimeError with a clear message."""
    if not name or name.strip() != name or name.startswith("/"):
        raise TimeError(f"not an IANA time zone: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimeError(f"not an IANA time zone: {name!r}") from exc


def check_zone(name: str) -> str:
    zone(name)
    return name


def all_zones() -> set[str]:
    return available_timezones()


def parse_time(text: str, tz: str = "UTC") -> datetime:
    """Parse a user-given time into aware UTC.

    A time without offset is local time in ``tz``; a bare date is local midnight.
    """
    raw = (text or "").strip()
    if not raw:
        raise TimeError("empty time")
    zi = zone(tz)
    low = raw.lower()
    if low == "now":
        return clock.now()
    if low == "today":
        local = clock.now().astimezone(zi).date()
        return datetime(local.year, local.month, local.day, tzinfo=zi).astimezone(UTC)
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            value = datetime(d.year, d.month, d.day)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError as exc:
        raise TimeError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        if len(raw) == 10:  # a bare date: the first instant of that local day
            return value.replace(tzinfo=zi).astimezone(UTC)
        return local_to_utc(value, zi)
    return value.astimezone(UTC)


def local_to_utc(value: datetime, zi: ZoneInfo) -> datetime:
    """A naive wall-clock time in ``zi`` as aware UTC: the one rule for local times.

    A time that does not exist (skipped when the clocks go forward) is refused
    with TimeError naming the gap; one that happens twice (clocks go back) is
    the first of the two.
    """
    before = value.replace(tzinfo=zi, fold=0)
    result = before.astimezone(UTC)
    if result.astimezone(zi).replace(tzinfo=None) == value:
        return result
    start, end = _gap(value, zi)
    shown = value.isoformat(sep=" ", timespec="seconds" if value.second else "minutes")
    till = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    raise TimeError(
        f"{shown} does not exist in {zi.key}: the clocks skip from {start:%Y-%m-%d %H:%M} to {till}; pick another time"
    )


def _gap(value: datetime, zi: ZoneInfo) -> tuple[datetime, datetime]:
    """The wall-clock start and end of the gap that ``value`` falls in."""
    off_before = value.replace(tzinfo=zi, fold=0).utcoffset() or timedelta(0)
    off_after = value.replace(tzinfo=zi, fold=1).utcoffset() or timedelta(0)
    naive = value.replace(tzinfo=None)
    lo = int((naive - off_after).replace(tzinfo=UTC).timestamp())  # before the transition
    hi = int((naive - off_before).replace(tzinfo=UTC).timestamp())  # at or after it
    while hi - lo > 1:  # the transition is the first second with the later offset
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zi).utcoffset() == off_before:
            lo = mid
        else:
            hi = mid
    transition = datetime.fromtimestamp(hi, UTC).replace(tzinfo=None)
    return transition + off_before, transition + off_after


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise TimeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from exc


def iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a Z, second precision unless there are microseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise TimeError("naive datetime reached output")
    value = value.astimezone(UTC)
    text = value.isoformat()
    return text.replace("+00:00", "Z")


def in_zone(value: datetime | None, tz: str) -> str | None:
    if value is None:
        return None
    return value.astimezone(zone(tz)).isoformat()


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise TimeError("naive datetime")
    return value.astimezone(UTC)


ONE_DAY = timedelta(days=1)
