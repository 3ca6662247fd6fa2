"""The billing-period calculator: table tests and property tests (AGR-04, INV-01)."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpaas_cli.billing.periods import (
    Period,
    VersionTerms,
    closed_periods,
    local_midnight,
    period_containing,
    periods,
)
from cpaas_cli.errors import InvalidInput

H = timedelta(hours=1)
D = timedelta(days=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def v(kind: str, day: int | None, tz: str = "UTC", *, split: bool = False, start=None, till=None, id=None):
    return VersionTerms(
        effective_from=start or utc(2000, 1, 1),
        effective_till=till,
        billing_period=kind,
        billing_day=day,
        split_by_month=split,
        billing_tz=tz,
        id=id,
    )


def dates(ps: list[Period]) -> list[tuple[str, str]]:
    return [(p.local_start_date.isoformat(), p.local_end_date.isoformat()) for p in ps]


# ------------------------------------------------------------ table tests

MAD = "Europe/Madrid"


def test_seed_example_weekly_split_by_month():
    week = (local(MAD, 2025, 9, 29), local(MAD, 2025, 10, 6))
    ps = periods([v("weekly", 1, MAD, split=True)], *week)
    assert dates(ps) == [("2025-09-29", "2025-09-30"), ("2025-10-01", "2025-10-05")]
    assert [p.split for p in ps] == [True, True]
    assert (
        ps[0].start == utc(2025, 9, 28, 22)
        and ps[1].start == utc(2025, 9, 30, 22)
        and ps[1].end == utc(2025, 10, 5, 22)
    )
    assert not any(p.clipped for p in ps)


def test_seed_example_weekly_without_split():
    ps = periods([v("weekly", 1, MAD)], local(MAD, 2025, 9, 29), local(MAD, 2025, 10, 6))
    assert dates(ps) == [("2025-09-29", "2025-10-05")]
    assert ps[0].split is False
    assert ps[0].end - ps[0].start == 7 * D


def test_weekly_split_week_inside_one_month_is_whole():
    ps = periods([v("weekly", 1, MAD, split=True)], local(MAD, 2025, 10, 6), local(MAD, 2025, 10, 13))
    assert dates(ps) == [("2025-10-06", "2025-10-12")] and ps[0].split is False


def test_weekly_billing_day_is_the_start_weekday():
    # Billing day 3 = Wednesday.
    ps = periods([v("weekly", 3)], utc(2025, 1, 1), utc(2025, 1, 22))
    assert dates(ps) == [("2025-01-01", "2025-01-07"), ("2025-01-08", "2025-01-14"), ("2025-01-15", "2025-01-21")]


def test_monthly_billing_day_31_in_february():
    ps = periods([v("monthly", 31)], utc(2025, 1, 31), utc(2025, 5, 31))
    assert dates(ps) == [
        ("2025-01-31", "2025-02-27"),
        ("2025-02-28", "2025-03-30"),
        ("2025-03-31", "2025-04-29"),
        ("2025-04-30", "2025-05-30"),
    ]
    leap = periods([v("monthly", 30)], utc(2024, 1, 30), utc(2024, 3, 30))
    assert dates(leap) == [("2024-01-30", "2024-02-28"), ("2024-02-29", "2024-03-29")]


def test_monthly_day_1_in_madrid_follows_local_midnight():
    ps = periods([v("monthly", 1, MAD)], local(MAD, 2025, 1, 1), local(MAD, 2025, 4, 1))
    assert [p.start for p in ps] == [utc(2024, 12, 31, 23), utc(2025, 1, 31, 23), utc(2025, 2, 28, 23)]
    assert ps[-1].end == utc(2025, 3, 31, 22)  # summer time from 30 March


def test_quarterly():
    ps = periods([v("quarterly", 1)], utc(2025, 1, 1), utc(2026, 1, 1))
    assert dates(ps) == [
        ("2025-01-01", "2025-03-31"),
        ("2025-04-01", "2025-06-30"),
        ("2025-07-01", "2025-09-30"),
        ("2025-10-01", "2025-12-31"),
    ]
    late = periods([v("quarterly", 31)], utc(2025, 1, 31), utc(2026, 1, 31))
    assert dates(late) == [
        ("2025-01-31", "2025-04-29"),
        ("2025-04-30", "2025-07-30"),
        ("2025-07-31", "2025-10-30"),
        ("2025-10-31", "2026-01-30"),
    ]


def test_version_change_mid_period_starts_a_new_period():
    change = local(MAD, 2025, 3, 12, 15, 30)
    vs = [
        v("monthly", 1, MAD, start=local(MAD, 2025, 1, 1), till=change, id=10),
        v("weekly", 1, MAD, start=change, id=11),
    ]
    ps = periods(vs, local(MAD, 2025, 2, 1), local(MAD, 2025, 3, 24))
    assert [(p.start, p.end, p.version_id) for p in ps] == [
        (local(MAD, 2025, 2, 1), local(MAD, 2025, 3, 1), 10),
        (local(MAD, 2025, 3, 1), change, 10),
        (change, local(MAD, 2025, 3, 17), 11),
        (local(MAD, 2025, 3, 17), local(MAD, 2025, 3, 24), 11),
    ]
    assert dates(ps)[1:3] == [("2025-03-01", "2025-03-12"), ("2025-03-12", "2025-03-16")]
    assert [p.version for p in ps] == [0, 0, 1, 1]


def test_versions_given_out_of_order_keep_their_index_and_gaps_have_no_period():
    first = v("daily", None, start=utc(2025, 1, 1), till=utc(2025, 1, 3))
    second = v("daily", None, start=utc(2025, 1, 5), till=utc(2025, 1, 6))
    ps = periods([second, first], utc(2024, 12, 1), utc(2025, 2, 1))
    assert [(p.local_start_date.day, p.version) for p in ps] == [(1, 1), (2, 1), (5, 0)]


@pytest.mark.parametrize(
    "tz,short,long_",
    [
        (MAD, date(2025, 3, 30), date(2025, 10, 26)),
        ("America/New_York", date(2025, 3, 9), date(2025, 11, 2)),
    ],
)
def test_dst_days_are_23_and_25_hours(tz, short, long_):
    ps = periods([v("daily", None, tz)], local(tz, 2025, 1, 1), local(tz, 2026, 1, 1))
    assert len(ps) == 365
    lengths = {p.local_start_date: p.end - p.start for p in ps}
    assert lengths[short] == 23 * H and lengths[long_] == 25 * H
    assert sum(1 for x in lengths.values() if x != 24 * H) == 2


def test_midnight_in_a_dst_gap_starts_at_the_first_valid_instant():
    # Sao Paulo, 4 Nov 2018: clocks jumped from 00:00 to 01:00.
    sp = "America/Sao_Paulo"
    ps = periods([v("daily", None, sp)], utc(2018, 11, 3, 3), utc(2018, 11, 6, 2))
    assert [p.start for p in ps] == [utc(2018, 11, 3, 3), utc(2018, 11, 4, 3), utc(2018, 11, 5, 2)]
    assert ps[1].start.astimezone(ZoneInfo(sp)).hour == 1
    assert [p.end - p.start for p in ps] == [24 * H, 23 * H, 24 * H]
    assert dates(ps) == [("2018-11-03", "2018-11-03"), ("2018-11-04", "2018-11-04"), ("2018-11-05", "2018-11-05")]


def test_ambiguous_midnight_uses_the_first_occurrence():
    # Havana, 3 Nov 2024: clocks went back from 01:00 to 00:00, so midnight happened twice.
    hav = "America/Havana"
    p = period_containing([v("daily", None, hav)], utc(2024, 11, 3, 12))
    assert p is not None
    assert (p.start, p.end) == (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5))
    assert p.end - p.start == 25 * H


def test_a_skipped_local_day_has_no_period():
    # Samoa skipped 30 Dec 2011.
    ps = periods([v("daily", None, "Pacific/Apia")], utc(2011, 12, 28, 10), utc(2011, 12, 31, 10))
    assert dates(ps) == [
        ("2011-12-28", "2011-12-28"),
        ("2011-12-29", "2011-12-29"),
        ("2011-12-31", "2011-12-31"),
    ]
    assert all(p.end - p.start == 24 * H for p in ps)


def test_window_clips_periods():
    ps = periods([v("monthly", 1)], utc(2025, 1, 10), utc(2025, 3, 5))
    assert [(p.start, p.end, p.clipped) for p in ps] == [
        (utc(2025, 1, 10), utc(2025, 2, 1), True),
        (utc(2025, 2, 1), utc(2025, 3, 1), False),
        (utc(2025, 3, 1), utc(2025, 3, 5), True),
    ]


def test_period_containing():
    vs = [v("weekly", 1, MAD, split=True)]
    p = period_containing(vs, local(MAD, 2025, 10, 3, 12))
    assert p is not None and dates([p]) == [("2025-10-01", "2025-10-05")] and p.split
    assert period_containing(vs, utc(1999, 1, 1)) is None
    edge = period_containing(vs, local(MAD, 2025, 10, 6))
    assert edge is not None and edge.start == local(MAD, 2025, 10, 6)


def test_closed_periods():
    vs = [v("monthly", 1, start=utc(2025, 1, 15), till=utc(2025, 6, 1)), v("daily", None, start=utc(2025, 6, 1))]
    ps = closed_periods(vs, utc(2025, 6, 3, 12))
    assert [(p.start, p.end) for p in ps] == [
        (utc(2025, 1, 15), utc(2025, 2, 1)),
        (utc(2025, 2, 1), utc(2025, 3, 1)),
        (utc(2025, 3, 1), utc(2025, 4, 1)),
        (utc(2025, 4, 1), utc(2025, 5, 1)),
        (utc(2025, 5, 1), utc(2025, 6, 1)),
        (utc(2025, 6, 1), utc(2025, 6, 2)),
        (utc(2025, 6, 2), utc(2025, 6, 3)),
    ]
    assert not any(p.clipped for p in ps)
    later = closed_periods(vs, utc(2025, 6, 3, 12), since=utc(2025, 4, 1))
    assert [p.start for p in later] == [utc(2025, 4, 1), utc(2025, 5, 1), utc(2025, 6, 1), utc(2025, 6, 2)]
    assert closed_periods(vs, utc(2025, 1, 31)) == []


@pytest.mark.parametrize(
    "versions,window",
    [
        ([v("weekly", 8)], None),
        ([v("monthly", 0)], None),
        ([v("daily", 5)], None),
        ([v("monthly", 1, split=True)], None),
        ([v("yearly", 1)], None),
        ([v("daily", None, "Mars/Olympus")], None),
        ([v("daily", None, till=utc(2001, 1, 1)), v("daily", None, start=utc(2000, 6, 1))], None),
        ([v("daily", None, start=datetime(2000, 1, 1))], None),
        ([v("daily", None)], (utc(2025, 2, 1), utc(2025, 1, 1))),
    ],
)
def test_bad_input_is_invalid_input(versions, window):
    with pytest.raises(InvalidInput):
        periods(versions, *(window or (utc(2025, 1, 1), utc(2025, 2, 1))))


# --------------------------------------------------------- property tests

ODD_ZONES = [
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Asia/Tehran",
    "America/Havana",
    "Europe/Madrid",
    "America/New_York",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "Pacific/Kiritimati",
    "Asia/Kathmandu",
    "America/St_Johns",
    "UTC",
]
ALL_ZONES = sorted(z for z in available_timezones() if not z.startswith("build/"))
zones = st.one_of(st.sampled_from(ODD_ZONES), st.sampled_from(ALL_ZONES))
# 1975-2040: old DST rules, the Samoa and Sao Paulo changes, future rules.
instants = st.integers(int(utc(1975, 1, 1).timestamp()), int(utc(2040, 1, 1).timestamp())).map(
    lambda s: datetime.fromtimestamp(s, UTC)
)
MAX_LEN = {"daily": 26 * H, "weekly": 7 * D + 3 * H, "monthly": 31 * D + 3 * H, "quarterly": 92 * D + 3 * H}
MIN_FULL = {"daily": 22 * H, "weekly": 7 * D - 3 * H, "monthly": 28 * D - 3 * H, "quarterly": 89 * D - 3 * H}
SPAN = {"daily": 200 * D, "weekly": 3 * 365 * D, "monthly": 10 * 365 * D, "quarterly": 20 * 365 * D}


@st.composite
def terms(draw):
    kind = draw(st.sampled_from(["daily", "weekly", "monthly", "quarterly"]))
    day = None if kind == "daily" else draw(st.integers(1, 7 if kind == "weekly" else 31))
    split = draw(st.booleans()) if kind in ("daily", "weekly") else False
    return kind, day, split, draw(zones)


@st.composite
def scenarios(draw):
    """Versions (1-4, with random changes and gaps) and a window around them."""
    n = draw(st.integers(1, 4))
    all_terms = [draw(terms()) for _ in range(n)]
    span = min(SPAN[t[0]] for t in all_terms)
    t = draw(instants)
    versions = []
    for i, (kind, day, split, tz) in enumerate(all_terms):
        length = timedelta(seconds=draw(st.integers(3600, int(span.total_seconds()) // n)))
        last = i == n - 1
        till = None if last and draw(st.booleans()) else t + length
        versions.append(VersionTerms(t, till, kind, day, split, tz, id=100 + i))
        if till is not None:
            gap = draw(st.sampled_from([0, 0, 0, 3600 * 7, 86400 * 3]))
            t = till + timedelta(seconds=gap)
    first = versions[0].effective_from
    ws = first + timedelta(seconds=draw(st.integers(-86400 * 40, int(span.total_seconds()) // 4)))
    we = ws + timedelta(seconds=draw(st.integers(1, int(span.total_seconds()))))
    return versions, ws, we


def wall(u: datetime, tz: str) -> datetime:
    return u.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def is_grid_date(d: date, kind: str, day: int | None) -> bool:
    if kind == "daily":
        return True
    if kind == "weekly":
        return d.isoweekday() == day
    if kind == "quarterly" and d.month not in (1, 4, 7, 10):
        return False
    assert day is not None
    return d.day == min(day, calendar.monthrange(d.year, d.month)[1])


def stretch(versions, i) -> tuple[datetime, datetime | None, list[int]]:
    """Start, end and member indexes of the run of back-to-back versions with the
    same billing terms that holds version ``i`` (one grid of periods)."""
    order = sorted(range(len(versions)), key=lambda k: versions[k].effective_from)
    runs: list[list[int]] = []
    for k in order:
        prev = versions[runs[-1][-1]] if runs else None
        if (
            prev is not None
            and prev.effective_till == versions[k].effective_from
            and prev.billing() == versions[k].billing()
        ):
            runs[-1].append(k)
        else:
            runs.append([k])
    run = next(r for r in runs if i in r)
    return versions[run[0]].effective_from, versions[run[-1]].effective_till, run


def covered(versions, ws, we) -> list[tuple[datetime, datetime]]:
    out: list[list[datetime]] = []
    for x in sorted(versions, key=lambda x: x.effective_from):
        s = max(x.effective_from, ws)
        e = we if x.effective_till is None else min(x.effective_till, we)
        if s >= e:
            continue
        if out and out[-1][1] == s:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


PROPS = settings(
    max_examples=int(__import__("os").environ.get("HYPO_N", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPS
@given(tz=zones, d=st.dates(date(1970, 1, 2), date(2040, 12, 31)))
def test_midnight_is_the_first_instant_at_or_after_local_midnight(tz, d):
    m = local_midnight(tz, d)
    target = datetime(d.year, d.month, d.day)
    assert wall(m, tz) >= target
    assert wall(m - timedelta(seconds=1), tz) < target
    assert wall(m, tz) - target < 3 * H  # at most a clock jump past midnight


@PROPS
@given(scenarios())
def test_periods_tile_the_window_and_respect_the_rules(scenario):
    versions, ws, we = scenario
    ps = periods(versions, ws, we)

    # Tiling: no gap, no overlap, exactly the window ∩ the versions' union.
    pieces: list[list[datetime]] = []
    for p in ps:
        assert p.start < p.end
        if pieces and pieces[-1][1] == p.start:
            pieces[-1][1] = p.end
        else:
            assert not pieces or pieces[-1][1] < p.start  # ordered, no overlap
            pieces.append([p.start, p.end])
    assert [(s, e) for s, e in pieces] == covered(versions, ws, we)

    for p in ps:
        x = versions[p.version]
        tz = x.billing_tz
        assert p.version_id == x.id
        # Inside one stretch of equal billing terms, attributed to the version in force at its end.
        x_from, x_till, _run = stretch(versions, p.version)
        assert x_from <= p.start and (x_till is None or p.end <= x_till)
        nat = period_containing(versions, p.start)  # the whole period: its end picks the version
        assert nat is not None and x.effective_from < nat.end
        assert x.effective_till is None or nat.end <= x.effective_till
        # The start is a window start, a version start, a billing boundary or (split) a month start.
        before, at = wall(p.start - timedelta(microseconds=1), tz), wall(p.start, tz)
        crossed = [before.date() + timedelta(days=k + 1) for k in range((at.date() - before.date()).days)]
        boundary = any(is_grid_date(c, x.billing_period, x.billing_day) for c in crossed)
        month = x.split_by_month and any(c.day == 1 for c in crossed)
        assert p.start in (ws, x_from) or boundary or month
        # No billing boundary inside a period, nor a month start when split.
        for c in _dates_between(p.start, p.end, tz):
            assert not is_grid_date(c, x.billing_period, x.billing_day) or local_midnight(tz, c) in (p.start, p.end)
            if x.split_by_month:
                assert c.day != 1 or local_midnight(tz, c) in (p.start, p.end)
        # Sane length; a period that is not cut short is a full one.
        assert p.end - p.start <= MAX_LEN[x.billing_period]
        cut = p.clipped or p.split or p.start == x_from or p.end == x_till
        if not cut:
            assert p.end - p.start >= MIN_FULL[x.billing_period] or _skipped_day(p, tz)
        assert p.local_start_date == wall(p.start, tz).date()
        assert p.local_end_date == wall(p.end - timedelta(microseconds=1), tz).date()
        whole = period_containing(versions, p.start)
        assert whole is not None and whole.version == p.version
        assert p.clipped == ((whole.start, whole.end) != (p.start, p.end))

    # Count, per stretch: about one period per grid step (two when split), plus cuts at the edges.
    for i, x in enumerate(versions):
        x_from, x_till, run = stretch(versions, i)
        if i != run[0]:
            continue
        s, e = max(x_from, ws), we if x_till is None else min(x_till, we)
        n = sum(1 for p in ps if p.version in run)
        if s >= e:
            assert n == 0
            continue
        step = MIN_FULL[x.billing_period] - (D if x.billing_period != "daily" else 0 * D)  # a skipped day
        cuts = (int((e - s) / step) + 1) * (2 if x.split_by_month and x.billing_period == "weekly" else 1)
        assert n <= 1 + cuts
        assert n >= int((e - s) / MAX_LEN[x.billing_period])


def _dates_between(start: datetime, end: datetime, tz: str) -> list[date]:
    """Local dates whose wall-clock midnight happens strictly inside (start, end)."""
    first, last = wall(start, tz).date() + D, wall(end - timedelta(microseconds=1), tz).date()
    out = []
    d = first
    while d <= last:
        out.append(d)
        d += D
    return out


def _skipped_day(p: Period, tz: str) -> bool:
    return (p.local_end_date - p.local_start_date).days * D > (p.end - p.start) + D


@PROPS
@given(scenarios(), st.data())
def test_period_containing_and_closed_periods_agree_with_periods(scenario, data):
    versions, ws, we = scenario
    ps = periods(versions, ws, we)
    if ps:
        p = data.draw(st.sampled_from(ps))
        at = p.start + (p.end - p.start) * data.draw(st.floats(0, 0.999))
        whole = period_containing(versions, at)
        assert whole is not None and whole.start <= p.start and p.end <= whole.end
        if not p.clipped:
            assert (whole.start, whole.end, whole.version) == (p.start, p.end, p.version)
    else:
        assert period_containing(versions, ws) is None
    closed = closed_periods(versions, we)
    assert all(c.end <= we and not c.clipped for c in closed)
    inside = [p for p in ps if not p.clipped and p.end <= we]
    assert [c for c in closed if c.start >= ws] == inside


# ------------------------------------------------------------------- CLI


def test_cli_agreement_periods(cli):
    from tests.helpers import client, owner_le

    owner_le(cli)
    c = client(cli)
    cli.json(
        "agreement",
        "create",
        "AG-P",
        "--company",
        c["name"],
        "--currency",
        "EUR",
        "--from",
        "2025-09-01",
        "--tz",
        MAD,
        "--billing-period",
        "weekly",
        "--billing-day",
        "1",
        "--split-by-month",
    )
    v2 = cli.json(
        "agreement",
        "version",
        "add",
        "AG-P",
        "--from",
        "2025-10-15T12:00",
        "--tz",
        MAD,
        "--billing-period",
        "monthly",
        "--billing-day",
        "1",
        "--no-split-by-month",
    )
    rows = cli.json("agreement", "periods", "AG-P", "--from", "2025-09-29", "--till", "2025-11-01", "--tz", MAD)
    assert [(r["local_start_date"], r["local_end_date"], r["split"]) for r in rows] == [
        ("2025-09-29", "2025-09-30", True),
        ("2025-10-01", "2025-10-05", True),
        ("2025-10-06", "2025-10-12", False),
        ("2025-10-13", "2025-10-15", False),
        ("2025-10-15", "2025-10-31", False),
    ]
    assert rows[0]["start"] == "2025-09-28T22:00:00Z" and rows[0]["billing_tz"] == MAD
    assert rows[3]["end"] == "2025-10-15T10:00:00Z" and rows[4]["version_id"] == v2["id"]
    assert rows[4]["billing_period"] == "monthly" and rows[4]["end_local"] == "2025-11-01T00:00:00+01:00"
    assert not any(r["clipped"] for r in rows)

    closed = cli.json("agreement", "periods", "AG-P", "--closed", "--till", "2025-10-14T00:00:00+02:00")
    assert [r["local_start_date"] for r in closed] == [
        "2025-09-01",
        "2025-09-08",
        "2025-09-15",
        "2025-09-22",
        "2025-09-29",
        "2025-10-01",
        "2025-10-06",
    ]
    clipped = cli.json("agreement", "periods", "AG-P", "--from", "2025-10-02", "--till", "2025-10-03", "--tz", MAD)
    assert [(r["local_start_date"], r["clipped"]) for r in clipped] == [("2025-10-02", True)]
    assert cli("agreement", "periods", "NOPE", "--till", "2025-10-03", expect=3).exit_code == 3
    bad = cli("agreement", "periods", "AG-P", "--from", "2025-10-03", "--till", "2025-10-02", expect=4)
    assert "--till" in bad.stderr
    assert cli("agreement", "periods", "AG-P", "--from", "yesterday-ish", expect=4).exit_code == 4


# ------------------------------------------- which version changes cut a period


def test_a_change_of_credit_limit_emails_or_days_for_payment_does_not_cut_a_period():
    """Back-to-back versions with the same billing terms are one grid: March is
    one period, owned by the version in force at its end; a tax-rate or zone
    change still cuts."""
    change = utc(2025, 3, 12, 15, 30)
    same = [v("monthly", 1, start=utc(2025, 1, 1), till=change, id=10), v("monthly", 1, start=change, id=11)]
    ps = periods(same, utc(2025, 2, 1), utc(2025, 5, 1))
    assert [(p.start, p.end, p.version_id, p.version) for p in ps] == [
        (utc(2025, 2, 1), utc(2025, 3, 1), 10, 0),
        (utc(2025, 3, 1), utc(2025, 4, 1), 11, 1),
        (utc(2025, 4, 1), utc(2025, 5, 1), 11, 1),
    ]
    assert period_containing(same, utc(2025, 3, 2)) == ps[1]
    assert [p.start for p in closed_periods(same, utc(2025, 4, 1))][-1] == utc(2025, 3, 1)
    clipped = periods(same, utc(2025, 3, 5), utc(2025, 3, 6))
    assert [(p.start, p.end, p.version_id, p.clipped) for p in clipped] == [
        (utc(2025, 3, 5), utc(2025, 3, 6), 11, True)
    ]
    taxed = [same[0], VersionTerms(change, None, "monthly", 1, id=11, tax_rate=20_000_000)]
    zoned = [same[0], v("monthly", 1, MAD, start=change, id=11)]
    for cut in (taxed, zoned):
        assert [p.end for p in periods(cut, utc(2025, 3, 1), utc(2025, 3, 20))][0] == change


def test_cli_credit_limit_version_keeps_the_tier_counter_and_one_invoice(cli, tmp_path):
    """Tier 10 × 0.05 then 0.035: 8 messages before and 8 after a version that only
    raises the credit limit and the days for payment cost 10 × 0.05 + 6 × 0.035 =
    0.71 (not 16 × 0.05 = 0.80), on one March invoice whose due date follows the
    version in force at the end of March (45 days)."""
    import yaml

    from tests.test_money_cli import edr_file, row
    from tests.test_money_cli import setup as money_setup

    money_setup(cli)
    leaf = {"scale": {"type": "tier", "steps": [[10, "0.05"], [None, "0.035"]]}}
    doc = {"tree": {"sms": {"children": {"sms_message": {
        "depends_on": "country", "billing_rule": "submitted", "quantity_rule": "messages",
        "children": {"ES": leaf, "others": {"price_type": "blocked"}},
    }}}}}  # fmt: skip
    (tmp_path / "tier.yaml").write_text(yaml.safe_dump(doc))
    cli("service", "tree", "apply", "SMS service", str(tmp_path / "tier.yaml"))
    cli.json(
        "agreement", "version", "add", "AG-1", "--from", "2026-03-15", "--credit-limit", "1000",
        "--days-for-payment", "45", "--email", "invoice=billing@example.com",
    )  # fmt: skip
    stamp = lambda d, i: f"2026-03-{d}T10:00:{i:02d}Z"  # noqa: E731
    rows = [row(i, segments=1, prepared_at=stamp(10, i), submitted_at=stamp(10, i)) for i in range(8)]
    rows += [row(i, segments=1, prepared_at=stamp(20, i), submitted_at=stamp(20, i)) for i in range(8, 16)]
    got = cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert (got["rated"], got["rejected"]) == (16, 0)
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.71"
    assert [cli.json("edr", "show", f"x-{i}")["cost"] for i in (9, 10, 15)] == ["0.05", "0.035", "0.035"]
    march = [
        (i["local_start_date"], i["local_end_date"], i["net"], i["due_date"])
        for i in cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z")
        if i["local_start_date"].startswith("2026-03")
    ]
    assert march == [("2026-03-01", "2026-03-31", "0.71", "2026-05-16")]
    listed = cli.json("agreement", "periods", "AG-1", "--from", "2026-03-01", "--till", "2026-04-01")
    assert [(p["start"], p["end"]) for p in listed] == [("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")]
