"""EDR input rows → EDR column values: the parse of `edr ingest` and `edr validate`.

``parse_row`` is the reference (it names each bad row and field);
``parse_columns`` computes the same values for a whole chunk, column by
column, and gives up (None) on any problem so that the caller falls back to
``parse_row``. ``Refs`` caches the agreement and company references of a run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlmodel import Session

from cpaas_cli.agreements import service as agreements
from cpaas_cli.catalog.dictionary import MccmncError, mcc_country, normalise_mccmnc
from cpaas_cli.charging.events import memo_map
from cpaas_cli.db.checks import text_problem
from cpaas_cli.errors import NotFound, Problem
from cpaas_cli.models.edr import DIRECTIONS, STATUSES, Edr
from cpaas_cli.models.tenancy import Company

EDR = Edr.__table__
TIME_COLUMNS = tuple(f"{s}_at" for s in STATUSES)


def _nothing() -> None:
    pass


class Refs:
    def __init__(self, session: Session):
        self.session = session
        self.ags: dict[str, tuple[int, int] | None] = {}
        self.cos: dict[str, int | None] = {}
        self.conns: dict[str, int | None] = {}
        # `edr ingest --connection`: the connection of rows whose file names none
        self.default_connection: int | None = None
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

    def connection(self, ref: str) -> int | None:
        if ref not in self.conns:
            from cpaas_cli.models.dispatch import VendorConnection
            from cpaas_cli.refs import by_ref

            self.before_query()
            try:
                self.conns[ref] = by_ref(self.session, VendorConnection, ref, what="connection").id
            except NotFound:
                self.conns[ref] = None
        return self.conns[ref]


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
    "connection_id",
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


def _party(ag_ref: str, co_ref: str, refs: Refs, problems: list[Problem], n: int | None) -> tuple[Any, Any]:
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


def _connection(ref: str, refs: Refs, problems: list[Problem], n: int | None) -> int | None:
    """The connection a row names (name or id), else the run's default (`--connection`)."""
    if not ref:
        return refs.default_connection
    cid = refs.connection(ref)
    if cid is None:
        problems.append(Problem("connection", f"no vendor connection {ref[:100]!r}", n))
    return cid


def parse_row(n: int, raw: dict[str, str], refs: Refs, problems: list[Problem]) -> dict[str, Any] | None:
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
    connection_id = _connection(g("connection") or "", refs, problems, n)
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
        "connection_id": connection_id,
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


def parse_columns(names: Sequence[str], rows: Sequence[Sequence[str]], refs: Refs) -> dict[str, list[Any]] | None:
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
            party = memo_map(ags or empty, lambda ref: _checked(_party)(ref, "", refs), memo["agreement"])
        else:
            party = memo_map(
                list(zip(ags or empty, cos, strict=True)), lambda k: _checked(_party)(k[0], k[1], refs), memo["party"]
            )
        direction = memo_map(get("direction") or empty, _direction, memo["direction"])
        present = [c for c in ("mccmnc", "mcc", "mnc", "country") if c in at]
        if len(present) == 1:
            where = memo_map(get(present[0]), lambda v: _where(**{present[0]: v}), memo[present[0]])
        elif present:
            where = memo_map(
                list(zip(*map(get, present), strict=True)),
                lambda k: _where(**dict(zip(present, k, strict=True))),
                memo[",".join(present)],
            )
        else:
            where = [(None, None, None)] * n
        segments = memo_map(get("segments") or empty, _checked(_segments), memo["segments"])
        campaign = get("campaign_id")
        campaign_ids = [None] * n if campaign is None else memo_map(campaign, _campaign_id, memo["campaign_id"])
        conns = get("connection")
        connection_ids = (
            [refs.default_connection] * n
            if conns is None
            else memo_map(conns, lambda ref: _checked(_connection)(ref, refs), memo["connection"])
        )
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
    status = memo_map(statuses, _status, memo["status"]) if statuses is not None else [""] * n
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
        "channel": ["sms"] * n if channel is None else memo_map(channel, _channel, memo["channel"]),
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
        "connection_id": connection_ids,
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
