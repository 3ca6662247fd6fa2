"""Billing periods of an agreement, computed from its versions (AGR-04, INV-01).

A pure calculator: no database, no clock, no I/O. Callers turn agreement
versions into :class:`VersionTerms` (``VersionTerms.of(version)``) and ask for
the periods in a window, the period holding an instant, or the periods that
have closed by a given time.

Rules
-----
* Boundaries fall at **local midnight in the version's billing time zone**.
  The billing day is the day a period *starts*:

  - ``daily``: every local midnight (no billing day);
  - ``weekly``: the midnight that starts ISO weekday ``billing_day``
    (1 = Monday … 7 = Sunday);
  - ``monthly``: the midnight that starts day ``billing_day`` (1-31) of each
    month; a day past the end of a short month means that month's last day
    (billing day 31 → 28/29 Feb, 30 Apr, …);
  - ``quarterly``: the same, in the first month of each calendar quarter
    (January, April, July, October).

* **Version changes.** Only a change of the *billing terms* cuts a period:
  billing period, billing day, billing zone, split by month, or tax rate (an
  invoice carries one tax rate). Back-to-back versions with the same billing
  terms (one that changes only the credit limit, the e-mails or the days for
  payment) are one stretch: its periods run across the change as if there
  were one version. Each stretch has its own grid. A period that would run
  over the end of a stretch is cut there, and the next stretch starts a new
  period at its own start, which then runs to the next boundary of its grid
  (so scale counters restart there, and each piece is invoiced on its own).
  Time not covered by any version has no period. A period's ``version`` /
  ``version_id`` is the version in force at its last instant (the one whose
  days for payment and e-mails its invoice uses).

* **Split by month** (daily and weekly only): a period that would cross the
  start of a local month is cut at that month start, so the weekly period
  Mon 29 Sep – Sun 5 Oct 2025 becomes 29–30 Sep and 1–5 Oct. Such a piece
  has ``split=True``. (Daily periods never cross a month, so the flag is a
  no-op for them.)

* **DST and other clock jumps.** The boundary for a local date ``d`` is the
  *earliest instant whose local wall-clock time is at or after d 00:00*:

  - midnight falls in a gap (clocks jump forward over it, e.g.
    America/Sao_Paulo before 2019): the boundary is the first valid instant
    after the gap, i.e. the transition instant (local time 01:00 there);
  - midnight happens twice (clocks turned back over it): the boundary is
    the first occurrence (``fold=0``);
  - a whole local day does not exist (Pacific/Apia skipped 30 Dec 2011): two
    dates share a boundary; the empty period between them is dropped.

  So daily periods are 23 or 25 hours long on DST change days, as they should.

* Periods are half-open ``[start, end)`` in aware UTC. ``local_start_date``
  and ``local_end_date`` (inclusive) are the billing-zone dates of the first
  and last instant of the period.

:func:`periods` clips the periods to the requested window (``clipped=True``
when the window cut a period short); :func:`period_containing` and
:func:`closed_periods` return whole ("natural") periods.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from cpaas_cli.agreements.service import billing_day_range
from cpaas_cli.errors import InvalidInput, Problem, require
from cpaas_cli.timeutil import TimeError, zone

PERIOD_KINDS = ("daily", "weekly", "monthly", "quarterly")
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class VersionTerms:
    """The billing terms of one agreement version, as plain values."""

    effective_from: datetime
    effective_till: datetime | None
    billing_period: str
    billing_day: int | None
    split_by_month: bool = False
    billing_tz: str = "UTC"
    id: int | None = None
    tax_rate: int = 0

    @classmethod
    def of(cls, version: Any) -> VersionTerms:
        """Build from anything with the AgreementVersion attributes."""
        return cls(
            effective_from=version.effective_from,
            effective_till=version.effective_till,
            billing_period=version.billing_period,
            billing_day=version.billing_day,
            split_by_month=bool(version.split_by_month),
            billing_tz=version.billing_tz,
            id=getattr(version, "id", None),
            tax_rate=getattr(version, "tax_rate", 0) or 0,
        )

    def billing(self) -> tuple:
        """The terms whose change cuts a period."""
        return (self.billing_period, self.billing_day, self.split_by_month, self.billing_tz, self.tax_rate)


@dataclass(frozen=True)
class Period:
    """One billing period ``[start, end)`` in aware UTC."""

    start: datetime
    end: datetime
    version: int  # index into the versions given
    version_id: int | None
    local_start_date: date
    local_end_date: date  # inclusive
    split: bool  # cut at a month start by split-by-month
    clipped: bool = False  # cut short by the requested window

    def as_dict(self, tz: str | None = None) -> dict[str, Any]:
        from cpaas_cli.timeutil import in_zone, iso

        out: dict[str, Any] = {
            "start": iso(self.start),
            "end": iso(self.end),
            "local_start_date": self.local_start_date.isoformat(),
            "local_end_date": self.local_end_date.isoformat(),
            "version": self.version,
            "version_id": self.version_id,
            "split": self.split,
            "clipped": self.clipped,
        }
        if tz is not None:
            out["start_local"] = in_zone(self.start, tz)
            out["end_local"] = in_zone(self.end, tz)
        return out


# ------------------------------------------------------------ local midnights


def _wall(u: datetime, zi: ZoneInfo) -> datetime:
    """Local wall-clock time of an instant, as a naive datetime."""
    return u.astimezone(zi).replace(tzinfo=None)


@lru_cache(maxsize=65536)
def local_midnight(tz: str, d: date) -> datetime:
    """The earliest instant (aware UTC) whose local time in tz is ≥ d 00:00."""
    zi = ZoneInfo(tz)
    target = datetime(d.year, d.month, d.day)
    cands = [target.replace(tzinfo=zi, fold=f).astimezone(UTC) for f in (0, 1)]
    valid = [c for c in cands if _wall(c, zi) == target]
    if valid:
        return min(valid)  # ambiguous midnight: first occurrence
    # Midnight falls in a gap: find the transition instant by bisection
    # between an instant before the gap (wall < target) and one after it.
    lo, hi = min(cands), max(cands)
    while _wall(lo, zi) >= target:
        lo -= timedelta(hours=6)
    while _wall(hi, zi) < target:
        hi += timedelta(hours=6)
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp()) + 1
    # Invariant: wall(lo_s) < target <= wall(hi_s); transitions are whole seconds.
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), zi) >= target:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _local_date(u: datetime, tz: str) -> date:
    return u.astimezone(ZoneInfo(tz)).date()


# -------------------------------------------------------------- the grids


def _last_day(y: int, m: int) -> int:
    return calendar.monthrange(y, m)[1]


def day_in_month(y: int, m: int, day: int) -> date:
    return date(y, m, min(day, _last_day(y, m)))


def add_months(y: int, m: int, n: int) -> tuple[int, int]:
    """(year, month) ``n`` months after (``y``, ``m``); ``n`` may be negative."""
    k = y * 12 + (m - 1) + n
    return k // 12, k % 12 + 1


def _grid_floor(kind: str, day: int, d: date) -> date:
    """The latest billing boundary date at or before d."""
    if kind == "daily":
        return d
    if kind == "weekly":
        return d - timedelta(days=(d.isoweekday() - day) % 7)
    step = 1 if kind == "monthly" else 3
    y, m = d.year, d.month - (d.month - 1) % step
    a = day_in_month(y, m, day)
    if a <= d:
        return a
    y, m = add_months(y, m, -step)
    return day_in_month(y, m, day)


def _grid_next(kind: str, day: int, g: date) -> date:
    """The next billing boundary date after the boundary date g."""
    if kind == "daily":
        return g + timedelta(days=1)
    if kind == "weekly":
        return g + timedelta(days=7)
    step = 1 if kind == "monthly" else 3
    y, m = add_months(g.year, g.month, step)
    return day_in_month(y, m, day)


def _next_month_start(d: date) -> date:
    y, m = add_months(d.year, d.month, 1)
    return date(y, m, 1)


def _cut_dates(v: VersionTerms, start: date) -> Iterator[tuple[date, bool]]:
    """Boundary dates, from the last one at or before ``start`` onwards, each
    with True when it is only a month-start cut (split by month)."""
    kind, day = v.billing_period, v.billing_day or 1
    split = v.split_by_month and kind in ("daily", "weekly")
    g = _grid_floor(kind, day, start)
    cur = max(g, start.replace(day=1)) if split else g
    yield cur, cur != g
    while True:
        nxt = _grid_next(kind, day, _grid_floor(kind, day, cur))
        month = _next_month_start(cur) if split else None
        if month is not None and month < nxt:
            cur = month
            yield cur, True
        else:
            cur = nxt
            yield cur, False


# ------------------------------------------------------------- validation


def _aware(value: datetime, field: str, problems: list[Problem]) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        problems.append(Problem(field, "must be a timezone-aware time"))
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _check(versions: Sequence[VersionTerms]) -> list[tuple[int, VersionTerms]]:
    """Validate and return (original index, version in UTC) sorted by start."""
    problems: list[Problem] = []
    items: list[tuple[int, VersionTerms]] = []
    for i, v in enumerate(versions):
        where = f"versions[{i}]"
        start = _aware(v.effective_from, f"{where}.effective_from", problems)
        till = _aware(v.effective_till, f"{where}.effective_till", problems) if v.effective_till else None
        if till is not None and till <= start:
            problems.append(Problem(f"{where}.effective_till", "must be later than effective_from"))
        if v.billing_period not in PERIOD_KINDS:
            problems.append(Problem(f"{where}.billing_period", f"must be one of {', '.join(PERIOD_KINDS)}"))
        else:
            span = billing_day_range(v.billing_period)
            if span is None:
                if v.billing_day not in (None, 1):
                    problems.append(Problem(f"{where}.billing_day", "a daily billing period takes no billing day"))
            elif v.billing_day is None or not span[0] <= v.billing_day <= span[1]:
                problems.append(Problem(f"{where}.billing_day", f"must be {span[0]}-{span[1]} for {v.billing_period}"))
            if v.split_by_month and v.billing_period not in ("daily", "weekly"):
                problems.append(Problem(f"{where}.split_by_month", "applies only to daily and weekly periods"))
        try:
            zone(v.billing_tz)
        except TimeError as exc:
            problems.append(Problem(f"{where}.billing_tz", str(exc)))
        items.append((i, replace(v, effective_from=start, effective_till=till)))
    items.sort(key=lambda it: it[1].effective_from)
    for (_, a), (j, b) in zip(items, items[1:], strict=False):
        if a.effective_till is None or a.effective_till > b.effective_from:
            problems.append(Problem(f"versions[{j}]", "overlaps the version before it"))
    require(problems, "billing versions")
    return items


# ------------------------------------------------------------- generation


@dataclass(frozen=True)
class _Stretch:
    """Back-to-back versions with the same billing terms: one grid of periods.
    ``terms`` runs from the first member's start to the last one's end."""

    terms: VersionTerms
    members: tuple[tuple[int, VersionTerms], ...]  # (index given, version), in time order

    def owner(self, end: datetime) -> tuple[int, VersionTerms]:
        """The member in force at the last instant before ``end``."""
        return next(m for m in reversed(self.members) if m[1].effective_from < end)


def _stretches(items: list[tuple[int, VersionTerms]]) -> list[_Stretch]:
    out: list[_Stretch] = []
    for idx, v in items:
        last = out[-1] if out else None
        if last is not None and last.terms.effective_till == v.effective_from and last.terms.billing() == v.billing():
            out[-1] = _Stretch(replace(last.terms, effective_till=v.effective_till), (*last.members, (idx, v)))
        else:
            out.append(_Stretch(v, ((idx, v),)))
    return out


def _make(st: _Stretch, start: datetime, end: datetime, split: bool, *, owner_end: datetime | None = None) -> Period:
    """A period of a stretch; ``owner_end`` (default ``end``) picks its version,
    the natural end for a period clipped by a window."""
    idx, v = st.owner(owner_end or end)
    tz = st.terms.billing_tz
    return Period(
        start=start,
        end=end,
        version=idx,
        version_id=v.id,
        local_start_date=_local_date(start, tz),
        local_end_date=_local_date(end - _TINY, tz),
        split=split,
        clipped=owner_end is not None,
    )


def _version_periods(st: _Stretch, lo: datetime, until: datetime) -> Iterator[Period]:
    """Natural periods of one stretch that end after ``lo``, in order,
    stopping before the first one that starts at or after ``until``."""
    v = st.terms
    vs, ve = v.effective_from, v.effective_till
    lo = max(lo, vs)
    tz = v.billing_tz
    cuts = _cut_dates(v, _local_date(lo, tz))
    d, month_only = next(cuts)
    prev_at, prev_split = local_midnight(tz, d), month_only
    for d, month_only in cuts:
        at = local_midnight(tz, d)
        start, end = max(prev_at, vs), at if ve is None else min(at, ve)
        if start >= until or (ve is not None and start >= ve):
            return
        if end > start and end > lo:
            # Split only when a month-start cut (not also a billing or version
            # boundary) made the period shorter.
            split = (prev_split and prev_at > vs) or (month_only and (ve is None or at < ve))
            yield _make(st, start, end, split)
        prev_at, prev_split = at, month_only


def _utc(value: datetime, field: str) -> datetime:
    problems: list[Problem] = []
    out = _aware(value, field, problems)
    require(problems)
    return out


def periods(versions: Sequence[VersionTerms], start: datetime, end: datetime) -> list[Period]:
    """The billing periods covering ``[start, end)`` ∩ the versions, in order.

    Periods are clipped to the window; a clipped one has ``clipped=True``.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    if end <= start:
        raise InvalidInput("the window end must be later than its start")
    out: list[Period] = []
    for st in _stretches(_check(versions)):
        v = st.terms
        if v.effective_from >= end or (v.effective_till is not None and v.effective_till <= start):
            continue
        for p in _version_periods(st, start, end):
            s, e = max(p.start, start), min(p.end, end)
            if (s, e) != (p.start, p.end):
                p = _make(st, s, e, p.split, owner_end=p.end)
            out.append(p)
    return out


def period_containing(versions: Sequence[VersionTerms], instant: datetime) -> Period | None:
    """The whole period that holds ``instant``; None when no version covers it."""
    at = _utc(instant, "instant")
    for st in _stretches(_check(versions)):
        v = st.terms
        if v.effective_from <= at and (v.effective_till is None or at < v.effective_till):
            for p in _version_periods(st, at, at + _TINY):
                if p.start <= at < p.end:
                    return p
    return None


def closed_periods(versions: Sequence[VersionTerms], as_of: datetime, *, since: datetime | None = None) -> list[Period]:
    """Whole periods that have ended by ``as_of`` (end ≤ as_of), in order.

    ``since`` keeps only periods starting at or after it (e.g. the end of the
    last invoiced period); without it, periods from the first version start.
    """
    as_of = _utc(as_of, "as_of")
    lo = _utc(since, "since") if since is not None else None
    out: list[Period] = []
    for st in _stretches(_check(versions)):
        v = st.terms
        if v.effective_from >= as_of or (lo is not None and v.effective_till is not None and v.effective_till <= lo):
            continue
        for p in _version_periods(st, lo or v.effective_from, as_of):
            if p.end > as_of:
                break
            if lo is None or p.start >= lo:
                out.append(p)
    return out
