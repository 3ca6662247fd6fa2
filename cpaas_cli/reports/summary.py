"""Traffic summaries over EDRs: messages and parts counted apart, outcome shares, cost.

Aggregate queries do the heavy work in the database; Python only folds their
(small) results: time buckets into the chosen zone's day/week/month, and rows
without a currency (not rated yet, so no cost) into the one currency of their
group.

On PostgreSQL one query groups by the local date (``timezone()``). SQLite has
no zone rules and no hash aggregation: grouping a million rows by a text time
key costs more than reading them. There the window is cut into the zone's
local days (UTC bounds computed here with zoneinfo) and each day is one
indexed range query grouped by the other dimensions only; a day with a UTC
offset change inside it (a DST night) is grouped by UTC hour and each hour
moved to its local date, so every row lands on its true local day. A group whose EDRs are rated in several currencies keeps one row
per currency, since amounts in different currencies are never added.

Counting: ``messages`` counts EDRs (one per message attempt), ``parts`` adds
their segments. ``delivered`` includes ``seen`` (a seen message was
delivered); ``pending`` is every status that is not final yet.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cpaas_cli.edr.export import EDR, EdrFilter
from cpaas_cli.errors import InvalidInput
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import TimeError, zone

TIME_DIMS = ("day", "week", "month")
COLUMN_DIMS = {
    "channel": "channel",
    "country": "country",
    "network": "network",
    "sender": "sender",
    "status": "status",
    "campaign": "campaign_id",
    "company": "company_id",
    "agreement": "agreement_id",
    "direction": "direction",
    "mccmnc": None,
}
DIMENSIONS = TIME_DIMS + tuple(COLUMN_DIMS)
DELIVERED = ("delivered", "seen")


def parse_by(values: list[str] | None) -> list[str]:
    """``--by day,country`` or repeated ``--by``; checks names and duplicates."""
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip().lower() for x in v.split(",") if x.strip())
    bad = [d for d in out if d not in DIMENSIONS]
    if bad:
        raise InvalidInput(f"--by: unknown dimension(s) {', '.join(bad)}; choose from {', '.join(DIMENSIONS)}")
    if len(set(out)) != len(out):
        raise InvalidInput("--by: a dimension is listed twice")
    if sum(d in TIME_DIMS for d in out) > 1:
        raise InvalidInput("--by: choose one of day, week, month")
    return out


def _time_key(conn: Connection, tz: str) -> tuple[Any, Any]:
    """SQL expression of the time bucket, and a function mapping its value to the local date."""
    c = EDR.c.event_at
    if conn.dialect.name == "postgresql":
        expr = sa.func.to_char(sa.func.timezone(tz, c), "YYYY-MM-DD")
        return expr, date.fromisoformat
    zi = zone(tz)
    if tz.upper() in ("UTC", "ETC/UTC"):
        return sa.func.substr(c, 1, 10), date.fromisoformat
    # SQLite has no zone rules: group by UTC hour (minute for zones with
    # sub-hour offsets) and move each bucket to the local date here.
    offsets = {
        (datetime(y, m, 1, tzinfo=UTC).astimezone(zi).utcoffset() or timedelta()).total_seconds()
        for y in (2000, 2026)
        for m in (1, 7)
    }
    n = 13 if all(o % 3600 == 0 for o in offsets) else 16
    pad = ":00:00" if n == 13 else ":00"

    def local(v: str) -> date:
        at = datetime.fromisoformat(v[:10] + "T" + v[11:n] + pad).replace(tzinfo=UTC)
        return at.astimezone(zi).date()

    return sa.func.substr(c, 1, n), local


def local_days(since: datetime, till: datetime, tz: str) -> Iterator[tuple[datetime, datetime, date, bool]]:
    """The window cut at the zone's local midnights: (start, end, local date, offset changes inside).

    The pieces cover [since, till) exactly, in order. When the UTC offset is the
    same at both ends of a piece, every instant in it has that local date;
    otherwise (a DST change) its rows need grouping by hour.
    """
    zi = zone(tz)

    def midnight(d: date) -> datetime:  # the first instant of local day d (fold=0 also for a skipped midnight)
        return datetime.combine(d, time(0), tzinfo=zi).astimezone(UTC)

    d = since.astimezone(zi).date() - timedelta(days=1)
    start = midnight(d)
    while start < till:
        nxt = midnight(d + timedelta(days=1))
        lo, hi = max(start, since), min(nxt, till)
        if lo < hi:
            shift = lo.astimezone(zi).utcoffset() != (hi - timedelta(microseconds=1)).astimezone(zi).utcoffset()
            yield lo, hi, d, shift
        d, start = d + timedelta(days=1), nxt


def _label(dim: str, d: date) -> str:
    if dim == "day":
        return d.isoformat()
    if dim == "week":
        return (d - timedelta(days=d.weekday())).isoformat()  # the Monday of its ISO week
    return d.strftime("%Y-%m")


def share(part: int, whole: int) -> str:
    if not whole:
        return "0.0"
    return str((Decimal(part) * 100 / whole).quantize(Decimal("0.1"), ROUND_HALF_UP))


def summary(conn: Connection, flt: EdrFilter, *, by: list[str], tz: str = "UTC") -> list[dict[str, Any]]:
    """Rows of dimension values + messages, parts, outcomes (counts and shares), cost, currency."""
    try:
        zone(tz)
    except TimeError as exc:
        raise InvalidInput(f"--tz: {exc}") from exc
    c = EDR.c
    status = c.status
    metrics = [
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(c.segments), 0),
        sa.func.sum(sa.case((status.in_(DELIVERED), 1), else_=0)),
        sa.func.sum(sa.case((status == "undelivered", 1), else_=0)),
        sa.func.sum(sa.case((status == "failed", 1), else_=0)),
        sa.func.sum(c.cost),
    ]

    def query(keys: list[Any], where: list[Any]) -> Any:
        labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
        q = sa.select(*labelled, c.currency, *metrics).where(*where)
        return q.group_by(*[sa.literal_column(f"k{i}") for i in range(len(keys))], c.currency)

    # the key columns of every dimension but time, and how each result row's values become dimension values
    keys: list[Any] = []
    post: list[Any] = []
    for d in by:
        if d in TIME_DIMS:
            post.append("time")
        elif d == "mccmnc":
            keys.extend([c.mcc, c.mnc])
            post.append("mccmnc")
        else:
            keys.append(c[COLUMN_DIMS[d]])
            post.append(None)
    time_dim = next((d for d in by if d in TIME_DIMS), None)
    acc: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)

    def fold(result: Any, tkey: bool, label: Any) -> None:
        """Add a query's rows to ``acc``; ``tkey``: its first column is the time key (mapped by ``label``)."""
        nk = len(keys) + tkey
        for r in result:
            vals = list(r[:nk])
            if tkey:
                t = vals.pop(0)
                when_ = None if t is None else label(t)
            else:
                when_ = label
            dims: list[Any] = []
            i = 0
            for p in post:
                if p == "time":
                    dims.append(when_)
                elif p == "mccmnc":
                    dims.append(None if vals[i] is None else f"{vals[i]}{vals[i + 1] or ''}")
                    i += 2
                else:
                    dims.append(vals[i])
                    i += 1
            slot = acc[(*dims, r[nk])]
            for j, v in enumerate(r[nk + 1 :]):
                slot[j] += int(v or 0)

    if time_dim is None:
        fold(conn.execute(query(keys, flt.where())), False, None)
    elif conn.dialect.name != "sqlite" or flt.since is None or flt.till is None:
        expr, to_date = _time_key(conn, tz)
        fold(conn.execute(query([expr, *keys], flt.where())), True, lambda v: _label(time_dim, to_date(v)))
    else:
        _fold_by_local_day(conn, flt, tz, time_dim, query, keys, fold)
    # fold rows without a currency into their group's only currency
    currencies: dict[tuple, set[str]] = defaultdict(set)
    for key in acc:
        if key[-1] is not None:
            currencies[key[:-1]].add(key[-1])
    for key in [k for k in acc if k[-1] is None]:
        cur = currencies.get(key[:-1])
        if cur and len(cur) == 1:
            into = acc[(*key[:-1], next(iter(cur)))]
            for j, v in enumerate(acc.pop(key)):
                into[j] += v
    out = []
    for key in sorted(acc, key=lambda k: tuple((v is None, str(v) if v is not None else "") for v in k)):
        m = acc[key]
        n, parts, dlv, und, fail, cost = m
        row: dict[str, Any] = dict(zip(by, key[:-1], strict=True))
        row.update(
            messages=n,
            parts=parts,
            delivered=dlv,
            undelivered=und,
            failed=fail,
            pending=n - dlv - und - fail,
            delivered_pct=share(dlv, n),
            undelivered_pct=share(und, n),
            failed_pct=share(fail, n),
            cost=format_micros(cost) if key[-1] is not None else None,
            currency=key[-1],
        )
        out.append(row)
    return out


def _fold_by_local_day(conn: Connection, flt: EdrFilter, tz: str, time_dim: str, query, keys, fold) -> None:
    """SQLite: one indexed range query per local day of the window (see the module docstring)."""
    ev = EDR.c.event_at
    inside = [ev >= flt.since, ev < flt.till]
    first, last = conn.execute(
        sa.select(
            sa.select(sa.func.min(ev)).where(*inside).scalar_subquery(),
            sa.select(sa.func.max(ev)).where(*inside).scalar_subquery(),
        )
    ).one()
    if first is None:
        return
    rest = dataclasses.replace(flt, since=None, till=None).where()
    lo, hi = sa.bindparam("lo", type_=ev.type), sa.bindparam("hi", type_=ev.type)
    plain = query(keys, [ev >= lo, ev < hi, *rest])
    expr, to_date = _time_key(conn, tz)
    hourly = query([expr, *keys], [ev >= lo, ev < hi, *rest])
    for start, end, day, shift in local_days(first, last + timedelta(microseconds=1), tz):
        if shift:
            fold(conn.execute(hourly, {"lo": start, "hi": end}), True, lambda v: _label(time_dim, to_date(v)))
        else:
            fold(conn.execute(plain, {"lo": start, "hi": end}), False, _label(time_dim, day))


def columns(by: list[str]) -> list[str]:
    return [
        *by,
        "messages",
        "parts",
        "delivered",
        "undelivered",
        "failed",
        "pending",
        "delivered_pct",
        "undelivered_pct",
        "failed_pct",
        "cost",
        "currency",
    ]
