"""Rerate of a reseller level (RAT-10, RR-04): the reseller CDRs of a reselling agreement.

A reselling agreement carries no EDRs of its own: what it is charged are
the reseller CDRs (``edr_level``) of its clients' messages. A task that
covers such an agreement re-rates, per (agreement, billing period) unit,
every reseller CDR of the period at the agreement's prices in force now,
from empty counters, exactly as ``loop.py`` re-rates a client's EDRs: the
message's event is rebuilt from its EDR, the pure engine prices it, a
``rerate`` ledger row of new − old is appended where the money moved, the
CDR takes the new price, counters of the period and pack usage are
rewritten. Other levels are not touched: a client unit re-rates the client's
EDRs only, a level unit its own CDRs only.

A reseller CDR belongs to the period its charge fell in (its owner, as
``units.owner`` decides for EDRs): the unit takes the CDRs of events up to
``STRADDLE_LAG`` before the period whose charge falls in it, and leaves
those of its own events whose charge falls later.

A price the level no longer has (the engine rejects the event now) makes the
CDR cost 0 and counts as failed: the message was sent and charged to the
client; the reseller's price list must say what it costs the reseller.

Decided here: an agreement that has both EDRs of its own and reseller CDRs
in a period (a reseller that sent traffic itself) is not re-rated for that
period by the level unit; the EDR unit does its EDRs and the report says
so (TEN-11 keeps resellers from sending campaigns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing import ledger
from cpaas_cli.billing.periods import Period, VersionTerms
from cpaas_cli.charging import levels
from cpaas_cli.charging.plans import Plans
from cpaas_cli.db import bulk
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import PackUsage
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.rerate import RerateTask
from cpaas_cli.rating import engine as en
from cpaas_cli.rerate import rows, scope, state
from cpaas_cli.rerate import units as un
from cpaas_cli.rerate.rows import Raw

LEVEL = levels.LEVEL
EDR = Edr.__table__
PCK = PackUsage.__table__


def units(session: Session, task: RerateTask) -> list[tuple[int, Period, int]]:
    """(reselling agreement id, whole billing period, reseller CDRs in it): the
    periods that overlap the task's window and hold a CDR of the window."""
    out = []
    for ag_id in scope.agreement_ids(session, task):
        ag = session.get(Agreement, ag_id)
        terms = [VersionTerms.of(v) for v in agreements.versions(session, ag)]
        if not terms:
            continue
        for p, lo, hi in un.window_periods(terms, task.time_from, task.time_till):
            where = [LEVEL.c.agreement_id == ag_id, LEVEL.c.event_at >= lo, LEVEL.c.event_at < hi]
            q = sa.select(sa.func.count()).select_from(LEVEL).where(*where)
            if task.channels:
                q = q.join(EDR, EDR.c.id == LEVEL.c.edr_id).where(EDR.c.channel.in_(task.channels))
            n = int(session.execute(q).scalar() or 0)
            if n:
                out.append((ag_id, p, n))
    return out


# A read row, by position (``L_*``): the CDR, Σ of its agreement's ledger rows for the EDR,
# the EDR's event. Raw SQL through the transaction's DBAPI cursor (rerate/rows.Raw), as the
# EDR rerate reads, with the same packing: the CDR's description columns (``LDESC``) and the
# event's seven lookup attributes (rows.KEY) come as one value each (JSON array text on
# SQLite, built in C; packed by the client from plain columns on PostgreSQL), so the loop
# hashes and decodes one thing per row, once per distinct value. "+ 0" keeps SQLite on the
# charge's (edr_id, …) key (see rerate/rows.py).
L_ID, L_EDR, L_LEVEL, L_AT, L_DESC, L_PRICE, L_QTY, L_COST, L_OLD, L_SUB, L_DLV, L_FINAL, L_KEY, L_SEGMENTS = range(14)
LDESC = ("rate_path", "service_id", "billing_rule", "pack_enabled_id", "pack_units")
LMONEY = ("unit_price", "quantity", "cost")
PRICED = LDESC + LMONEY
_SELECT = (
    "SELECT l.id, l.edr_id, l.level, l.event_at, <desc>, l.unit_price, l.quantity, l.cost,"
    " (SELECT CAST(COALESCE(SUM(c.amount), 0) AS BIGINT) FROM charge c"
    " WHERE c.edr_id = l.edr_id AND c.agreement_id + 0 = l.agreement_id),"
    f" e.submitted_at, COALESCE(e.delivered_at, e.seen_at), {rows.FINAL_SQL}, <key>, e.segments"
    " FROM edr_level l JOIN edr e ON e.id = l.edr_id"
    " WHERE l.agreement_id = ? AND l.event_at >= ? AND l.event_at < ?"
)
# PostgreSQL's plain row → that layout (the description and key columns as one tuple each).
_D = len(LDESC)
_K = L_KEY + _D - 1
_PACK = itemgetter(
    *range(L_DESC), slice(L_DESC, L_DESC + _D), *range(L_DESC + _D, _K), slice(_K, _K + len(rows.KEY)),
    _K + len(rows.KEY),
)  # fmt: skip
CHUNK = 50_000


def _select(raw: Raw) -> str:
    def packed(table: str, columns: tuple[str, ...]) -> str:
        cols = ", ".join(f"{table}.{c}" for c in columns)
        return cols if raw.pg else f"json_array({cols})"

    return _SELECT.replace("<desc>", packed("l", LDESC)).replace("<key>", packed("e", rows.KEY))


def _chunks(raw: Raw, task: RerateTask, ag_id: int, p: Period) -> Iterator[list[tuple]]:
    """The CDRs the unit may own (events from STRADDLE_LAG before the period), in
    (event time, EDR) order, CHUNK at a time (keyset); rows as read (times as the driver
    gives them) in the ``L_*`` layout."""
    lo, _ = un.arriving_span(p)
    sql, params = _select(raw), [ag_id, raw.param(lo), raw.param(p.end)]
    if task.channels:
        sql += f" AND e.channel IN ({', '.join('?' * len(task.channels))})"
        params += list(task.channels)
    after: list[Any] = []
    while True:
        more = " AND (l.event_at, l.edr_id) > (?, ?)" if after else ""
        got = raw.fetch(f"{sql}{more} ORDER BY l.event_at, l.edr_id LIMIT {CHUNK}", params + after)
        if not got:
            return
        after = [got[-1][L_AT], got[-1][L_EDR]]
        yield list(map(_PACK, got)) if raw.pg else got


def has_own_edrs(session: Session, ag_id: int, p: Period) -> bool:
    q = sa.select(EDR.c.id).where(EDR.c.agreement_id == ag_id, EDR.c.event_at >= p.start, EDR.c.event_at < p.end)
    return session.execute(q.limit(1)).first() is not None


def rerate_level_unit(
    session: Session,
    task: RerateTask,
    ag: Agreement,
    p: Period,
    plans: Plans,
    dest: dict[tuple[str, str], list[int]],
    *,
    write: bool,
) -> dict[str, int]:
    """Re-rate the reseller CDRs one reselling agreement owns in one period (see the
    module docstring); writes when ``write``, no commit. ``dest`` gets the figures
    per (country, network): [old, new, CDRs, cost changed]."""
    figures = dict.fromkeys(("processed", "updated", "unchanged", "failed", "old_cost", "new_cost"), 0)
    plan = plans.get(ag.id)
    if write:
        ledger.lock(session, [ag.id])
        ledger.ensure_rows(session, [ag.id])
    st = en.State()
    pack_ids = [e.enabled_id for e in plan.entries if e.kind == en.PACK] if plan else []
    if pack_ids:  # stored usage less what the period's CDRs took: the state before its first
        stored = dict(
            session.execute(
                sa.select(PCK.c.enabled_service_id, PCK.c.used).where(PCK.c.enabled_service_id.in_(pack_ids))
            ).all()
        )
        took = dict(
            session.execute(
                sa.select(LEVEL.c.pack_enabled_id, sa.func.sum(LEVEL.c.pack_units))
                .where(LEVEL.c.agreement_id == ag.id, LEVEL.c.event_at >= p.start, LEVEL.c.event_at < p.end)
                .where(LEVEL.c.pack_enabled_id.in_(pack_ids))
                .group_by(LEVEL.c.pack_enabled_id)
            ).all()
        )
        st.pack_used = {i: int(stored.get(i) or 0) - int(took.get(i) or 0) for i in pack_ids}
    st.counters.update(state.later_counters(session, ag.id, p))
    now = clock.now()
    if plan is not None:
        raw = Raw(session)
        # the bulk run's page cache: each CDR probes the ledger's (edr_id, …) key, across millions of rows
        with raw.writer.pragmas(), bulk.gc_paused():
            for chunk in _chunks(raw, task, ag.id, p):
                w = _rerate_rows(chunk, plan, st, p, task, ag, now, figures, dest, write, raw.param, raw.parse)
                if write:
                    _write_chunk(session, raw, *w)
    if write and plan is not None:
        state.write_period_state(session, ag.id, p, st, pack_ids)
    return figures


def _rerate_rows(
    rows_: list[tuple],
    plan: en.Plan,
    st: en.State,
    p: Period,
    task: RerateTask,
    ag: Agreement,
    now: datetime,
    figures: dict[str, int],
    dest: dict[tuple[str, str], list[int]],
    write: bool,
    param: Callable[[datetime | None], Any],
    parse: Callable[[Any], datetime | None],
) -> tuple[list[tuple], list[tuple], list[tuple], int]:
    """Re-rate one chunk of CDRs in order against ``st``; the figures move, and the
    writes come back in the driver's form: (CDR updates, CDR updates of the price columns
    only, ledger rows, balance delta)."""
    rate, apply_, Event = en.rate, en.apply, en.Event
    RATED, PENDING = en.RATED, en.PENDING
    attributes, unpacked = rows.attributes, rows.unpacked
    near_end, _ = un.leaving_span(p)
    updates: list[tuple] = []
    narrow: list[tuple] = []
    charges: list[tuple] = []
    delta = 0
    rated_at = param(now)
    times: dict[datetime, Any] = {}
    p_start, task_id, ag_id, currency = p.start, task.id, ag.id, ag.currency
    decoded, descs = _ATTRS, _DESCS
    if len(decoded) > 100_000:
        decoded.clear()
    if len(descs) > 100_000:
        descs.clear()
    attrs: dict[Any, tuple[dict[str, Any], str | None, list[int]]] = {}  # key → (query, sender, dest figures)
    processed = updated = unchanged = failed = old_sum = new_sum = 0
    for r in rows_:
        # the columns of _SELECT by position (L_*); times parsed as the EDR rerate does (rerate/loop.py)
        at_raw, sub_raw, dlv_raw = r[3], r[9], r[10]
        at = parse(at_raw)
        sub = at if sub_raw == at_raw else None if sub_raw is None else parse(sub_raw)
        a = attrs.get(r[12])
        if a is None:
            got = decoded.get(r[12])
            if got is None:
                got = decoded[r[12]] = attributes(r[12])
            acc = dest.get(got[2])
            if acc is None:
                acc = dest[got[2]] = [0, 0, 0, 0]
            a = attrs[r[12]] = (got[0], got[1], acc)
        ev = Event(r[1], at, a[0], r[13] or 1, a[1], sub, None if dlv_raw is None else parse(dlv_raw), r[11] == 1)
        if (at < p_start or at >= near_end) and un.owner(plan, ev) != p_start:
            continue  # a straddler another unit owns (only near the period's edges: see units.owner)
        d = rate(ev, plan, st)
        if d.state == PENDING:
            continue  # the level's event has not come (a later receipt rates it)
        apply_(st, d)
        stored = descs.get(r[4])
        if stored is None:
            stored = descs[r[4]] = unpacked(r[4])
        if d.state == RATED:
            desc = ((d.path or "")[:300] or None, d.service_id, d.billing_rule, d.pack_id, d.pack_units or None)
            money = (d.unit_price, d.quantity, d.amount)
            new = d.amount + d.adjustment if d.pack_id is None else 0  # engine.money_charge, inlined
        else:  # the level no longer prices it: cost 0, the stored path kept
            desc = (stored[0], stored[1], stored[2], None, None)
            money = (None, 0, 0)
            new = 0
            failed += 1
        was = r[8]
        processed += 1
        old_sum += was
        new_sum += new
        acc = a[2]
        acc[0] += was
        acc[1] += new
        acc[2] += 1
        same_desc = desc == stored
        if new != was:
            acc[3] += 1
        elif same_desc and money == r[5:8]:
            if d.state == RATED:
                unchanged += 1
            continue
        if d.state == RATED:
            updated += 1
        if not write:
            continue
        if same_desc:
            narrow.append((*money, rated_at, r[0]))  # only the price moved
        else:
            updates.append((*desc, *money, rated_at, r[0]))
        if new != was:
            when, start = d.charge_at or sub or at, d.period_start or p_start
            if when is sub and sub_raw is not None:
                w = sub_raw  # as read: already in the driver's form
            else:
                w = times.get(when)
                if w is None:
                    w = times[when] = param(when)
            ps = times.get(start)
            if ps is None:
                ps = times[start] = param(start)
            # json.dumps of {"task": …, "old": …, "new": …, "level": …} (integers), written directly
            details = f'{{"task": {task_id}, "old": {was}, "new": {new}, "level": {r[2]}}}'
            charges.append((ag_id, "rerate", r[1], task_id, new - was, currency, w, ps, details, rated_at))
            delta += new - was
    figures["processed"] += processed
    figures["updated"] += updated
    figures["unchanged"] += unchanged
    figures["failed"] += failed
    figures["old_cost"] += old_sum
    figures["new_cost"] += new_sum
    return updates, narrow, charges, delta


# Decoded packed values, shared across chunks and units (few distinct ones: senders,
# destinations, paths): key text → (lookup query, sender, report key); description → tuple.
_ATTRS: dict[Any, tuple[dict[str, Any], str | None, tuple[str, str]]] = {}
_DESCS: dict[Any, tuple] = {}


_CHARGE_COLUMNS = ("agreement_id", "kind", "edr_id", "revision", "amount", "currency", "at", "period_start",
                   "details", "created_at")  # fmt: skip


def _write_chunk(
    session: Session, raw: Raw, updates: list[tuple], narrow: list[tuple], charges: list[tuple], delta: int
) -> None:
    """A chunk's writes: the CDRs' new prices (staged, one UPDATE … FROM; a narrow one when
    only the price columns moved, as the EDR rerate does), the ledger rows, the balance."""
    if updates:
        raw.writer.update_values("edr_level", (*PRICED, "rated_at"), updates)
    if narrow:
        raw.writer.update_values("edr_level", ("unit_price", "quantity", "cost", "rated_at"), narrow)
    if charges:
        raw.insert("charge", _CHARGE_COLUMNS, charges)
    if delta:
        ag_id = charges[0][0]
        session.execute(
            sa.update(ledger.BAL).where(ledger.BAL.c.agreement_id == ag_id).values(spent=ledger.BAL.c.spent + delta)
        )
