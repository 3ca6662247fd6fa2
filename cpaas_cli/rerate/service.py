"""Rerate: re-rate stored EDRs of a time window with the rates in force now.

Units. The window is widened to whole billing periods: a task is processed
as units of (agreement, billing period) that overlap [from, till) and hold at
least one EDR of the window (and of the chosen channels). Scale counters
are per period (AMB-11), so a unit re-rates **every** rated or rejected EDR
of its agreement in that period, in event order, from empty counters: tiers
and back-to-first thresholds come out as if the new rates had always
applied, and EDRs of the same period outside the window (or of other
channels) may change cost too. They are part of the report and the counters.

Money. Per EDR, old = Σ of its ledger rows, new = the engine's charge (event
amount + back-to-first adjustment, 0 when a pack paid). When they differ one
``rerate`` charge row of new − old is appended (both amounts in details,
``revision`` = task id) dated at the new charge time (else the old one), so
the ledger stays append-only and Σ per EDR equals its new cost. The balance
moves by the delta only, without a credit check: a rerate records what is
owed. Pack usage is recomputed: stored usage − the unit's old consumption +
its new consumption. Counters of the unit's period are replaced by the
recomputed ones.

Not re-rated: unrated EDRs (``edr rate`` handles them) and EDRs refused for
insufficient credit (they were never sent as chargeable).

Straddlers. An EDR prepared in one period but charged in a later one (its
billing trigger, submission or delivery, falls after the boundary) belongs to
the unit of its charge period (:func:`owner`): that unit takes it first (event
order) and counts it in its tiers, the unit of its event period skips it, and
a task whose window holds such an EDR also takes the unit that owns it. Only
an EDR prepared more than ``STRADDLE_LAG`` before its charge period stays
with its event period, rated against the later period's stored counter
(which that unit does not rewrite).

Speed. The EDRs of a unit are read, rated and written through the raw DBAPI
cursor in chunks of ``CHUNK``: tuples in, the pure engine, only changed EDRs
written back (a narrow UPDATE when only the price columns moved) and one
executemany of ledger rows per chunk; see benchmarks/rerate.py.

Invoices. After each unit the agreement's draft invoices claim the new rows
and are rebuilt; confirmed invoices never change, their period's rows are
claimed by the next invoice as correction lines.

Restartability. Each unit is one transaction that ends with its
``rerate_unit`` marker row; a rerun skips units with a marker, and the task
counters are the sum of the markers, so a killed run followed by a rerun
ends with the totals of a clean run. Running a window again with unchanged
rates updates no EDR.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.audit import service as audit
from cpaas_cli.billing import ledger
from cpaas_cli.billing.periods import Period, VersionTerms, period_containing, periods
from cpaas_cli.catalog.vocab import sender_type_of
from cpaas_cli.db import locking
from cpaas_cli.edr import service as edrs
from cpaas_cli.errors import Conflict, InvalidInput, NotFound
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import Charge, PackUsage, ScaleCounter
from cpaas_cli.models.edr import FINAL_STATUSES, Edr
from cpaas_cli.models.rerate import RerateTask, RerateUnit
from cpaas_cli.models.tenancy import Company
from cpaas_cli.money import format_micros
from cpaas_cli.rating import engine as en
from cpaas_cli.refs import by_ref
from cpaas_cli.timeutil import iso

EDR = Edr.__table__
CHG = Charge.__table__
CNT = ScaleCounter.__table__
PCK = PackUsage.__table__
UNIT = RerateUnit.__table__
CHUNK = 50_000  # EDRs read (and written) per round trip; a unit is one transaction
MAX_LISTED = 200  # EDRs with a changed rating state listed in a report
COMPARE = tuple(k for k in edrs.RESULT_COLUMNS if k != "rated_at")
ELIGIBLE = sa.or_(
    EDR.c.rating_state == "rated",
    sa.and_(EDR.c.rating_state == "rejected", sa.func.coalesce(EDR.c.rating_reason, "") != "insufficient_credit"),
)
# How long before a period an EDR may be prepared and still belong to it by
# its charge (a message submitted or delivered after the boundary): SMS
# validity periods, hence delivery receipts, stay within a few days.
STRADDLE_LAG = timedelta(days=7)


# ------------------------------------------------------------------ tasks


def _agreement_ids(session: Session, task: RerateTask) -> list[int]:
    if task.agreement_ids:
        return list(task.agreement_ids)
    q = sa.select(Agreement.id).where(Agreement.company_id == task.company_id).order_by(Agreement.id)
    return list(session.execute(q).scalars())


def _window_where(task: RerateTask, ag_id: int, lo: datetime, hi: datetime) -> list[Any]:
    where = [EDR.c.agreement_id == ag_id, EDR.c.event_at >= lo, EDR.c.event_at < hi, ELIGIBLE]
    if task.channels:
        where.append(EDR.c.channel.in_(task.channels))
    return where


def units(session: Session, task: RerateTask, plans: edrs.Plans | None = None) -> list[tuple[int, Period, int]]:
    """(agreement id, whole billing period, EDRs prepared in it) in order.

    A period is a unit when an eligible EDR of the window was prepared in it,
    or when such an EDR is charged in it (a straddler: see :func:`owner`)."""
    plans = plans or edrs.Plans(session)
    out = []
    for ag_id in _agreement_ids(session, task):
        ag = session.get(Agreement, ag_id)
        terms = [VersionTerms.of(v) for v in agreements.versions(session, ag)]
        if not terms:
            continue
        found: dict[datetime, Period] = {}
        for clipped in periods(terms, task.time_from, task.time_till):
            p = period_containing(terms, clipped.start)
            if p is None or p.start in found:
                continue
            lo, hi = max(p.start, task.time_from), min(p.end, task.time_till)
            hit = session.execute(sa.select(EDR.c.id).where(*_window_where(task, ag_id, lo, hi)).limit(1)).first()
            if hit is None:
                continue
            found[p.start] = p
            for start in _later_owners(session, plans, task, ag_id, max(lo, p.end - STRADDLE_LAG), hi, p.end):
                if start not in found and (q := period_containing(terms, start)) is not None:
                    found[start] = q
        for start in sorted(found):
            p = found[start]
            whole = [EDR.c.agreement_id == ag_id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end, ELIGIBLE]
            n = session.execute(sa.select(sa.func.count()).select_from(EDR).where(*whole)).scalar() or 0
            out.append((ag_id, p, int(n)))
    return out


def _later_owners(
    session: Session, plans: edrs.Plans, task: RerateTask, ag_id: int, lo: datetime, hi: datetime, end: datetime
) -> set[datetime]:
    """Starts of the later periods that own window EDRs prepared in [lo, hi) (before ``end``)."""
    plan = plans.get(ag_id)
    if plan is None or lo >= hi:
        return set()
    raw = _Raw(session)
    e = raw.param(end)
    sql = f" AND e.event_at >= ? AND e.event_at < ? AND {_TRIGGER_FROM}"
    params: list[Any] = [ag_id, raw.param(lo), raw.param(hi), e, e, e]
    if task.channels:
        sql += f" AND e.channel IN ({', '.join('?' * len(task.channels))})"
        params += list(task.channels)
    starts = {owner(plan, _event(r, raw.parse)) for r in raw.rows(sql, params)}
    return {s for s in starts if s is not None and s >= end}


def create(
    session: Session,
    *,
    time_from: datetime,
    time_till: datetime,
    company: str,
    agreement_refs: Sequence[str] = (),
    channels: Sequence[str] = (),
    scheduled_for: datetime | None = None,
    draft: bool = False,
    recalculate_sessions: bool = False,
) -> RerateTask:
    """Record a task with its estimated EDR count. Without ``scheduled_for``
    it is due at once (``serve`` picks it up) unless kept as a draft."""
    if time_till <= time_from:
        raise InvalidInput("--till must be later than --from")
    co = by_ref(session, Company, company, what="company")
    ag_ids = []
    for ref in agreement_refs:
        ag = agreements.get(session, ref)
        if ag.company_id != co.id:
            raise InvalidInput(f"agreement {ag.code} does not belong to company {co.name}")
        ag_ids.append(ag.id)
    task = RerateTask(
        status="draft" if draft else "scheduled",
        company_id=co.id,
        agreement_ids=sorted(set(ag_ids)),
        channels=sorted({c.lower() for c in channels}),
        time_from=time_from,
        time_till=time_till,
        scheduled_for=None if draft else (scheduled_for or clock.now()),
        recalculate_sessions=recalculate_sessions,
        created_by=session.info.get("actor"),
    )
    task.estimated = sum(n for _a, _p, n in units(session, task))
    session.add(task)
    session.flush()
    return task


def get(session: Session, task_id: int | str) -> RerateTask:
    t = session.get(RerateTask, int(task_id)) if str(task_id).isdigit() else None
    if t is None:
        raise NotFound(f"rerate task {task_id!r} not found")
    return t


def as_dict(session: Session, t: RerateTask) -> dict[str, Any]:
    co = session.get(Company, t.company_id)
    codes = [a.code for i in t.agreement_ids if (a := session.get(Agreement, i)) is not None]
    return {
        "id": t.id,
        "status": t.status,
        "company": co.name if co else t.company_id,
        "agreements": codes,
        "channels": list(t.channels),
        "from": iso(t.time_from),
        "till": iso(t.time_till),
        "scheduled_for": iso(t.scheduled_for),
        "recalculate_sessions": t.recalculate_sessions,
        "estimated": t.estimated,
        "processed": t.processed,
        "updated": t.updated,
        "unchanged": t.unchanged,
        "failed": t.failed,
        "created_by": t.created_by,
        "run_by": t.run_by,
        "started_at": iso(t.started_at),
        "finished_at": iso(t.finished_at),
        "updated_at": iso(t.updated_at),
        "error": t.error,
    }


def list_tasks(session: Session, *, status: str | None = None) -> list[dict[str, Any]]:
    q = select(RerateTask).order_by(col(RerateTask.id))
    if status:
        q = q.where(RerateTask.status == status)
    return [as_dict(session, t) for t in session.exec(q)]


def cancel(session: Session, task_id: int | str) -> RerateTask:
    t = get(session, task_id)
    locking.lock_row(session, t)
    if t.status not in ("draft", "scheduled", "failed"):
        raise Conflict(f"a {t.status} rerate task cannot be canceled")
    t.status = "canceled"
    session.flush()
    return t


# -------------------------------------------------------------------- run


class _Report:
    def __init__(self) -> None:
        self.by_ag: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.by_dest: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self.state_changes: list[dict[str, Any]] = []
        self.state_changed = 0

    def merge(self, ag: str, dest: dict[tuple[str, str], list[int]]) -> None:
        """Add one unit's figures per (country, network): [old, new, EDRs, cost changed]."""
        tot = self.by_ag[ag]
        for (country, network), v in dest.items():
            acc = self.by_dest[(ag, country, network)]
            for i in range(4):
                acc[i] += v[i]
                tot[i] += v[i]

    def state_changes_of(self, session: Session, count: int, changes: list[tuple[int, Any, Any, tuple]]) -> None:
        """Add a unit's EDRs whose rating state changed: ``count`` in all, the first listed."""
        self.state_changed += count
        room = MAX_LISTED - len(self.state_changes)
        if room <= 0 or not changes:
            return
        changes = changes[:room]
        ids = [c[0] for c in changes]
        ext = dict(session.execute(sa.select(EDR.c.id, EDR.c.external_id).where(EDR.c.id.in_(ids))).all())
        for eid, old_state, old_reason, res in changes:
            self.state_changes.append(
                {
                    "edr": eid,
                    "external_id": ext.get(eid),
                    "from": old_state + (f"/{old_reason}" if old_reason else ""),
                    "to": res[0] + (f"/{res[1]}" if res[1] else ""),
                }
            )

    def as_dict(self) -> dict[str, Any]:
        def fig(v: list[int]) -> dict[str, Any]:
            return {
                "old_cost": format_micros(v[0]),
                "new_cost": format_micros(v[1]),
                "delta": format_micros(v[1] - v[0]),
                "edrs": v[2],
                "cost_changed": v[3],
            }

        return {
            "agreements": [{"agreement": a, **fig(v)} for a, v in sorted(self.by_ag.items())],
            "destinations": [
                {"agreement": a, "country": c or None, "network": n or None, **fig(v)}
                for (a, c, n), v in sorted(self.by_dest.items())
            ],
            "state_changed": self.state_changed,
            "state_changes": self.state_changes,
        }


# ------------------------------------------------------------ raw reading
#
# The hot path reads and writes with the DBAPI cursor of the session's
# connection (same transaction): plain tuples in, tuples out, no per-value
# type processing. Times are ISO text on SQLite (written back as read when
# unchanged) and aware datetimes on PostgreSQL. Columns that take few distinct
# values come as one value each (the seven lookup and report attributes; the
# stored rating description): one thing per row to hash instead of seven or
# nine, decoded once per distinct value. SQLite builds it as JSON array text
# (in C, cheaply); PostgreSQL's json_build_array cost the server about as much
# as the rest of the read, so there the columns come plain and the client
# packs them into tuples (one C-level itemgetter of slices, _PACK, in _Raw.rows).

# A read row, by position.
R_ID, R_AT, R_SUB, R_DLV, R_FINAL, R_KEY, R_SEGMENTS, R_OLD, R_DESC, R_PRICE, R_QTY, R_COST = range(12)
# The stored rating result (edr.service.RESULT_COLUMNS but rated_at) in two parts:
# the description (R_DESC) and the price columns (R_PRICE…R_COST). _Unit.rate_rows
# builds both from a decision as edr.service._result does.
_DESC = ("rating_state", "rating_reason", "rating_note", "rate_path", "service_id", "billing_rule", "currency",
         "pack_enabled_id", "pack_units")  # fmt: skip
_MONEY = ("unit_price", "quantity", "cost")
if sorted(COMPARE) != sorted(_DESC + _MONEY):  # pragma: no cover - edr.service changed its result columns
    raise RuntimeError(f"rerate result columns {_DESC + _MONEY} no longer match edr.service {COMPARE}")
_KEY = ("channel", "direction", "mcc", "mnc", "country", "network", "sender")
# PostgreSQL's plain row → that layout (slices of the key and description columns).
_K0 = R_KEY
_D0 = R_DESC + len(_KEY) - 1
_PACK = itemgetter(
    *range(R_KEY), slice(_K0, _K0 + len(_KEY)), *range(_K0 + len(_KEY), _D0), slice(_D0, _D0 + len(_DESC)),
    *range(_D0 + len(_DESC), _D0 + len(_DESC) + len(_MONEY)),
)  # fmt: skip
_ELIGIBLE_SQL = (
    "(e.rating_state = 'rated' OR (e.rating_state = 'rejected'"
    " AND COALESCE(e.rating_reason, '') <> 'insufficient_credit'))"
)
_FINAL_SQL = f"CASE WHEN e.status IN ({', '.join(repr(s) for s in FINAL_STATUSES)}) THEN 1 ELSE 0 END"
_SELECT = (
    "SELECT e.id, e.event_at, e.submitted_at, COALESCE(e.delivered_at, e.seen_at), "
    f"{_FINAL_SQL}, <key>, e.segments, "
    "(SELECT CAST(COALESCE(SUM(c.amount), 0) AS BIGINT) FROM charge c WHERE c.edr_id = e.id), "
    f"<desc>, {', '.join('e.' + c for c in _MONEY)} FROM edr e WHERE e.agreement_id = ? AND {_ELIGIBLE_SQL}"
)
# A trigger time (submission, delivery, seen) at or after ?.
_TRIGGER_FROM = "(e.submitted_at >= ? OR e.delivered_at >= ? OR e.seen_at >= ?)"
_CHARGE_COLS = ("agreement_id", "kind", "edr_id", "revision", "amount", "currency", "at", "period_start", "details",
                "created_at")  # fmt: skip
_fromiso = datetime.fromisoformat


def _parse_sqlite(v: str | None) -> datetime | None:
    # '+00:00' parses straight to UTC; .replace(tzinfo=UTC) costs ten times more
    return None if v is None else _fromiso(v + "+00:00")


def _parse_pg(v: datetime | None) -> datetime | None:
    return v if v is None or v.tzinfo is UTC else v.astimezone(UTC)


class _Raw:
    """The DBAPI connection of the session's transaction, with the dialect's
    placeholders and time format."""

    def __init__(self, session: Session):
        self.conn = session.connection().connection
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.parse = _parse_pg if self.pg else _parse_sqlite
        self.param: Callable[[datetime | None], Any] = (lambda v: v) if self.pg else edrs._sqlite_time
        self.select = _SELECT.replace("<key>", self._array(_KEY)).replace("<desc>", self._array(_DESC))
        self._join_settings: tuple[str, str] | None = None

    def _array(self, columns: Sequence[str]) -> str:
        cols = ", ".join(f"e.{c}" for c in columns)
        return cols if self.pg else f"json_array({cols})"

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Read rows of ``self.select`` (+ ``sql``) in the ``R_*`` layout. PostgreSQL's
        plain key and description columns are packed into one tuple each."""
        got = self.fetch(self.select + sql, params)
        return list(map(_PACK, got)) if self.pg else got

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
            return cur.fetchall()
        finally:
            cur.close()

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        cur = self.conn.cursor()
        try:
            cur.executemany(self._sql(sql), rows)
        finally:
            cur.close()

    # PostgreSQL's bulk path: COPY instead of one INSERT or UPDATE per row.

    def copy(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        text = edrs.copy_text([list(c) for c in zip(*rows, strict=True)])
        cur = self.conn.cursor()
        try:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                if text is not None:
                    cp.write(text)  # built column by column: far less time holding the GIL
                else:
                    for r in rows:
                        cp.write_row(r)
        finally:
            cur.close()

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """INSERT rows: COPY on PostgreSQL; on SQLite ``edrs.values_statements``."""
        if not rows:
            return
        if self.pg:
            self.copy(table, columns, rows)
            return
        cur = self.conn.cursor()
        try:
            for sql, params in edrs.values_statements(table, columns, iter(rows), len(rows), 999):
                if type(params) is list:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
        finally:
            cur.close()

    def update_prices(self, rows: list[tuple[Any, ...]]) -> None:
        """(unit_price, quantity, cost, rated_at, id) rows: into a temporary table
        (COPY on PostgreSQL), then one UPDATE … FROM, which probes the EDR
        table's primary key once per row (on SQLite a third faster than an
        UPDATE statement per row; before SQLite 3.33, which has no UPDATE …
        FROM, one statement per row)."""
        if not rows:
            return
        if not self.pg:
            self._update_prices_sqlite(rows)
            return
        cur = self.conn.cursor()
        try:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS rerate_prices (unit_price bigint, quantity integer, cost bigint,"
                " rated_at timestamptz, id bigint) ON COMMIT DROP"
            )
            cur.execute("TRUNCATE rerate_prices")
        finally:
            cur.close()
        self.copy("rerate_prices", (*_MONEY, "rated_at", "id"), rows)
        cur = self.conn.cursor()
        try:
            # One primary-key probe per row. Left to itself the planner (temporary
            # table, no statistics) hashes the chunk and scans the whole EDR
            # table for every chunk: 0.35 s per chunk at 1M EDRs, ten times that
            # at 10M. The two settings are put back as they were.
            if self._join_settings is None:
                cur.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
                self._join_settings = cur.fetchone()
            cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            cur.execute(
                "UPDATE edr SET unit_price = t.unit_price, quantity = t.quantity, cost = t.cost, rated_at = t.rated_at"
                " FROM rerate_prices t WHERE edr.id = t.id"
            )
            cur.execute(
                "SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)",
                self._join_settings,
            )
        finally:
            cur.close()

    def _update_prices_sqlite(self, rows: list[tuple[Any, ...]]) -> None:
        cols = (*_MONEY, "rated_at")
        if sqlite3.sqlite_version_info < (3, 33, 0):  # pragma: no cover - older SQLite library
            self.many(f"UPDATE edr SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?", rows)
            return
        cur = self.conn.cursor()
        try:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS rerate_prices"
                " (unit_price INTEGER, quantity INTEGER, cost INTEGER, rated_at TEXT, id INTEGER PRIMARY KEY)"
            )
            cur.execute("DELETE FROM temp.rerate_prices")
        finally:
            cur.close()
        self.insert("temp.rerate_prices", (*cols, "id"), rows)
        cur = self.conn.cursor()
        try:
            cur.execute(
                f"UPDATE edr SET {', '.join(f'{c} = t.{c}' for c in cols)}"
                " FROM temp.rerate_prices t WHERE edr.id = t.id"
            )
            cur.execute("DELETE FROM temp.rerate_prices")
        finally:
            cur.close()


def _unpacked(v: str | tuple) -> tuple:
    """A packed key or description (``R_KEY``, ``R_DESC``) as a tuple."""
    return v if type(v) is tuple else tuple(json.loads(v))


def _attributes(key: str | tuple) -> tuple[dict[str, Any], str | None, tuple[str, str]]:
    """(lookup query as edr.service._event builds it, sender, report key) of a row's key.
    The query is edr.service's shared dict for its attributes: the engine's route
    memo is probed by that dict's identity (EDRs of many senders share it)."""
    channel, direction, mcc, mnc, country, network, sender = _unpacked(key)
    q = edrs._query_of((channel or "sms", direction or "mt", mcc, mnc, country, sender_type_of(sender)))
    return q, sender, (country or "", network or "")


def _event(row: Sequence[Any], parse: Callable[[Any], datetime | None]) -> en.Event:
    """The engine event of a read row, as edr.service._event builds it (the hot
    loop in _Unit.rate_rows inlines the same)."""
    q, sender, _ = _attributes(row[R_KEY])
    return en.Event(
        key=row[R_ID],
        at=parse(row[R_AT]),
        query=q,
        segments=row[R_SEGMENTS] or 1,
        sender=sender,
        submitted_at=parse(row[R_SUB]),
        delivered_at=parse(row[R_DLV]),
        final=bool(row[R_FINAL]),
    )


def owner(plan: en.Plan, ev: en.Event) -> datetime | None:
    """Start of the billing period whose rerate unit re-rates this EDR.

    That is the period of its charge (the engine's ``period_start``, from the
    billing trigger) when it falls after the period of its event time and the
    event is at most ``STRADDLE_LAG`` before it; otherwise the event's own
    period. Decided on an empty state (pure, the same in every unit), so the
    two units at a boundary always agree on who takes a straddling EDR."""
    own = plan.period_of(ev.at)
    d = en.rate(ev, plan, en.State())
    p = d.period_start if d.state == en.RATED else None
    if p is not None and (own is None or p > own) and ev.at >= p - STRADDLE_LAG:
        return p
    return own


def _straddlers(raw: _Raw, plan: en.Plan, ag_id: int, p: Period) -> tuple[list[tuple], dict[int, tuple]]:
    """(rows prepared before ``p`` that this unit owns, in event order;
    rows prepared in ``p`` that a later unit owns, by id)."""
    start, end = raw.param(p.start), raw.param(p.end)
    inc = raw.rows(
        f" AND e.event_at >= ? AND e.event_at < ? AND {_TRIGGER_FROM} ORDER BY e.event_at, e.id",
        (ag_id, raw.param(p.start - STRADDLE_LAG), start, start, start, start),
    )
    out = raw.rows(
        f" AND e.event_at >= ? AND e.event_at < ? AND {_TRIGGER_FROM}",
        (ag_id, raw.param(max(p.start, p.end - STRADDLE_LAG)), end, end, end, end),
    )
    incoming = [r for r in inc if owner(plan, _event(r, raw.parse)) == p.start]
    outgoing = {r[R_ID]: r for r in out if owner(plan, _event(r, raw.parse)) != p.start}
    return incoming, outgoing


# -------------------------------------------------------------------- units


class _Unit:
    """One (agreement, period) being re-rated: state, figures and pending writes."""

    def __init__(self, raw: _Raw, task: RerateTask, ag: Agreement, p: Period, plan: en.Plan | None, *, write: bool):
        self.raw, self.task_id, self.ag, self.p, self.plan, self.write = raw, task.id, ag, p, plan, write
        self.now = clock.now()
        self.st = en.State()
        self.skip: dict[int, tuple] = {}
        self.figures = dict.fromkeys(("processed", "updated", "unchanged", "failed", "old_cost", "new_cost"), 0)
        self.dest: dict[tuple[str, str], list[int]] = {}
        self.state_changed = 0
        self.changes: list[tuple[int, Any, Any, tuple]] = []  # (id, old state, old reason, result), the first few
        self.attrs: dict[str, tuple[dict[str, Any], str | None, list[int]]] = {}
        self.descs: dict[str, tuple[Any, ...]] = {}
        # pending writes of the current chunk
        self.money: list[tuple] = []  # EDR updates of the price columns only (the common case)
        self.full: list[tuple] = []  # EDR updates of every result column
        self.charges: list[tuple] = []
        self.no_time: list[int] = []  # charges (positions) that take the EDR's last charge time
        self.delta = 0

    def rate_rows(self, rows: list[tuple]) -> None:
        """Re-rate rows (in event order) against the unit's state; queue the writes.

        The hot loop of a rerate: the engine event is built as in
        edr.service._event and the result tuple as in edr.service._result
        (columns ``_DESC`` and ``_MONEY``), without per-row dicts."""
        plan, st, skip, attrs, descs = self.plan, self.st, self.skip, self.attrs, self.descs
        rate, apply_, Event, parse = en.rate, en.apply, en.Event, self.raw.parse
        RATED, REJECTED, PENDING = en.RATED, en.REJECTED, en.PENDING
        blank_desc, blank_money = ("unrated",) + (None,) * (len(_DESC) - 1), (None,) * len(_MONEY)
        no_plan = en.Decision(REJECTED, reason="no_agreement", note="the agreement has no plan")
        dest, changes, charges, no_time = self.dest, self.changes, self.charges, self.no_time
        money, full = self.money, self.full
        write, p_start, ag_id, currency, task_id = self.write, self.p.start, self.ag.id, self.ag.currency, self.task_id
        param = self.raw.param
        rated_at = created_at = param(self.now)
        periods: dict[datetime, Any] = {}
        processed = updated = unchanged = failed = old_sum = new_sum = delta = state_changed = 0
        for r in rows:
            eid = r[0]
            if eid in skip:
                continue
            a = attrs.get(r[5])
            if a is None:
                if len(attrs) > 100_000:
                    attrs.clear()
                q, sender, key = _attributes(r[5])
                acc = dest.get(key)
                if acc is None:
                    acc = dest[key] = [0, 0, 0, 0]
                a = attrs[r[5]] = (q, sender, acc)
            at_raw, sub_raw, dlv_raw = r[1], r[2], r[3]
            ev_at = parse(at_raw)
            sub = ev_at if sub_raw == at_raw else None if sub_raw is None else parse(sub_raw)
            dlv = None if dlv_raw is None else parse(dlv_raw)
            if plan is None:
                d = no_plan
            else:
                d = rate(Event(eid, ev_at, a[0], r[6] or 1, a[1], sub, dlv, r[4] == 1), plan, st)
            state = d.state
            if state == PENDING:
                res, money_res, new = blank_desc, blank_money, 0
            else:
                apply_(st, d)
                res = (
                    state,
                    d.reason,
                    (d.note or "")[:300] or None,
                    (d.path or "")[:300] or None,
                    d.service_id,
                    d.billing_rule,
                    d.currency,
                    d.pack_id,
                    d.pack_units or None,
                )
                money_res = (d.unit_price, d.quantity, d.amount if state == RATED else None)
                new = d.amount + d.adjustment if state == RATED and d.pack_id is None else 0
            old = r[7]
            stored = descs.get(r[8])
            if stored is None:
                if len(descs) > 100_000:
                    descs.clear()
                stored = descs[r[8]] = _unpacked(r[8])
            same_desc = stored == res
            processed += 1
            old_sum += old
            new_sum += new
            acc = a[2]
            acc[0] += old
            acc[1] += new
            acc[2] += 1
            if new != old:
                acc[3] += 1
                changed = True
            else:
                changed = not same_desc or r[9:] != money_res
            if stored[0] != res[0] or stored[1] != res[1]:
                state_changed += 1
                if len(changes) < MAX_LISTED:
                    changes.append((eid, stored[0], stored[1], res))
            if state == REJECTED:
                failed += 1
            elif changed:
                updated += 1
            else:
                unchanged += 1
            if not changed or not write:
                continue
            if same_desc:
                money.append((*money_res, rated_at, eid))  # only the price columns changed
            else:
                full.append((*res, *money_res, rated_at, eid))
            if new != old:
                ca = d.charge_at
                if ca is None:
                    at = None
                    no_time.append(len(charges))
                elif ca is sub:
                    at = sub_raw
                elif ca is dlv:
                    at = dlv_raw
                else:
                    at = param(ca)
                ps = d.period_start or p_start
                ps_param = periods.get(ps)
                if ps_param is None:
                    ps_param = periods[ps] = param(ps)
                # json.dumps of {"task": …, "old": …, "new": …} (integers), written directly
                details = f'{{"task": {task_id}, "old": {old}, "new": {new}}}'
                charges.append((ag_id, "rerate", eid, task_id, new - old, currency, at, ps_param, details, created_at))
                delta += new - old
        f = self.figures
        f["processed"] += processed
        f["updated"] += updated
        f["unchanged"] += unchanged
        f["failed"] += failed
        f["old_cost"] += old_sum
        f["new_cost"] += new_sum
        self.delta += delta
        self.state_changed += state_changed

    def take(self, rows: list[tuple]) -> _Batch:
        """The writes queued by rate_rows (for ``rows``); the unit starts a new batch."""
        b = _Batch(rows, self.money, self.full, self.charges, self.no_time, self.delta)
        self.money, self.full, self.charges, self.no_time, self.delta = [], [], [], [], 0
        return b

    def write_batch(self, b: _Batch) -> None:
        """Write a batch: EDR updates, ledger rows, the balance move (no commit)."""
        raw = self.raw
        # Narrow UPDATEs cost SQLite a third of full ones (and leave the rating_state index alone).
        raw.update_prices(b.money)
        cols = _DESC + _MONEY
        raw.many(f"UPDATE edr SET {', '.join(f'{c} = ?' for c in cols)}, rated_at = ? WHERE id = ?", b.full)
        if b.no_time:
            by_id = {r[0]: r for r in b.rows}
            ids = sorted({b.charges[i][2] for i in b.no_time})
            last: dict[int, Any] = {}
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                sql = (
                    f"SELECT edr_id, MAX(at) FROM charge WHERE edr_id IN ({', '.join('?' * len(part))}) GROUP BY edr_id"
                )
                last.update(raw.fetch(sql, part))
            for i in b.no_time:
                c = b.charges[i]
                at = last.get(c[2]) or by_id[c[2]][R_AT]
                b.charges[i] = (*c[:6], at, *c[7:])
        raw.insert("charge", _CHARGE_COLS, b.charges)
        if b.delta:
            raw.many("UPDATE agreement_balance SET spent = spent + ? WHERE agreement_id = ?", [(b.delta, self.ag.id)])


@dataclass(slots=True)
class _Batch:
    rows: list[tuple]
    money: list[tuple]
    full: list[tuple]
    charges: list[tuple]
    no_time: list[int]
    delta: int


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while chunks of row tuples come and go (they
    make no cycles; the collector's passes over them cost ~5 % of the loop)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _unit(
    session: Session, task: RerateTask, ag: Agreement, p: Period, plans: edrs.Plans, rep: _Report, *, write: bool
) -> dict[str, int]:
    """Re-rate one (agreement, period); writes (when ``write``) but does not commit.

    The unit takes the eligible EDRs it owns (see :func:`owner`): those
    prepared in the period, less the ones charged in a later period, plus
    those prepared up to ``STRADDLE_LAG`` earlier and charged in this one
    (they come first: event order)."""
    if write:
        ledger.lock(session, [ag.id])
        ledger.ensure_rows(session, [ag.id])
    raw = _Raw(session)
    plan = plans.get(ag.id)
    u = _Unit(raw, task, ag, p, plan, write=write)
    incoming: list[tuple] = []
    if plan is not None:
        incoming, u.skip = _straddlers(raw, plan, ag.id, p)
    pack_ids = [e.enabled_id for e in plan.entries if e.kind == en.PACK] if plan else []
    whole = [EDR.c.agreement_id == ag.id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end, ELIGIBLE]
    if pack_ids:
        stored = dict(session.execute(sa.select(PCK.c.enabled_service_id, PCK.c.used).where(
            PCK.c.enabled_service_id.in_(pack_ids))).all())  # fmt: skip
        mine = defaultdict(int)
        for pid, used in session.execute(
            sa.select(EDR.c.pack_enabled_id, sa.func.sum(EDR.c.pack_units))
            .where(*whole, EDR.c.rating_state == "rated", EDR.c.pack_enabled_id.in_(pack_ids))
            .group_by(EDR.c.pack_enabled_id)
        ):
            mine[pid] += int(used or 0)
        # The unit's old consumption: its own EDRs, less those a later unit owns, plus the incoming.
        for r, sign in [(r, -1) for r in u.skip.values()] + [(r, 1) for r in incoming]:
            desc = dict(zip(_DESC, _unpacked(r[R_DESC]), strict=True))
            pid, used = desc["pack_enabled_id"], desc["pack_units"]
            if desc["rating_state"] == "rated" and pid in pack_ids:
                mine[pid] += sign * int(used or 0)
        u.st.pack_used = {i: int(stored.get(i) or 0) - mine[i] for i in pack_ids}
    # Counters of later periods are read, not rewritten: they serve an EDR charged
    # more than STRADDLE_LAG after it was prepared, which stays in this unit.
    for node, grp, start, qty in session.execute(
        sa.select(CNT.c.node_key, CNT.c.group_value, CNT.c.period_start, CNT.c.quantity).where(
            CNT.c.agreement_id == ag.id, CNT.c.period_start > p.start
        )
    ):
        u.st.counters[(node, grp, start)] = qty
    if incoming:
        u.rate_rows(incoming)
        if write:
            u.write_batch(u.take(incoming))
    lo, hi = raw.param(p.start), raw.param(p.end)
    last_at, last_id = lo, 0
    # PostgreSQL: a chunk's writes run in a second thread, on the same connection
    # and transaction, while this thread rates the next chunk (read before the
    # writes start: the chunks are disjoint); the server's work and the
    # client's overlap. SQLite: in turn (a writer thread made it slower there:
    # sqlite3 takes the GIL back for every value it binds).
    overlap = write and raw.pg
    batch: _Batch | None = None
    with _gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="rerate-write") as pool:
        while True:
            rows = raw.rows(
                " AND e.event_at >= ? AND e.event_at < ? AND (e.event_at > ? OR e.id > ?)"
                f" ORDER BY e.event_at, e.id LIMIT {CHUNK}",
                (ag.id, last_at, hi, last_at, last_id),
            )
            writing = None
            if batch is not None:
                if overlap:
                    writing = pool.submit(u.write_batch, batch)
                else:
                    u.write_batch(batch)
                batch = None
            if not rows:
                if writing is not None:
                    writing.result()
                break
            last_at, last_id = rows[-1][R_AT], rows[-1][R_ID]
            try:
                u.rate_rows(rows)
            finally:
                if writing is not None:
                    writing.result()  # its error, if any, is the unit's
            if write:
                batch = u.take(rows)
    rep.state_changes_of(session, u.state_changed, u.changes)
    rep.merge(ag.code, u.dest)
    if write and plan is not None:
        session.execute(sa.delete(CNT).where(CNT.c.agreement_id == ag.id, CNT.c.period_start == p.start))
        new_counters = [
            {"agreement_id": ag.id, "node_key": k[0], "group_value": k[1], "period_start": k[2], "quantity": q}
            for k, q in u.st.counters.items()
            if k[2] == p.start and q
        ]
        if new_counters:
            session.execute(sa.insert(CNT), new_counters)
        for pid in pack_ids:
            used = u.st.pack_used.get(pid, 0)
            if session.execute(sa.update(PCK).where(PCK.c.enabled_service_id == pid).values(used=used)).rowcount == 0:
                session.execute(sa.insert(PCK).values(enabled_service_id=pid, used=used))
    return u.figures


def run(
    session: Session,
    task_id: int | str,
    *,
    dry_run: bool = False,
    after_unit: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run a task now. Commits once per unit (restartable; see the module
    docstring). With ``dry_run`` nothing but the task's stored report is
    written and the status does not change. Returns the task with its report.

    A run holds the task's run lock until it ends (or its process dies): a
    second run of the same task meanwhile is a Conflict, not a second pass."""
    if dry_run:
        return _run(session, task_id, dry_run=True, after_unit=after_unit)
    tid = get(session, task_id).id
    with locking.run_lock(
        session.get_bind(), f"rerate-task:{tid}", busy=f"rerate task {tid} is being run by another process"
    ):
        return _run(session, tid, dry_run=False, after_unit=after_unit)


def _run(
    session: Session, task_id: int | str, *, dry_run: bool, after_unit: Callable[[int], None] | None
) -> dict[str, Any]:
    from cpaas_cli.invoices import service as invoices

    task = get(session, task_id)
    if not dry_run:
        locking.lock_row(session, task)  # the state another command (cancel, a run just ended) left
    if task.status in ("completed", "canceled") and not dry_run:
        raise Conflict(f"rerate task {task.id} is {task.status}")
    if not dry_run:
        task.status = "running"
        task.started_at = clock.now()
        task.run_by = session.info.get("actor")
        task.error = None
        session.commit()
    plans = edrs.Plans(session)
    rep = _Report()
    done = set(session.execute(sa.select(UNIT.c.agreement_id, UNIT.c.period_start).where(UNIT.c.task_id == task.id)))
    totals: dict[str, int] = defaultdict(int)
    try:
        todo = units(session, task, plans)
        for n, (ag_id, p, _est) in enumerate(todo, 1):
            if not dry_run and (ag_id, p.start) in done:
                continue
            ag = session.get(Agreement, ag_id)
            if not dry_run:  # the invoicing lock before the money lock, in the order `invoice run` takes them
                locking.serialise(session, invoices.INVOICING)
            got = _unit(session, task, ag, p, plans, rep, write=not dry_run)
            for k, v in got.items():
                totals[k] += v
            if dry_run:
                continue
            session.add(RerateUnit(task_id=task.id, agreement_id=ag_id, period_start=p.start, **got))
            invoices.refresh_drafts(session, ag_id)
            audit.record(
                session,
                action="rerate",
                object_type="rerate_task",
                object_id=task.id,
                new={"agreement": ag.code, "period_start": iso(p.start), **got},
            )
            session.commit()
            if after_unit is not None:
                after_unit(n)
    except Exception as exc:
        session.rollback()
        task = get(session, task.id)
        if not dry_run:
            task.status = "failed"
            task.error = str(exc)[:1000]
            session.commit()
        raise
    report = {**rep.as_dict(), "units": len(todo), "dry_run": dry_run}
    if dry_run:
        report.update({k: totals[k] for k in ("processed", "updated", "unchanged", "failed")})
    else:
        sums = session.execute(
            sa.select(
                sa.func.count(),
                *(
                    sa.func.coalesce(sa.func.sum(UNIT.c[k]), 0) for k in ("processed", "updated", "unchanged", "failed")
                ),  # fmt: skip
            ).where(UNIT.c.task_id == task.id)
        ).one()
        task.processed, task.updated, task.unchanged, task.failed = (int(x) for x in sums[1:])
        task.status = "completed"
        task.finished_at = clock.now()
    task.report = json.loads(json.dumps(report))
    session.commit()
    return {**as_dict(session, task), "report": report}


def due(session: Session, *, now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    q = sa.select(RerateTask.id).where(
        RerateTask.status == "scheduled", sa.or_(RerateTask.scheduled_for.is_(None), RerateTask.scheduled_for <= now)
    )
    return list(session.execute(q.order_by(RerateTask.id)).scalars())


def run_job(engine) -> dict[str, Any]:
    """Scheduler job: run every scheduled task that is due."""
    from cpaas_cli.db.engine import session_scope

    ran = failed = 0
    with session_scope(engine, actor="scheduler", command="rerate run") as s:
        for tid in due(s):
            try:
                run(s, tid)
                ran += 1
            except Exception:  # the task row records the error
                failed += 1
    return {"ran": ran, "failed": failed}
