"""Parsing and formatting of times and IANA time zones.

Storage is always aware UTC. Users may type a time with an offset
("2026-01-01T00:00:00+01:00", "...Z"), or a local time that is read in the
zone given next to it (``--tz``), or the words ``now``/``today``.

Dates and times typed by a user are business dates (agreement terms,
payments, invoice runs, schedules, exports): both parsers refuse a date
outside a sane range (2000-01-01 … 2100-12-31 unless the config's
``[limits] min_date``/``max_date`` say otherwise), so that a year typo such
as 0026 is an error, not 730,000 daily invoices.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cpaas_cli import clock


class TimeError(ValueError):
    pass


FIRST_YEAR, LAST_YEAR = 2, 9998
"""Times the tool computes with: a year of margin inside Python's datetime range
(years 1..9999), so a zone's offset, a day or a billing period either side of
a time never overflows. Not a business rule: commands that take business dates
may accept a much narrower range."""


def out_of_range(text: object) -> TimeError:
    return TimeError(f"out of range: {str(text)[:40]!r} (times from {FIRST_YEAR:04d}-01-01 to {LAST_YEAR}-12-31 work)")


def to_utc(value: datetime, text: object = None) -> datetime:
    """An aware time as UTC, or TimeError when it (or its UTC) is outside
    ``FIRST_YEAR``..``LAST_YEAR``, never an OverflowError."""
    try:
        out = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise out_of_range(value if text is None else text) from exc
    if not FIRST_YEAR <= out.year <= LAST_YEAR:
        raise out_of_range(value if text is None else text)
    return out


MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2100, 12, 31)


def _default_range() -> tuple[date, date]:
    return MIN_DATE, MAX_DATE


_date_range: Callable[[], tuple[date, date]] = _default_range


def set_date_range(provider: Callable[[], tuple[date, date]] | None) -> None:
    """Where the accepted range of business dates comes from (the CLI passes one
    that reads the config lazily); None restores the defaults."""
    global _date_range
    _date_range = provider or _default_range


def check_business_date(value: date | datetime) -> None:
    """TimeError when the date (as typed: local, before any zone conversion) is out of range."""
    low, high = _date_range()
    day = value.date() if isinstance(value, datetime) else value
    if day < low:
        raise TimeError(
            f"{day.isoformat()} is before {low.isoformat()}, the earliest accepted date ([limits] min_date)"
        )
    if day > high:
        raise TimeError(f"{day.isoformat()} is after {high.isoformat()}, the latest accepted date ([limits] max_date)")


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
        return to_utc(datetime(local.year, local.month, local.day, tzinfo=zi), text)
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            value = datetime(d.year, d.month, d.day)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError as exc:
        raise TimeError(f"not an ISO 8601 time: {text!r}") from exc
    check_business_date(value)
    if value.tzinfo is None:
        if len(raw) == 10:  # a bare date: the first instant of that local day
            return to_utc(value.replace(tzinfo=zi), text)
        return local_to_utc(value, zi, text)
    return to_utc(value, text)


def local_to_utc(value: datetime, zi: ZoneInfo, text: object = None) -> datetime:
    """A naive wall-clock time in ``zi`` as aware UTC: the one rule for local times.

    A time that does not exist (skipped when the clocks go forward) is refused
    with TimeError naming the gap; one that happens twice (clocks go back) is
    the first of the two.
    """
    before = value.replace(tzinfo=zi, fold=0)
    result = to_utc(before, value if text is None else text)  # TimeError, never an overflow, at year 1 or 9999
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
    """An ISO date within the accepted range of business dates."""
    try:
        value = date.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise TimeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from exc
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise out_of_range(text)
    check_business_date(value)
    return value


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
