"""EDR ingest, rating and browsing.

Rating goes through the pure engine (``rating/engine.py``): rows are read in
chunks, the agreements of a chunk are locked (``billing.ledger.lock``), their
plans (enabled services with tree snapshots, cached for the whole run), scale
counters, pack usage and credit headroom are loaded, the chunk is rated in
memory, and the EDR results, charges, counters, pack usage and the running
balance are written in the same transaction.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from itertools import chain, islice, repeat
from operator import attrgetter, is_, is_not, itemgetter, methodcaller
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.audit import service as audit
from cpaas_cli.billing import ledger, packs
from cpaas_cli.billing.periods import VersionTerms, period_containing
from cpaas_cli.catalog import lookup as lk
from cpaas_cli.catalog import service as catalog
from cpaas_cli.catalog import tree as tr
from cpaas_cli.catalog.dictionary import MccmncError, mcc_country, normalise_mccmnc
from cpaas_cli.catalog.vocab import sender_type_of
from cpaas_cli.db import locking
from cpaas_cli.db.checks import text_problem
from cpaas_cli.edr.interrupt import StopRequest
from cpaas_cli.errors import InvalidInput, NotFound, Problem
from cpaas_cli.imports.readers import read_lists, read_rows
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import Charge, PackUsage, ScaleCounter
from cpaas_cli.models.edr import DIRECTIONS, FINAL_STATUSES, STATUSES, Edr
from cpaas_cli.models.tenancy import Company
from cpaas_cli.money import format_micros
from cpaas_cli.rating import engine as en
from cpaas_cli.timeutil import iso

EDR = Edr.__table__
CNT = ScaleCounter.__table__
PCK = PackUsage.__table__
CHUNK = 20_000
INGEST_CHUNK = 50_000  # rows per committed chunk of `edr ingest` (fewer commits and checkpoints)
TIME_COLUMNS = tuple(f"{s}_at" for s in STATUSES)

# ------------------------------------------------------------------ plans


class Plans:
    """Per-run cache of agreement plans (snapshots loaded once per scope)."""

    def __init__(self, session: Session):
        self.session = session
        self.plans: dict[int, en.Plan | None] = {}
        self.snaps: dict[int, lk.Snapshot] = {}

    def get(self, agreement_id: int) -> en.Plan | None:
        if agreement_id not in self.plans:
            self.plans[agreement_id] = self._load(agreement_id)
        return self.plans[agreement_id]

    def _load(self, agreement_id: int) -> en.Plan | None:
        s = self.session
        ag = s.get(Agreement, agreement_id)
        if ag is None:
            return None
        packs, payg = [], []
        for e, svc in catalog.enabled(s, ag):
            if svc.archived_at is not None:
                continue  # ENS-10: traffic stops
            if svc.type == "payg":
                kind = en.PAYG
            elif svc.type in ("unit-pack", "monetary-pack"):
                kind = en.PACK
            else:
                continue  # bundles are not rated here yet
            scopes = []
            for sc in catalog.scopes(s, svc):
                if sc.draft or sc.effective_from is None:
                    continue
                if sc.id not in self.snaps:
                    self.snaps[sc.id] = lk.Snapshot.of(
                        tr.load(s, sc.id), service_id=svc.id, service=svc.name, scope_id=sc.id, currency=svc.currency
                    )
                scopes.append((sc.effective_from, sc.effective_till, self.snaps[sc.id]))
            entry = en.Entry(e.id, kind, svc.type, e.effective_from, e.effective_till, tuple(scopes), svc.size)
            (packs if kind == en.PACK else payg).append(entry)
        terms = [VersionTerms.of(v) for v in agreements.versions(s, ag)]
        return en.Plan(ag.id, ag.currency, tuple(packs + payg), _period_of(terms))


def _period_of(terms: list[VersionTerms]):
    found: list[Any] = []

    def period_of(at: datetime) -> datetime | None:
        for p in found:
            if p.start <= at < p.end:
                return p.start
        if not terms:
            return None
        p = period_containing(terms, at)
        if p is None:
            return None
        found.append(p)
        return p.start

    return period_of


# ------------------------------------------------------------- ingest rows


def _time(text: str, field: str, problems: list[Problem], n: int) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        problems.append(Problem(field, f"not an ISO 8601 time: {text!r}", n))
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _nothing() -> None:
    pass


class _Refs:
    def __init__(self, session: Session):
        self.session = session
        self.ags: dict[str, tuple[int, int] | None] = {}
        self.cos: dict[str, int | None] = {}
        self.memo: defaultdict[str, dict[Any, Any]] = defaultdict(dict)  # parse_columns' answers for the run
        # Called before a reference is looked up in the database (`edr ingest`: waits
        # for the commit of the previous chunk, which may be running in a thread).
        self.before_query: Callable[[], None] = _nothing

    def agreement(self, ref: str) -> tuple[int, int] | None:
        if ref not in self.ags:
            self.before_query()
            try:
                ag = agreements.get(self.session, ref)
                self.ags[ref] = (ag.id, ag.company_id)
            except NotFound:
                self.ags[ref] = None
        return self.ags[ref]

    def company(self, ref: str) -> int | None:
        if ref not in self.cos:
            from cpaas_cli.refs import by_ref

            self.before_query()
            try:
                self.cos[ref] = by_ref(self.session, Company, ref, what="company").id
            except NotFound:
                self.cos[ref] = None
        return self.cos[ref]


_NO_TIMES = dict.fromkeys(TIME_COLUMNS)
# What parse_row gives, besides rating_state "unrated" (in EDR column order).
PARSED_COLUMNS = (
    "external_id",
    "vendor_message_id",
    "company_id",
    "agreement_id",
    "campaign_id",
    "sender",
    "channel",
    "direction",
    "source",
    "destination",
    "mcc",
    "mnc",
    "country",
    "network",
    "encoding",
    "segments",
    "status",
    "event_at",
    *TIME_COLUMNS,
    "vendor_error",
)
_LATEST_FIRST = tuple((f"{s}_at", s) for s in reversed(STATUSES))
# Text cells stored as given, and the most characters each column holds (the EDR
# table's lengths: PostgreSQL would refuse longer text, SQLite would keep it).
TEXT_LIMITS = {
    c: EDR.c[c].type.length
    for c in (
        "vendor_message_id", "sender", "channel", "source", "destination", "country", "network", "encoding",
        "vendor_error",
    )
}  # fmt: skip
_fromisoformat = datetime.fromisoformat


def _party(ag_ref: str, co_ref: str, refs: _Refs, problems: list[Problem], n: int | None) -> tuple[Any, Any]:
    """(agreement id, company id) of a row's agreement and company references."""
    ag_id = co_id = None
    if ag_ref:
        got = refs.ags[ag_ref] if ag_ref in refs.ags else refs.agreement(ag_ref)
        if got is None:
            problems.append(Problem("agreement", f"no agreement {ag_ref!r}", n))
        else:
            ag_id, co_id = got
    if co_ref:
        cid = refs.company(co_ref)
        if cid is None:
            problems.append(Problem("company", f"no company {co_ref!r}", n))
        elif co_id is not None and cid != co_id:
            problems.append(Problem("company", f"agreement {ag_ref!r} belongs to another company", n))
        co_id = cid if co_id is None else co_id
    if not ag_ref and not co_ref:
        problems.append(Problem("agreement", "give an agreement or at least a company", n))
    return ag_id, co_id


def _network(mccmnc: str, mcc: str, mnc: str, problems: list[Problem], n: int | None) -> tuple[str, str]:
    """(mcc, mnc) from the mccmnc cell, else the mcc and mnc cells ("" when not given)."""
    text = mccmnc or (mcc + mnc if mcc else "")
    if text:
        if text.isdecimal() and len(text) in (5, 6):
            mcc, mnc = text[:3], text[3:]
        else:
            try:
                m = normalise_mccmnc(text)
                mcc, mnc = m.mcc, m.mnc or ""
            except MccmncError as exc:
                problems.append(Problem("mccmnc", str(exc), n))
    return mcc, mnc


MAX_SEGMENTS = 255  # a concatenated SMS numbers its parts in one byte
MAX_CAMPAIGN_ID = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL


def _segments(text: str, problems: list[Problem], n: int | None) -> int:
    seg = text or "1"
    segments = int(seg) if seg.isdecimal() else 0
    if not 1 <= segments <= MAX_SEGMENTS:
        problems.append(Problem("segments", f"a whole number from 1 to {MAX_SEGMENTS}, got {seg!r}", n))
    return segments


def _campaign_ref(text: str, problems: list[Problem], n: int | None) -> int | None:
    """A campaign id given as a whole number (other text names no campaign: None)."""
    if not text.isdecimal():
        return None
    if int(text) > MAX_CAMPAIGN_ID:
        problems.append(Problem("campaign_id", f"larger than {MAX_CAMPAIGN_ID}, got {text!r}", n))
        return None
    return int(text)


def parse_row(n: int, raw: dict[str, str], refs: _Refs, problems: list[Problem]) -> dict[str, Any] | None:
    """One input row → EDR column values; problems are appended (with the row number).

    The reference for ``parse_columns`` (which ``edr ingest`` runs per chunk)
    and what names each bad row and field when a chunk has any; also
    ``validate_file``'s parser."""
    start = len(problems)
    g = raw.get
    ext = g("external_id", "")
    if not ext:
        problems.append(Problem("external_id", "required (it makes a re-ingest idempotent)", n))
    elif bad := text_problem(ext, 100):
        problems.append(Problem("external_id", bad, n))
    ag_id, co_id = _party(g("agreement", ""), g("company", ""), refs, problems, n)
    direction = (g("direction") or "mt").lower()
    if direction not in DIRECTIONS:
        problems.append(Problem("direction", "must be mt or mo", n))
    mcc, mnc = _network(g("mccmnc") or "", g("mcc", ""), g("mnc", ""), problems, n)
    segments = _segments(g("segments") or "", problems, n)
    times = _NO_TIMES.copy()
    first = None  # the first status time given, in STATUSES order
    for c in TIME_COLUMNS:
        t = g(c)
        if not t:
            continue
        try:
            v = _fromisoformat(t)
            v = v.replace(tzinfo=UTC) if v.tzinfo is None else v if v.tzinfo is UTC else v.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            what = (
                "out of range (before year 1 or after 9999 in UTC)"
                if isinstance(exc, OverflowError)
                else "not an ISO 8601 time"
            )
            problems.append(Problem(c, f"{what}: {t!r}", n))
            continue
        times[c] = v
        if first is None:
            first = v
    for c, most in TEXT_LIMITS.items():
        if bad := text_problem(g(c) or "", most):  # the rule of db/checks.py: length, NUL, UTF-8
            problems.append(Problem(c, bad, n))
    campaign = _campaign_ref(g("campaign_id") or "", problems, n)
    status = (g("status") or "").lower()
    if status and status not in STATUSES:
        problems.append(Problem("status", f"must be one of {', '.join(STATUSES)}", n))
    if not status:
        status = next((s for c, s in _LATEST_FIRST if times[c] is not None), "")
    event_at = times["prepared_at"] or times["submitted_at"] or first
    if event_at is None:
        problems.append(Problem("prepared_at", "at least one status time is required", n))
    if len(problems) > start:
        return None
    sender = g("sender") or None
    country = g("country")
    return {
        "external_id": ext,
        "vendor_message_id": g("vendor_message_id") or None,
        "company_id": co_id,
        "agreement_id": ag_id,
        "campaign_id": campaign,
        "sender": sender,
        "channel": (g("channel") or "sms").lower(),
        "direction": direction,
        "source": g("source") or sender,
        "destination": g("destination") or None,
        "mcc": mcc or None,
        "mnc": mnc or None,
        "country": country.upper() if country else (_country_of(mcc) if mcc else None),
        "network": g("network") or None,
        "encoding": g("encoding") or None,
        "segments": segments,
        "status": status,
        "event_at": event_at,
        **times,
        "vendor_error": g("vendor_error") or None,
        "rating_state": "unrated",
    }


_COUNTRY_OF: dict[str, str | None] = {}


def _country_of(mcc: str) -> str | None:
    got = _COUNTRY_OF.get(mcc, _COUNTRY_OF)
    if got is _COUNTRY_OF:
        got = _COUNTRY_OF[mcc] = mcc_country(mcc)
    return got


class _Bad(Exception):
    """A cell the column-wise parse does not take: the chunk goes through parse_row."""


def _memo_map(values: Sequence[Any], fn: Callable[[Any], Any], memo: dict[Any, Any] | None = None) -> list[Any]:
    """``[fn(v) for v in values]`` with ``fn`` called once per distinct value
    (``memo`` keeps the answers for later chunks; a value ``fn`` refuses is not kept)."""
    memo = {} if memo is None else memo
    for v in set(values).difference(memo):
        memo[v] = fn(v)
    return list(map(memo.__getitem__, values))


def _or_none(values: Sequence[str] | None, n: int) -> list[str | None]:
    """``[v or None for v in values]`` (all None for a column the file lacks)."""
    if values is None:
        return [None] * n
    if "" not in values:
        return list(values)
    return [v or None for v in values]


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(*args, problems, None)`` that raises _Bad when it notes a problem."""

    def call(*args: Any) -> Any:
        problems: list[Problem] = []
        got = fn(*args, problems, None)
        if problems:
            raise _Bad
        return got

    return call


def _utc_times(texts: Sequence[str]) -> list[datetime | None]:
    """One status-time column: ISO 8601 text → aware UTC (None for "")."""
    if "" in texts:
        values = [_fromisoformat(t) if t else None for t in texts]
        aware = [v for v in values if v is not None]
    else:
        values = aware = list(map(_fromisoformat, texts))
    if aware and set(map(_TZINFO, aware)) != {UTC}:
        values = [
            v if v is None or v.tzinfo is UTC else (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))
            for v in values
        ]
    return values


_TZINFO = attrgetter("tzinfo")
# Where a row's event time comes from: prepared, else submitted, else the first status time in STATUSES order.
_EVENT_TIME_ORDER = (
    "prepared_at",
    "submitted_at",
    *(c for c in TIME_COLUMNS if c not in ("prepared_at", "submitted_at")),
)


def parse_columns(names: Sequence[str], rows: Sequence[Sequence[str]], refs: _Refs) -> dict[str, list[Any]] | None:
    """``parse_row`` for a whole chunk at once, column by column: the same values
    (``PARSED_COLUMNS`` → one list each, in row order), computed with C-level
    maps and once per distinct value where values repeat (references, networks,
    segments, statuses). ``rows`` hold one cell per name (``read_csv_lists``).

    None when any row has a problem or an external id repeats in the chunk:
    the caller then parses the chunk with ``parse_row``, which names each row
    and field. The fast path never reports a problem itself."""
    n = len(rows)
    if n == 0:
        return {c: [] for c in PARSED_COLUMNS}
    at = {name: i for i, name in enumerate(names) if name}
    cols = list(zip(*rows, strict=True))
    if len(cols) != len(names):
        return None

    def get(name: str) -> tuple[str, ...] | None:
        i = at.get(name)
        return None if i is None else cols[i]

    empty = ("",) * n
    memo = refs.memo
    try:
        ext = get("external_id")
        if ext is None or not all(ext) or max(map(len, ext)) > 100 or len(set(ext)) != n or "\0" in "".join(ext):
            return None
        if any(
            c in at and (max(map(len, get(c))) > most or "\0" in "".join(get(c))) for c, most in TEXT_LIMITS.items()
        ):
            return None  # too long or a NUL: the row path names the row and field
        ags, cos = get("agreement"), get("company")
        if cos is None:
            party = _memo_map(ags or empty, lambda ref: _checked(_party)(ref, "", refs), memo["agreement"])
        else:
            party = _memo_map(
                list(zip(ags or empty, cos, strict=True)), lambda k: _checked(_party)(k[0], k[1], refs), memo["party"]
            )
        direction = _memo_map(get("direction") or empty, _direction, memo["direction"])
        present = [c for c in ("mccmnc", "mcc", "mnc", "country") if c in at]
        if len(present) == 1:
            where = _memo_map(get(present[0]), lambda v: _where(**{present[0]: v}), memo[present[0]])
        elif present:
            where = _memo_map(
                list(zip(*map(get, present), strict=True)),
                lambda k: _where(**dict(zip(present, k, strict=True))),
                memo[",".join(present)],
            )
        else:
            where = [(None, None, None)] * n
        segments = _memo_map(get("segments") or empty, _checked(_segments), memo["segments"])
        campaign = get("campaign_id")
        campaign_ids = [None] * n if campaign is None else _memo_map(campaign, _campaign_id, memo["campaign_id"])
        times: dict[str, list[Any]] = {}
        for c in TIME_COLUMNS:
            texts = get(c)
            times[c] = [None] * n if texts is None else _utc_times(texts)
    except (_Bad, ValueError, OverflowError):  # the row path names the bad row and field
        return None
    given = [times[c] for c in _EVENT_TIME_ORDER if c in at]
    if given and None not in given[0]:
        event_at = given[0]
    else:
        event_at = (
            [next((v for v in vs if v is not None), None) for vs in zip(*given, strict=True)] if given else [None] * n
        )
        if None in event_at:
            return None
    statuses = get("status")
    status = _memo_map(statuses, _status, memo["status"]) if statuses is not None else [""] * n
    if None in status:
        return None
    if "" in status:
        latest = [(times[c], s) for c, s in _LATEST_FIRST]
        status = [st or next((s for ts, s in latest if ts[i] is not None), "") for i, st in enumerate(status)]
    sender = _or_none(get("sender"), n)
    source = get("source")
    channel = get("channel")
    mcc, mnc, country = (list(c) for c in zip(*where, strict=True))
    return {
        "external_id": list(ext),
        "vendor_message_id": _or_none(get("vendor_message_id"), n),
        "company_id": [p[1] for p in party],
        "agreement_id": [p[0] for p in party],
        "campaign_id": campaign_ids,
        "sender": sender,
        "channel": ["sms"] * n if channel is None else _memo_map(channel, _channel, memo["channel"]),
        "direction": direction,
        "source": sender if source is None else [a or b for a, b in zip(source, sender, strict=True)],
        "destination": _or_none(get("destination"), n),
        "mcc": mcc,
        "mnc": mnc,
        "country": country,
        "network": _or_none(get("network"), n),
        "encoding": _or_none(get("encoding"), n),
        "segments": segments,
        "status": status,
        "event_at": event_at,
        **times,
        "vendor_error": _or_none(get("vendor_error"), n),
    }


def _direction(text: str) -> str:
    d = (text or "mt").lower()
    if d not in DIRECTIONS:
        raise _Bad
    return d


def _status(text: str) -> str | None:
    s = text.lower()
    return None if s and s not in STATUSES else s


_campaign_id = _checked(_campaign_ref)


def _channel(text: str) -> str:
    return (text or "sms").lower()


def _where(mccmnc: str = "", mcc: str = "", mnc: str = "", country: str = "") -> tuple[Any, Any, Any]:
    """(mcc, mnc, country) of a row, as ``parse_row`` gives them."""
    mcc, mnc = _checked(_network)(mccmnc, mcc, mnc)
    return mcc or None, mnc or None, country.upper() if country else (_country_of(mcc) if mcc else None)


# ---------------------------------------------------------------- rating


_QUERIES: dict[tuple, dict[str, Any]] = {}


def _query(channel: str, direction: str, mcc: str | None, mnc: str | None, country: str | None, sender: str | None):
    """``lk.query`` of an EDR, memoised: events with equal attributes share one
    read-only dict (the engine only reads it)."""
    return _query_of((channel, direction, mcc, mnc, country, sender_type_of(sender)))


def _query_of(key: tuple[str, str, str | None, str | None, str | None, str | None]) -> dict[str, Any]:
    """``_query`` by (channel, direction, mcc, mnc, country, sender type)."""
    q = _QUERIES.get(key)
    if q is None:
        if len(_QUERIES) >= 100_000:
            _QUERIES.clear()
        channel, direction, mcc, mnc, country, _kind = key
        q = _QUERIES[key] = lk.query(
            channel=channel,
            direction=direction,
            mccmnc=(mcc + mnc) if mcc and mnc else None,
            mcc=mcc,
            country=country,
            sender_type=key[5],
        )
    return q


def _event(row: dict[str, Any]) -> en.Event:
    g = row.get
    sender = g("sender")
    return en.Event(
        g("id"),
        row["event_at"],
        _query(g("channel") or "sms", g("direction") or "mt", g("mcc"), g("mnc"), g("country"), sender),
        g("segments") or 1,
        sender,
        g("submitted_at"),
        g("delivered_at") or g("seen_at"),
        g("status") in FINAL_STATUSES,
    )


event_of = _event  # public: billing.refunds rates a stored EDR again


class Rater:
    """Rates rows of one transaction; writes results, charges and state."""

    def __init__(self, session: Session, plans: Plans, *, now: datetime | None = None):
        self.s = session
        self.plans = plans
        self.now = now or clock.now()

    def _load_state(self, ag_id: int, since: datetime | None) -> tuple[en.State, dict, dict]:
        st = en.State()
        ids: dict = {}
        q = sa.select(CNT.c.id, CNT.c.node_key, CNT.c.group_value, CNT.c.period_start, CNT.c.quantity).where(
            CNT.c.agreement_id == ag_id
        )
        if since is not None:
            q = q.where(CNT.c.period_start >= since)
        for cid, node, grp, start, qty in self.s.execute(q):
            key = (node, grp, start)
            st.counters[key] = qty
            ids[key] = cid
        plan = self.plans.get(ag_id)
        pack_ids = [e.enabled_id for e in plan.entries if e.kind == en.PACK] if plan else []
        have: dict = {}
        if pack_ids:
            for pid, used in self.s.execute(
                sa.select(PCK.c.enabled_service_id, PCK.c.used).where(PCK.c.enabled_service_id.in_(pack_ids))
            ):
                st.pack_used[pid] = used
                have[pid] = True
        return st, ids, have

    def rate(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Rate ``rows`` (EDR column dicts, in time order). Returns (results, charges)
        where results are the rating columns per row (same order); None for
        a row that stays pending. Locks the agreements first."""
        decisions, charges = self.decide(rows)
        now = self.now
        results = [None if d is None else _result(d, now) for d in decisions]
        return results, [{**dict(zip(CHARGE_COLUMNS, c[:-1], strict=True)), "_row": c[-1]} for c in charges]

    def decide(self, rows: list[dict[str, Any]]) -> tuple[list[en.Decision | None], list[tuple]]:
        """The engine's decision per row (None: stays pending) and the charges as
        tuples in ``CHARGE_COLUMNS`` order plus the row's position; writes the
        counters and pack usage. Locks the agreements first."""
        return self.decide_events([r.get("agreement_id") for r in rows], [_event(r) for r in rows])

    def decide_events(
        self, agreement_ids: Sequence[int | None], events: Sequence[en.Event]
    ) -> tuple[list[en.Decision | None], list[tuple]]:
        """``decide`` for events built already (``agreement_ids[i]`` is the
        agreement of ``events[i]``; ``event.key`` the EDR id).

        Charge details without a scale are shared dict objects, one per distinct
        (path, unit price, quantity, service): read-only, dumped to JSON once."""
        ag_ids = sorted(set(agreement_ids).difference((None, 0)))
        ledger.lock(self.s, ag_ids)
        self.purchase_packs(ag_ids)
        firsts: dict[int, datetime] = {}
        if len(ag_ids) == 1:
            firsts[ag_ids[0]] = min(ev.at for a, ev in zip(agreement_ids, events, strict=True) if a)
        else:
            for a, ev in zip(agreement_ids, events, strict=True):
                if a and (a not in firsts or ev.at < firsts[a]):
                    firsts[a] = ev.at
        ctx: dict[int, Any] = {}
        for ag_id in ag_ids:
            plan = self.plans.get(ag_id)
            since = plan.period_of(firsts[ag_id]) if plan else None
            st, cids, have = self._load_state(ag_id, since)
            ag = self.s.get(Agreement, ag_id)
            ctx[ag_id] = [
                plan,
                st,
                ledger.headroom(self.s, ag, now=self.now),
                cids,
                have,
                st.counters.copy(),
                dict(st.pack_used),
                0,
            ]
        decisions: list[en.Decision | None] = []
        charges: list[tuple] = []
        shared: dict[tuple, dict[str, Any]] = {}
        no_agreement = None
        rate, money_charge, apply_, RATED, PENDING = en.rate, en.money_charge, en.apply, en.RATED, en.PENDING
        for pos, (ag_id, ev) in enumerate(zip(agreement_ids, events, strict=True)):
            c = ctx.get(ag_id) if ag_id else None
            if c is None or c[0] is None:
                if no_agreement is None:
                    no_agreement = en.Decision(en.REJECTED, reason="no_agreement", note="the EDR names no agreement")
                decisions.append(no_agreement)
                continue
            plan, st = c[0], c[1]
            d = rate(ev, plan, st)
            if d.state == PENDING:
                decisions.append(None)
                continue
            if d.state == RATED:
                amt, adj = money_charge(d)
                cost = amt + adj
                if c[2] is not None and cost > 0 and cost > c[2]:
                    decisions.append(
                        en.Decision(
                            en.REJECTED,
                            reason="insufficient_credit",
                            note=f"charge {format_micros(cost)} {plan.currency} passes the credit limit",
                            path=d.path,
                            source=d.source,
                            service_id=d.service_id,
                            unit_price=d.unit_price,
                            quantity=d.quantity,
                            currency=d.currency,
                            billing_rule=d.billing_rule,
                        )
                    )
                    continue
                if c[2] is not None:
                    c[2] -= cost
                apply_(st, d)
                if amt:
                    if d.scale is None:
                        key = (d.path, d.unit_price, d.quantity, d.service_id)
                        details = shared.get(key)
                        if details is None:
                            details = shared[key] = {
                                "path": d.path,
                                "unit_price": d.unit_price,
                                "quantity": d.quantity,
                                "service_id": d.service_id,
                                "scale": None,
                            }
                    else:
                        details = {
                            "path": d.path,
                            "unit_price": d.unit_price,
                            "quantity": d.quantity,
                            "service_id": d.service_id,
                            "scale": d.scale,
                        }
                    charges.append(
                        (ag_id, "edr", ev.key, amt, plan.currency, d.charge_at, d.period_start, details, pos)
                    )
                if adj:
                    details = {
                        "path": d.path,
                        "scale": d.scale,
                        "reason": "back-to-first threshold crossed: earlier units of the period re-priced",
                    }
                    charges.append(
                        (
                            ag_id,
                            "scale_adjustment",
                            ev.key,
                            adj,
                            plan.currency,
                            d.charge_at,
                            d.period_start,
                            details,
                            pos,
                        )
                    )
            decisions.append(d)
        self._write_state(ctx)
        return decisions, charges

    def _write_state(self, ctx: dict[int, Any]) -> None:
        for ag_id, (plan, st, _h, cids, have, old_c, old_p, _x) in ctx.items():
            if plan is None:
                continue
            upd, new = [], []
            for key, qty in st.counters.items():
                if old_c.get(key) == qty:
                    continue
                if key in cids:
                    upd.append({"b_id": cids[key], "b_q": qty})
                else:
                    new.append(
                        {
                            "agreement_id": ag_id,
                            "node_key": key[0],
                            "group_value": key[1],
                            "period_start": key[2],
                            "quantity": qty,
                        }
                    )
            if upd:
                self.s.execute(
                    sa.update(CNT).where(CNT.c.id == sa.bindparam("b_id")).values(quantity=sa.bindparam("b_q")), upd
                )
            if new:
                self.s.execute(sa.insert(CNT), new)
            pu, pn = [], []
            for pid, used in st.pack_used.items():
                if old_p.get(pid) == used:
                    continue
                (pu if pid in have else pn).append(
                    {"b_id": pid, "b_u": used} if pid in have else {"enabled_service_id": pid, "used": used}
                )
            if pu:
                self.s.execute(
                    sa.update(PCK)
                    .where(PCK.c.enabled_service_id == sa.bindparam("b_id"))
                    .values(used=sa.bindparam("b_u")),
                    pu,
                )
            if pn:
                self.s.execute(sa.insert(PCK), pn)

    def purchase_packs(self, ag_ids: Sequence[int]) -> None:
        """Write the purchase charge of every charged pack whose effective-from has come (ENS-06)."""
        packs.charge_due(self.s, now=self.now, agreement_ids=ag_ids)


RESULT_COLUMNS = (
    "rating_state",
    "rating_reason",
    "rating_note",
    "rate_path",
    "service_id",
    "billing_rule",
    "unit_price",
    "quantity",
    "cost",
    "currency",
    "pack_enabled_id",
    "pack_units",
    "rated_at",
)
# A row left unrated (pending, or ingested with --no-rate): no result columns.
UNRATED = ("unrated",) + (None,) * (len(RESULT_COLUMNS) - 1)


def _result_values(d: en.Decision, now: datetime) -> tuple:
    """The rating columns of a decision, in ``RESULT_COLUMNS`` order."""
    return (
        d.state,
        d.reason,
        (d.note or "")[:300] or None,
        (d.path or "")[:300] or None,
        d.service_id,
        d.billing_rule,
        d.unit_price,
        d.quantity,
        d.amount if d.state == en.RATED else None,
        d.currency,
        d.pack_id,
        d.pack_units or None,
        now,
    )


def _result(d: en.Decision, now: datetime) -> dict[str, Any]:
    return dict(zip(RESULT_COLUMNS, _result_values(d, now), strict=True))


CHARGE_COLUMNS = ("agreement_id", "kind", "edr_id", "amount", "currency", "at", "period_start", "details")


def _update_rows(session: Session, ids: list[int], results: list[dict[str, Any]]) -> None:
    params = [{"b_id": i, **{f"b_{k}": v for k, v in r.items()}} for i, r in zip(ids, results, strict=True)]
    if not params:
        return
    stmt = (
        sa.update(EDR)
        .where(EDR.c.id == sa.bindparam("b_id"), EDR.c.rating_state == "unrated")
        .values({k: sa.bindparam(f"b_{k}") for k in RESULT_COLUMNS})
    )
    session.execute(stmt, params)


def rate_rows(session: Session, rows: list[dict[str, Any]], plans: Plans | None = None) -> dict[str, int]:
    """Rate stored EDR rows (dicts with ``id``) and write everything; no commit."""
    rater = Rater(session, plans or Plans(session))
    results, charges = rater.rate(rows)
    done = [(r["id"], res) for r, res in zip(rows, results, strict=True) if res is not None]
    _update_rows(session, [i for i, _ in done], [res for _, res in done])
    for c in charges:
        c.pop("_row")
    ledger.post(session, charges, check_credit=False)  # credit was checked under the lock
    return _count(results)


def _count(results: list[dict[str, Any] | None]) -> dict[str, int]:
    out = {"rated": 0, "rejected": 0, "pending": 0}
    for r in results:
        out["pending" if r is None else r["rating_state"]] += 1
    return out


def _select_rows(session: Session, where: list[Any], limit: int) -> list[dict[str, Any]]:
    q = sa.select(EDR).where(*where).order_by(EDR.c.event_at, EDR.c.id).limit(limit)
    return [dict(m) for m in session.execute(q).mappings()]


def rate_pending(session: Session, *, agreement_id: int | None = None, chunk: int = CHUNK) -> dict[str, int]:
    """Rate every unrated EDR (of one agreement when given). Commits per chunk
    (restartable: a chunk is applied whole or not at all)."""
    total = {"rated": 0, "rejected": 0, "pending": 0}
    plans = Plans(session)
    last = (datetime.min.replace(tzinfo=UTC), 0)
    while True:
        where = [
            EDR.c.rating_state == "unrated",
            sa.or_(EDR.c.event_at > last[0], sa.and_(EDR.c.event_at == last[0], EDR.c.id > last[1])),
        ]
        if agreement_id is not None:
            where.append(EDR.c.agreement_id == agreement_id)
        # Peek, lock the agreements, then re-read: another process may have rated some.
        peek = _select_rows(session, where, chunk)
        if not peek:
            break
        ledger.lock(session, {r["agreement_id"] for r in peek if r["agreement_id"]})
        ids = [r["id"] for r in peek]
        rows = [
            dict(m)
            for m in session.execute(
                sa.select(EDR)
                .where(EDR.c.id.in_(ids), EDR.c.rating_state == "unrated")
                .order_by(EDR.c.event_at, EDR.c.id)
            ).mappings()
        ]
        last = (peek[-1]["event_at"], peek[-1]["id"])
        if rows:
            got = rate_rows(session, rows, plans)
            for k, v in got.items():
                total[k] += v
        session.commit()
    return total


def rate_and_charge(
    session: Session, edrs: Iterable[int], *, event: str | None = None, at: datetime | None = None
) -> dict[str, int]:
    """For the dispatch worker: mark ``event`` (submitted|delivered) on the EDRs
    that lack its time, then rate those still unrated. No commit."""
    ids = list(edrs)
    if event not in (None, "submitted", "delivered"):
        raise InvalidInput("event must be submitted or delivered")
    now = at or clock.now()
    if event:
        col = EDR.c[f"{event}_at"]
        session.execute(sa.update(EDR).where(EDR.c.id.in_(ids), col.is_(None)).values({col.name: now, "status": event}))
    peek = session.execute(sa.select(EDR.c.agreement_id).where(EDR.c.id.in_(ids))).scalars()
    ledger.lock(session, {a for a in peek if a})
    rows = [
        dict(m)
        for m in session.execute(
            sa.select(EDR).where(EDR.c.id.in_(ids), EDR.c.rating_state == "unrated").order_by(EDR.c.event_at, EDR.c.id)
        ).mappings()
    ]
    return rate_rows(session, rows)


def estimate(
    session: Session, agreement: Agreement, events: list[dict[str, Any]], *, at: datetime | None = None
) -> dict[str, Any]:
    """Cost of hypothetical events (column dicts as for ingest, no ids) as if
    submitted and delivered at ``at``; writes nothing."""
    at = at or clock.now()
    plans = Plans(session)
    plan = plans.get(agreement.id)
    rater = Rater(session, plans, now=at)
    st = rater._load_state(agreement.id, plan.period_of(at) if plan else None)[0]
    total, rejected, reasons = 0, 0, defaultdict(int)
    for ev in events:
        row = {"event_at": at, "submitted_at": at, "delivered_at": at, "status": "delivered", **ev}
        d = en.rate(_event(row), plan, st) if plan else en.Decision(en.REJECTED, reason="no_agreement")
        if d.state == en.RATED:
            en.apply(st, d)
            amt, adj = en.money_charge(d)
            total += amt + adj
        else:
            rejected += 1
            reasons[d.reason or d.state] += 1
    return {
        "agreement": agreement.code,
        "currency": agreement.currency,
        "events": len(events),
        "cost": total,
        "rejected": rejected,
        "reasons": dict(reasons),
        "available": ledger.headroom(session, agreement, now=at),
    }


# ----------------------------------------------------------------- ingest


def _chunks(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def validate_file(session: Session, path: str | Path, *, max_problems: int = 50) -> int:
    """First pass: every row parses, else InvalidInput naming rows (nothing written)."""
    refs = _Refs(session)
    problems: list[Problem] = []
    n = 0
    seen: set[str] = set()
    for row_no, raw in read_rows(path):
        n += 1
        parse_row(row_no, raw, refs, problems)
        ext = raw.get("external_id", "")
        if ext in seen:
            problems.append(Problem("external_id", f"{ext!r} appears twice in the file", row_no))
        seen.add(ext)
        if len(problems) >= max_problems:
            break
    if problems:
        raise InvalidInput.from_problems(problems, str(path))
    return n


def _reserve_ids(session: Session, n: int) -> list[int]:
    """Ids for ``n`` new EDR rows. SQLite: max(id) under the write lock the
    caller holds; PostgreSQL: values drawn from the id sequence."""
    if session.get_bind().dialect.name == "postgresql":
        conn = session.connection()
        # The sequence's name first: pg_get_serial_sequence in the row list would run once per row.
        seq = conn.exec_driver_sql("SELECT pg_get_serial_sequence('edr', 'id')").scalar()
        q = "SELECT nextval(%(seq)s::regclass) FROM generate_series(1, %(n)s)"
        return [r[0] for r in conn.exec_driver_sql(q, {"seq": seq, "n": n})]
    top = session.connection().exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM edr").scalar() or 0
    return list(range(top + 1, top + 1 + n))


def _write_lock(session: Session) -> None:
    """SQLite: take the database write lock now (a no-op write); PostgreSQL: nothing.
    (New code outside this package calls ``cpaas_cli.db.locking.write_lock``.)"""
    locking.write_lock(session)


# PostgreSQL advisory lock of `edr ingest` (the scheme of scheduler/serve.py's job locks).
INGEST_LOCK_KEY = zlib.crc32(b"cpaas-lock:edr-ingest") & 0x7FFFFFFF


def _ingest_lock(session: Session) -> None:
    """Serialise ingest chunks until the transaction ends, so that the check of
    which external ids are stored already and the insert of the others are one
    step: SQLite's write lock; on PostgreSQL an advisory lock (otherwise two
    runs of overlapping files both find an id missing and the second insert
    fails on the unique key)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK_KEY,))
    else:
        _write_lock(session)


def _sqlite_time(v: datetime | None) -> str | None:
    if v is None:
        return None
    if v.tzinfo is not UTC:
        v = v.astimezone(UTC)
    # UTC-aware isoformat is "YYYY-MM-DD HH:MM:SS.ffffff+00:00": drop the offset.
    return v.isoformat(" ", "microseconds")[:26]


class _TimeText(dict):
    """datetime → SQLite text, each distinct instant formatted once (EDR times,
    charge times and ``now`` repeat across the columns and rows of a chunk)."""

    def __init__(self) -> None:
        super().__init__({None: None})

    def __missing__(self, v: datetime) -> str | None:
        text = self[v] = _sqlite_time(v)
        return text


def _json_values(values: Sequence[Any]) -> list[str | None]:
    """JSON text per value; a dict object shared by many rows (see ``Rater``) is dumped once."""
    keys = list(map(id, values))
    texts = {k: None if v is None else json.dumps(v) for k, v in dict(zip(keys, values, strict=True)).items()}
    return list(map(texts.__getitem__, keys))


_ISO_SPACE = methodcaller("isoformat", " ", "microseconds")
_FIRST_26 = itemgetter(slice(0, 26))


def _time_values(values: Sequence[datetime | None], times: _TimeText) -> list[str | None]:
    """SQLite text per aware time (``_sqlite_time``), through the chunk's ``times``."""
    n = len(values)
    if n and values[0] is values[-1] and values.count(values[0]) == n:
        return [times[values[0]]] * n  # one instant (``now``, a period start)
    if n and values[0] in times and values[-1] in times:
        return list(map(times.__getitem__, values))  # formatted for another column already
    try:
        utc = set(map(_TZINFO, values)) == {UTC}
    except AttributeError:  # None among them
        utc = False
    if not utc:
        return list(map(times.__getitem__, values))
    # All UTC: "YYYY-MM-DD HH:MM:SS.ffffff+00:00" less the offset, formatted in C.
    texts = list(map(_FIRST_26, map(_ISO_SPACE, values)))
    times.update(zip(values, texts, strict=True))
    return texts


ROWS_PER_STATEMENT = 100  # multi-row VALUES: fewer statement steps than one row per execute


def _max_params(session: Session, sqlite_: bool) -> int:
    if not sqlite_:
        return 65_535  # PostgreSQL protocol limit
    raw = session.connection().connection.dbapi_connection
    try:
        return raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except (AttributeError, sqlite3.Error):  # pragma: no cover - older driver
        return 999


def bulk_insert(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Driver-level executemany (no per-value ORM processing); every row has the same keys."""
    if not rows:
        return
    cols = list(rows[0])
    insert_values(session, table, cols, list(zip(*(map(itemgetter(c), rows) for c in cols), strict=True)))


def insert_values(session: Session, table: sa.Table, cols: list[str], data: list[tuple]) -> None:
    """INSERT value tuples (in ``cols`` order) through the driver (see ``insert_columns``)."""
    if data:
        insert_columns(session, table, dict(zip(cols, zip(*data, strict=True), strict=True)))


def insert_columns(
    session: Session,
    table: sa.Table,
    columns: dict[str, Sequence[Any]],
    *,
    times: _TimeText | None = None,
    unless_stored: str | None = None,
) -> int:
    """INSERT rows given column by column (``columns[name][i]`` is row i's value) through the driver.

    Converted column by column (C-level ``map``/``zip``): JSON to text, and on
    SQLite aware times to UTC text (through ``times``, shared by the caller's
    tables); a column that is NULL in every row and has no server default is
    left out of the statement (the database stores NULL for it all the same);
    on SQLite, rows that carry their ids go in groups by which columns are
    NULL, each group without those; in a bulk insert a value every row shares
    goes into the SQL as a literal. SQLite: rows go ``ROWS_PER_STATEMENT`` per
    INSERT (multi-row VALUES: far fewer statement steps than one row per
    execute), the rest in one more; PostgreSQL: one COPY.

    Returns how many rows were stored. ``unless_stored`` (SQLite only), a
    column with a unique key: rows whose value there is stored already are
    left out (``ON CONFLICT … DO NOTHING``) and not counted."""
    n = len(next(iter(columns.values()), ()))
    if not n:
        return 0
    sqlite_ = session.get_bind().dialect.name != "postgresql"
    if unless_stored and not sqlite_:
        raise ValueError("unless_stored: SQLite only (COPY has no ON CONFLICT)")
    tail = f" ON CONFLICT ({unless_stored}) DO NOTHING" if unless_stored else ""
    times = _TimeText() if times is None else times
    names: list[str] = []
    values_of: list[Sequence[Any]] = []
    mixed: list[int] = []  # positions of columns NULL in some rows, without a server default
    shared: dict[str, str] = {}  # SQLite: column → the SQL literal of the value every row has
    for c, values in columns.items():
        if len(values) != n:
            raise ValueError(f"column {c}: {len(values)} values for {n} rows")
        col = table.c[c]
        if col.server_default is None:
            nulls = 0 if all(values) else values.count(None)  # all(): no None, found faster than by count
            if nulls == n:
                continue
            if nulls:
                mixed.append(len(names))
        t = col.type
        if isinstance(t, sa.JSON):
            values = _json_values(values)
        elif sqlite_ and "UTCDateTime" in type(t).__name__:
            values = _time_values(values, times)
        if sqlite_ and n >= SHARED_LITERAL_ROWS and (lit := _shared_literal(values)) is not None:
            shared[c] = lit
            continue
        names.append(c)
        values_of.append(values)
    if not sqlite_:
        _copy(session, table.name, names, values_of, times)
        return n
    if mixed and "id" in names:
        # Rows with their own ids may go in any order: rows by which columns are NULL,
        # each group without those columns (the driver binds a None far slower than a value).
        groups: dict[tuple[bool, ...], list[int]] = defaultdict(list)
        for i, key in enumerate(zip(*(map(is_, values_of[j], repeat(None)) for j in mixed), strict=True)):
            groups[key].append(i)
        table_rows = list(zip(*values_of, strict=True)) if len(groups) > 1 else None
        stored = 0
        for key, rows in groups.items():
            drop = {j for j, null in zip(mixed, key, strict=True) if null}
            keep = [j for j in range(len(names)) if j not in drop]
            if table_rows is None:  # one group: its columns as they are
                picked = zip(*(values_of[j] for j in keep), strict=True)
            else:
                pick = itemgetter(*keep) if len(keep) > 1 else lambda r, j=keep[0]: (r[j],)
                picked = map(pick, map(table_rows.__getitem__, rows))
            stored += _run_statements(
                session, table.name, [names[j] for j in keep], picked, len(rows), sqlite_, tail, shared
            )
        return stored
    return _run_statements(session, table.name, names, zip(*values_of, strict=True), n, sqlite_, tail, shared)


# `insert_columns` on SQLite: in a statement of at least this many rows, a value all
# rows share (a chunk's agreement, currency, rating time, …) is written into the SQL
# once per row as a literal instead of being bound as a parameter per row.
SHARED_LITERAL_ROWS = 100
_INT64 = range(-(1 << 63), 1 << 63)


def _shared_literal(values: Sequence[Any]) -> str | None:
    """The SQLite literal of the one int or str every one of ``values`` is (None
    when they differ, or for other types, long text or text with a NUL)."""
    v = values[0]
    if type(v) is int:
        if v not in _INT64:
            return None
        lit = str(v)
    elif type(v) is str:
        if len(v) > 100 or "\x00" in v:
            return None
        lit = "'" + v.replace("'", "''") + "'"
    else:
        return None
    last = values[-1]
    if (last is not v and last != v) or values.count(v) != len(values):
        return None
    if type(v) is int and set(map(type, values)) != {int}:  # True or 1.0 equal 1 but are not ints
        return None
    return lit


def _copy(session: Session, table: str, names: list[str], values_of: list[Sequence[Any]], times: dict) -> None:
    """PostgreSQL: the rows through one COPY, as COPY text built column by column
    (``copy_text``), else row by row with psycopg's ``write_row``."""
    raw = session.connection().connection.dbapi_connection
    text = copy_text(values_of, times)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as cp:
        if text is not None:
            cp.write(text)
        else:
            write = cp.write_row
            for row in zip(*values_of, strict=True):
                write(row)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def copy_text(values_of: list[Sequence[Any]], times: dict | None = None) -> str | None:
    """The rows (given column by column) in COPY's text format: one line per
    row, tab between fields, ``\\N`` for NULL, backslash escapes in text.
    Columns of str, int or aware datetime values (and None) only; None when a
    column holds anything else (the caller then lets psycopg write the rows).
    ``times`` keeps the text of each instant for the caller's next tables."""
    fields: list[Sequence[str]] = []
    times = {} if times is None else times
    for values in values_of:
        n = len(values)
        if n > 1 and values[0] is values[-1] and type(values[0]) in (str, int) and values.count(values[0]) == n:
            text = copy_text([[values[0]]])
            fields.append([text[:-1]] * n)  # one value in every row
            continue
        kinds = set(map(type, values))
        nulls = type(None) in kinds
        kinds.discard(type(None))
        present = list(filter(partial(is_not, None), values)) if nulls else values
        if kinds == {str}:
            joined = "".join(present)
            if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
                present = [v.translate(_COPY_ESCAPES) for v in present]
            elif not nulls:
                fields.append(values)
                continue
        elif kinds == {int}:
            present = list(map(str, present))
        elif kinds == {datetime}:
            if None in set(map(_TZINFO, present)):
                return None  # naive times: leave them to psycopg
            if present[0] in times and present[-1] in times:
                present = list(map(times.__getitem__, present))  # the same instants as another column
            elif present[0] is present[-1] and present.count(present[0]) == len(present):
                present = [present[0].isoformat()] * len(present)
            else:
                texts = list(map(datetime.isoformat, present))
                times.update(zip(present, texts, strict=True))
                present = texts
        elif kinds:
            return None
        if nulls:
            it = iter(present)
            present = [_COPY_NULL if v is None else next(it) for v in values]
        fields.append(present)
    if not fields or not len(fields[0]):
        return ""
    return "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"


def _run_statements(
    session: Session,
    table: str,
    names: list[str],
    rows: Iterator[tuple],
    n: int,
    sqlite_: bool,
    tail: str = "",
    shared: dict[str, str] | None = None,
) -> int:
    """Run the INSERTs of ``values_statements`` for ``n`` rows (tuples in
    ``names`` order), each followed by ``tail``; how many rows they stored.
    ``shared``: columns whose value every row has, as SQL literals."""
    conn = session.connection()
    stored = 0
    for sql, params in values_statements(
        table, names, rows, n, _max_params(session, sqlite_), "?" if sqlite_ else "%s", shared
    ):
        stored += conn.exec_driver_sql(sql + tail, params).rowcount
    return stored


def values_statements(
    table: str,
    names: Sequence[str],
    rows: Iterator[tuple],
    n: int,
    max_params: int,
    ph: str = "?",
    shared: dict[str, str] | None = None,
) -> list[tuple[str, Any]]:
    """The INSERTs of ``n`` rows (an iterator of tuples in ``names`` order) with
    up to ``ROWS_PER_STATEMENT`` rows per statement under ``max_params``
    parameters (multi-row VALUES: far fewer statement steps than one row per
    execute): (sql, a list of parameter tuples) for the full statements, then
    (sql, one parameter tuple) for the rest. ``shared`` columns (name → SQL
    literal) follow ``names`` in every row, with no parameter."""
    shared = shared or {}
    width = len(names)
    one = f"({', '.join([ph] * width + list(shared.values()))})"
    head = f"INSERT INTO {table} ({', '.join([*names, *shared])}) VALUES "
    per = max(1, min(ROWS_PER_STATEMENT, max_params // max(width, 1)))
    full, rest = divmod(n, per)
    out: list[tuple[str, Any]] = []
    if full:
        out.append(
            (head + ", ".join([one] * per), [tuple(chain.from_iterable(islice(rows, per))) for _ in range(full)])
        )
    if rest:
        out.append((head + ", ".join([one] * rest), tuple(chain.from_iterable(rows))))
    return out


def _stored_external_ids(session: Session, exts: list[str]) -> set[str]:
    """Which of ``exts`` are stored already (driver-level; SQLite in batches under its parameter limit)."""
    conn = session.connection()
    if session.get_bind().dialect.name == "postgresql":
        return {r[0] for r in conn.exec_driver_sql("SELECT external_id FROM edr WHERE external_id = ANY(%s)", (exts,))}
    per = _max_params(session, True)
    found: set[str] = set()
    for i in range(0, len(exts), per):
        part = tuple(exts[i : i + per])
        q = f"SELECT external_id FROM edr WHERE external_id IN ({', '.join('?' * len(part))})"
        found.update(r[0] for r in conn.exec_driver_sql(q, part))
    return found


def ingest(
    session: Session,
    path: str | Path,
    *,
    rate: bool = True,
    chunk: int = INGEST_CHUNK,
    check_first: bool = False,
    stop: StopRequest | None = None,
) -> dict[str, int]:
    """Ingest an EDR file (CSV, XLSX or JSONL). Commits per chunk; a chunk is
    validated whole before anything of it is written, and a bad row stops the
    run there (with ``check_first`` the whole file is validated before the
    first write). Rows whose external id is stored already are skipped, so a
    re-run after a fix or a crash inserts only what is missing. New rows are
    rated in memory (unless ``rate`` is False) and written with their charges.
    A ``stop`` asked for (Ctrl-C) ends the run before its next chunk (edr/interrupt.py)."""
    with _gc_paused(), _bulk_pragmas(session):
        return _ingest(session, path, rate=rate, chunk=chunk, check_first=check_first, stop=stop)


# SQLite settings of the connection for a bulk run, put back after it. Neither
# touches durability: a larger page cache (the external-id index is written
# all over), and WAL checkpoints every ~40 MB of log rather than every ~4 MB.
BULK_PRAGMAS = {"cache_size": -131072, "wal_autocheckpoint": 10000}


@contextmanager
def _bulk_pragmas(session: Session) -> Iterator[None]:
    if session.get_bind().dialect.name == "postgresql":
        yield
        return
    raw = session.connection().connection.dbapi_connection
    before = {k: raw.execute(f"PRAGMA {k}").fetchone()[0] for k in BULK_PRAGMAS}
    for k, v in BULK_PRAGMAS.items():
        raw.execute(f"PRAGMA {k}={int(v)}")
    try:
        yield
    finally:
        for k, v in before.items():
            raw.execute(f"PRAGMA {k}={int(v)}")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk run: the many short-lived
    row dicts and tuples hold no cycles (reference counting frees them), and
    the collector's passes over them cost about a fifth of the ingest CPU."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _blocks(path: str | Path, size: int) -> Iterator[tuple[list[str], list[tuple[int, list[str]]]]]:
    """The file in chunks of ``size`` rows: (column names, [(row number, cells)]),
    one cell per name. CSV straight from ``read_csv_lists``; a workbook or JSONL
    file from ``read_rows`` (names: the keys the chunk's rows have)."""
    lists = read_lists(path)
    if lists is not None:
        names, rows = lists
        for block in _chunks(rows, size):
            yield names, block
        return
    for block in _chunks(read_rows(path), size):
        names = list(dict.fromkeys(chain.from_iterable(raw for _n, raw in block)))
        yield names, [(n, [raw.get(k, "") for k in names]) for n, raw in block]


def _parse_block(
    names: list[str],
    block: list[tuple[int, list[str]]],
    refs: _Refs,
    where: str,
    outcome: str = "nothing was written",
) -> dict[str, list[Any]]:
    """The chunk's EDR columns: ``parse_columns``, else row by row through
    ``parse_row``, which raises InvalidInput naming each bad row and field
    (``outcome``: what the message says was written)."""
    cols = parse_columns(names, [cells for _n, cells in block], refs)
    if cols is not None:
        return cols
    problems: list[Problem] = []
    named = [(i, name) for i, name in enumerate(names) if name]
    rows = []
    for n, cells in block:
        r = parse_row(n, {name: cells[i] for i, name in named}, refs, problems)
        if r is not None:
            rows.append(r)
    exts = [r["external_id"] for r in rows]
    if len(set(exts)) != len(exts):
        dup = next(e for e in exts if exts.count(e) > 1)
        problems.append(Problem("external_id", f"{dup!r} appears twice in the file"))
    if problems:
        raise InvalidInput.from_problems(problems[:50], where, outcome=outcome)
    return {c: [r[c] for r in rows] for c in PARSED_COLUMNS}


def _events(ids: Sequence[int], cols: dict[str, list[Any]], memo: dict[Any, Any]) -> list[en.Event]:
    """The engine's events of parsed EDR columns (as ``_event`` builds one from a row)."""
    senders = cols["sender"]
    kinds = _memo_map(senders, sender_type_of, memo)
    keys = list(zip(cols["channel"], cols["direction"], cols["mcc"], cols["mnc"], cols["country"], kinds, strict=True))
    queries = _memo_map(keys, _query_of)
    delivered, seen = cols["delivered_at"], cols["seen_at"]
    if seen.count(None) != len(seen):
        delivered = [d or s for d, s in zip(delivered, seen, strict=True)]
    final = list(map(FINAL_STATUSES.__contains__, cols["status"]))
    return list(
        map(en.Event, ids, cols["event_at"], queries, cols["segments"], senders, cols["submitted_at"], delivered, final)
    )


_DECIDED = attrgetter(
    "state", "reason", "note", "path", "service_id", "billing_rule", "unit_price", "quantity", "amount", "currency",
    "pack_id", "pack_units",
)  # fmt: skip


def _short(values: list[str | None]) -> list[str | None]:
    """``(v or "")[:300] or None`` per value."""
    distinct = set(values)
    if "" in distinct or any(len(v) > 300 for v in distinct if v is not None):
        return [(v or "")[:300] or None for v in values]
    return values


def _result_columns(decisions: list[en.Decision | None], now: datetime) -> dict[str, list[Any]]:
    """``RESULT_COLUMNS`` → one list each: ``_result_values`` per decision (UNRATED for None)."""
    m = len(decisions)
    if not m:
        return {c: [] for c in RESULT_COLUMNS}
    if type(None) in set(map(type, decisions)):
        rows = [UNRATED if d is None else _result_values(d, now) for d in decisions]
        return {c: list(v) for c, v in zip(RESULT_COLUMNS, zip(*rows, strict=True), strict=True)}
    state, reason, note, path, svc, rule, price, qty, amount, cur, pack, units = map(
        list, zip(*map(_DECIDED, decisions), strict=True)
    )
    if set(state) != {en.RATED}:
        amount = [a if st == en.RATED else None for st, a in zip(state, amount, strict=True)]
    if 0 in set(units):
        units = [u or None for u in units]
    values = (state, reason, _short(note), _short(path), svc, rule, price, qty, amount, cur, pack, units, [now] * m)
    return dict(zip(RESULT_COLUMNS, values, strict=True))


def _ingest(
    session: Session, path: str | Path, *, rate: bool, chunk: int, check_first: bool, stop: StopRequest | None
) -> dict[str, int]:
    if check_first:
        validate_file(session, path)
    refs = _Refs(session)
    plans = Plans(session)
    out = {"read": 0, "inserted": 0, "skipped": 0, "rated": 0, "rejected": 0, "pending": 0}
    now = clock.now()
    sqlite_ = session.get_bind().dialect.name != "postgresql"
    # A chunk's commit runs in a thread while the next chunk is read and parsed
    # (see _Commit); nothing else touches the session before ``settle``.
    pending: list[_Commit] = []

    def settle() -> None:
        while pending:
            pending.pop().wait()

    refs.before_query = settle
    try:
        for names, block in _blocks(path, chunk):
            if stop is not None and stop.requested:
                settle()
                stop.check(out["inserted"])
            if out["read"]:  # the chunks before are committed (or their commit is under way)
                first = block[0][0] if block else 0
                outcome = (
                    f"the chunk from row {first} on was not written; the {out['read']:,} rows before it were "
                    f"({out['inserted']:,} stored, {out['skipped']:,} stored already)"
                )
            else:
                outcome = "nothing was written"
            try:
                cols = _parse_block(names, block, refs, str(path), outcome)
            except InvalidInput:
                settle()  # what the message says was written is
                session.rollback()
                raise
            times = _TimeText()
            if sqlite_ and pending:  # the SQLite text of the chunk's times while the previous chunk commits
                for c in ("event_at", *TIME_COLUMNS):
                    _time_values(cols[c], times)
            settle()
            exts = cols["external_id"]
            _ingest_lock(session)
            # SQLite: when none of a sample of the chunk's ids is stored, the chunk goes in
            # without asking for each id first: the EDR insert skips a stored id itself
            # (the unique key is probed by the insert anyway), and if it skipped any, the
            # chunk is rolled back and done again knowing which ids are stored. (On
            # PostgreSQL COPY has no ON CONFLICT: every id is looked up first.)
            trusting = sqlite_ and not _stored_external_ids(session, _sample(exts))
            try:
                got = _write_chunk(
                    session, path, cols, set() if trusting else _stored_external_ids(session, exts), refs, plans,
                    now, times, rate=rate, trusting=trusting,
                )  # fmt: skip
            except _StoredAlready:
                session.rollback()
                _ingest_lock(session)
                got = _write_chunk(
                    session, path, cols, _stored_external_ids(session, exts), refs, plans, now, times, rate=rate,
                    trusting=False,
                )  # fmt: skip
            if got["inserted"]:
                pending.append(_Commit(session))
            else:  # nothing written (a re-run): a thread would gain nothing
                session.commit()
            out["read"] += len(block)
            for k, v in got.items():
                out[k] += v
        settle()
    finally:
        # On any error the commit under way ends before the caller rolls back.
        while pending:
            pending.pop().join()
    return out


class _Commit(threading.Thread):
    """``session.commit()`` in a thread. SQLite (and psycopg) release the GIL
    while the database writes the transaction out (on SQLite its WAL frames and
    the checkpoints, a tenth of the ingest time), so `edr ingest` reads and
    parses the next chunk meanwhile. Until ``wait`` returns, the caller touches
    neither the session nor its connection."""

    def __init__(self, session: Session):
        super().__init__(name="edr-ingest-commit", daemon=True)
        self.session = session
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.session.commit()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc

    def wait(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


SAMPLE_EVERY = 1_000  # which ids of a chunk `edr ingest` looks up before trusting the rest are new


def _sample(exts: list[str]) -> list[str]:
    """The first and last of ``exts`` and every ``SAMPLE_EVERY``-th: a chunk of a
    re-run, or the stored head or tail of an overlapping file, shows in it."""
    return [*exts[::SAMPLE_EVERY], *exts[-1:]]


class _StoredAlready(Exception):
    """The trusting insert of a chunk met ids stored already (see ``_ingest``)."""


def _write_chunk(
    session: Session,
    path: str | Path,
    cols: dict[str, list[Any]],
    have: set[str],
    refs: _Refs,
    plans: Plans,
    now: datetime,
    times: _TimeText,
    *,
    rate: bool,
    trusting: bool,
) -> dict[str, int]:
    """Rate and store a parsed chunk but for the ids in ``have``, under the ingest
    lock the caller holds; its counts. ``trusting``: ``have`` was not looked up,
    and _StoredAlready is raised (the transaction to be rolled back) when the
    insert finds an id stored."""
    exts = cols["external_id"]
    got = {"inserted": 0, "skipped": 0, "rated": 0, "rejected": 0, "pending": 0}
    keep = [i for i, e in enumerate(exts) if e not in have] if have else list(range(len(exts)))
    got["skipped"] = len(exts) - len(keep)
    if not keep:
        return got
    order = sorted(keep, key=cols["event_at"].__getitem__)
    if len(order) != len(exts) or order != keep:
        cols = {c: list(map(v.__getitem__, order)) for c, v in cols.items()}
    m = len(order)
    ids = _reserve_ids(session, m)
    charges: list[tuple] = []
    if rate:
        events = _events(ids, cols, refs.memo["sender_type"])
        decisions, charges = Rater(session, plans, now=now).decide_events(cols["agreement_id"], events)
        result = _result_columns(decisions, now)
    else:
        result = {c: [v] * m for c, v in zip(RESULT_COLUMNS, UNRATED, strict=True)}
    for state, k in Counter(result["rating_state"]).items():
        got["pending" if state == "unrated" else state] += k
    stored = insert_columns(
        session,
        EDR,
        {"id": ids, **cols, **result, "ingested_at": [now] * m},
        times=times,
        unless_stored="external_id" if trusting else None,
    )
    if trusting and stored != m:
        raise _StoredAlready
    got["inserted"] = m
    if charges:
        _post_bulk(session, charges, times=times)
    audit.record(session, action="ingest", object_type="edr", new={"file": str(path), "rows": m})
    return got


def _post_bulk(session: Session, charges: list[tuple], *, times: _TimeText | None = None) -> None:
    """Like ledger.post without the credit check (done under the lock), via
    insert_columns; ``charges`` are tuples as ``Rater.decide`` gives them."""
    if not charges:
        return
    cols = list(zip(*charges, strict=True))
    ags, amounts = cols[0], cols[3]
    by_ag: dict[int, int] = defaultdict(int)
    if len(set(ags)) == 1:
        by_ag[ags[0]] = sum(amounts)
    else:
        for a, amount in zip(ags, amounts, strict=True):
            by_ag[a] += amount
    ledger.ensure_rows(session, by_ag)
    for ag_id, amount in sorted(by_ag.items()):
        session.execute(
            sa.update(ledger.BAL).where(ledger.BAL.c.agreement_id == ag_id).values(spent=ledger.BAL.c.spent + amount)
        )
    columns = dict(zip(CHARGE_COLUMNS, cols, strict=False))
    columns["created_at"] = [clock.now()] * len(charges)
    insert_columns(session, ledger.CHG, columns, times=times)


# ----------------------------------------------------------------- browse


def edr_dict(r: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in r.items():
        if isinstance(v, datetime):
            v = iso(v)
        elif k in ("unit_price", "cost") and v is not None:
            v = format_micros(v)
        out[k] = v
    return out


def get(session: Session, ref: str) -> dict[str, Any]:
    q = sa.select(EDR)
    q = q.where(EDR.c.id == int(ref)) if ref.isdecimal() else q.where(EDR.c.external_id == ref)
    row = session.execute(q).mappings().first()
    if row is None and ref.isdecimal():
        row = session.execute(sa.select(EDR).where(EDR.c.external_id == ref)).mappings().first()
    if row is None:
        raise NotFound(f"EDR {ref!r} not found")
    return dict(row)


def show(session: Session, ref: str) -> dict[str, Any]:
    r = get(session, ref)
    out = edr_dict(r)
    ch = session.execute(sa.select(Charge.__table__).where(Charge.__table__.c.edr_id == r["id"])).mappings()
    out["charges"] = [
        {
            "id": c["id"],
            "kind": c["kind"],
            "amount": format_micros(c["amount"]),
            "currency": c["currency"],
            "at": iso(c["at"]),
            "period_start": iso(c["period_start"]),
            "details": c["details"],
        }
        for c in ch
    ]
    pid = r["pack_enabled_id"]
    took = packs.usage_text(session, pid, r["pack_units"], r["currency"]) if pid else None
    out["explanation"] = explain(r, out["charges"], took)
    return out


def explain(r: dict[str, Any], charges: list[dict[str, Any]], pack: str | None = None) -> str:
    """One line on how an EDR was rated; ``pack`` says what it took from a pack
    (``billing.packs.usage_text``)."""
    st = r["rating_state"]
    if st == "unrated":
        return "not rated yet" + (f" ({r['rating_note']})" if r.get("rating_note") else "")
    if st == "rejected":
        return f"rejected: {r['rating_reason']}" + (f" ({r['rating_note']})" if r.get("rating_note") else "")
    parts = [f"matched {r['rate_path']}" if r.get("rate_path") else "rated"]
    if r.get("billing_rule"):
        parts.append(f"billed when {r['billing_rule']}")
    if r.get("pack_enabled_id"):
        parts.append(pack or f"taken from pack #{r['pack_enabled_id']}")
    if r.get("unit_price") is not None:
        parts.append(f"{r['quantity']} × {format_micros(r['unit_price'])} → {format_micros(r['cost'])} {r['currency']}")
    if r.get("rating_note") and r["rating_note"] not in (pack or ""):
        parts.append(r["rating_note"])
    for c in charges:
        if c["kind"] == "scale_adjustment":
            parts.append(f"back-to-first adjustment {c['amount']} {c['currency']}")
    return "; ".join(parts)


def list_edrs(
    session: Session,
    *,
    agreement_id: int | None = None,
    company_id: int | None = None,
    since: datetime | None = None,
    till: datetime | None = None,
    state: str | None = None,
    reason: str | None = None,
    status: str | None = None,
    destination: str | None = None,
    campaign_id: int | None = None,
    limit: int = 150,
) -> list[dict[str, Any]]:
    q = sa.select(EDR)
    for colname, val in (
        ("agreement_id", agreement_id),
        ("company_id", company_id),
        ("rating_state", state),
        ("rating_reason", reason),
        ("status", status),
        ("destination", destination),
        ("campaign_id", campaign_id),
    ):
        if val is not None:
            q = q.where(EDR.c[colname] == val)
    if since is not None:
        q = q.where(EDR.c.event_at >= since)
    if till is not None:
        q = q.where(EDR.c.event_at < till)
    q = q.order_by(EDR.c.event_at.desc(), EDR.c.id.desc()).limit(limit)
    return [edr_dict(dict(m)) for m in session.execute(q).mappings()]
