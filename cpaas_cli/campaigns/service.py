"""Campaigns: creation from recipient sources, estimate, scheduling and the lifecycle.

Recipients (AMB-02): contact groups, files and typed numbers combine; the
union is de-duplicated by E.164 number (the first source that names a number
keeps it: groups, then files, then typed numbers). Without a default
country, a number written as bare digits is read as international (E.164
without '+', as the send API takes it). Invalid numbers,
duplicates and (number, sender) pairs on the company's stop list are left out
and counted. The recipients are stored with the campaign; the stop list is
checked again when the campaign starts.

Personalisation: the text is a sandboxed jinja2 template. The variables a
campaign can use are ``phone``, the contact columns (first_name, last_name,
birthday, gender, comments), the company's custom fields and the file
columns; a variable outside that set is refused when the campaign is
created. When a message is rendered, a file value wins over the contact's
value, and a variable with no value renders empty.

Lifecycle (seed §7.1, plus draft and pre-moderation): see ``ACTIONS``. A
forbidden action is a Conflict that names the state. Starting renders one
``outbound_message`` per recipient (set-based for plain texts, in pages with
bulk inserts for personalised ones), prices the result and checks it against
the agreement's available funds (AMB-22): a campaign that does not fit is
marked failed and nothing is queued.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.campaigns import estimate as est
from cpaas_cli.campaigns import funds, holds, senders
from cpaas_cli.campaigns import templates as saved
from cpaas_cli.campaigns.destinations import NETWORK_NOTE, destination
from cpaas_cli.catalog.service import agreement_snapshots
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.contacts.service import BASE_COLUMNS, client_company
from cpaas_cli.contacts.service import group as group_by_ref
from cpaas_cli.db import locking
from cpaas_cli.db.checks import first_text_problem
from cpaas_cli.errors import Conflict, InvalidInput, Problem, require
from cpaas_cli.imports.readers import read_rows
from cpaas_cli.messaging import templates as tpl
from cpaas_cli.messaging.segments import GSM7, UCS2, encoding_segments
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import (
    CAMPAIGN_STATES,
    Campaign,
    CampaignRecipient,
    MessageTemplate,
    OutboundMessage,
    SenderId,
)
from cpaas_cli.models.contacts import ALL_SENDERS, Contact, ContactField, ContactGroupMember, StopListEntry
from cpaas_cli.money import format_micros
from cpaas_cli.refs import by_ref
from cpaas_cli.timeutil import TimeError, check_business_date, iso, local_to_utc, to_utc, zone

PAGE = 20_000
ANY = frozenset(CAMPAIGN_STATES)
ACTIONS: dict[str, frozenset[str]] = {
    "send": frozenset({"draft"}),
    "schedule": frozenset({"draft"}),
    "start": frozenset({"scheduled"}),
    "approve": frozenset({"pending_moderation"}),
    "reject": frozenset({"pending_moderation"}),
    "pause": frozenset({"in_progress"}),
    "resume": frozenset({"paused"}),
    "cancel": frozenset({"paused", "scheduled"}),
    "repeat": frozenset({"canceled", "completed", "failed"}),
    "delete": ANY - {"in_progress"},
}
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_MARKS = ("{{", "{%", "{#")


def check_action(c: Campaign, action: str, *, lock: bool = True) -> None:
    """Refuse ``action`` unless the campaign's state allows it. With ``lock``
    (the transitions) the campaign is re-read under a row lock first, so of two
    racing commands one waits and then sees the other's state (DESIGN.md,
    Safety rules); without, a check before asking the user (no lock is held
    while a prompt waits)."""
    session = object_session(c)
    if lock and session is not None:
        locking.lock_row(session, c)
    allowed = ACTIONS[action]
    if c.state not in allowed:
        shown = ", ".join(s for s in CAMPAIGN_STATES if s in allowed)
        raise Conflict(f"campaign #{c.id} is {c.state}; {action} is allowed only when it is {shown}")
    holds.check_campaign_action(c, action)


def get(session: Session, ref: str | int) -> Campaign:
    return by_ref(session, Campaign, ref, what="campaign")


# ---------------------------------------------------------------- scheduling


def resolve_local(text: str, tz: str) -> datetime:
    """A wall-clock time in an IANA zone (or a time with its own offset) as aware UTC.

    Local times follow :func:`cpaas_cli.timeutil.local_to_utc` (a time in a
    daylight-saving gap is refused, naming the gap), like every ``--tz`` option.
    """
    try:
        zi = zone(tz)
    except TimeError as exc:
        raise InvalidInput(str(Problem("tz", str(exc)))) from exc
    raw = (text or "").strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "T", 1))
        check_business_date(value)
    except TimeError as exc:
        raise InvalidInput(str(Problem("at", str(exc)))) from exc
    except ValueError as exc:
        raise InvalidInput(str(Problem("at", f"not a time (YYYY-MM-DD HH:MM): {text!r}"))) from exc
    try:
        if value.tzinfo is not None:
            return to_utc(value, raw)
        return local_to_utc(value, zi)
    except TimeError as exc:
        problem = Problem("at", str(exc))
        raise InvalidInput(str(problem), problems=[problem]) from exc


# ---------------------------------------------------------------- creation


@dataclass
class FileSource:
    path: str
    maps: dict[str, str] = field(default_factory=dict)  # variable -> column ("phone", "text" are special)
    sheet: str | None = None


@dataclass
class _Collected:
    # number → (country, mcc, mnc, carrier, file values, own text)
    order: dict[str, tuple] = field(default_factory=dict)
    invalid: int = 0
    duplicate: int = 0
    stop_listed: int = 0
    invalid_examples: list[str] = field(default_factory=list)


def parse_maps(items: Iterable[str]) -> dict[str, str]:
    """``VAR=COLUMN`` pairs; the same column cannot serve two variables."""
    maps: dict[str, str] = {}
    problems: list[Problem] = []
    for item in items:
        var, sep, column = item.partition("=")
        var, column = var.strip(), column.strip()
        if not sep or not var or not column:
            problems.append(Problem("map", f"{item!r}: expected VARIABLE=COLUMN"))
            continue
        if not _VAR.match(var):
            problems.append(Problem("map", f"{var!r} is not a variable name (letters, digits, _)"))
        elif var in maps:
            problems.append(Problem("map", f"{var!r} is mapped twice"))
        elif column in maps.values():
            problems.append(Problem("map", f"column {column!r} is mapped to two variables"))
        maps[var] = column
    require(problems, "--map")
    return maps


def _file_plan(header: list[str], src: FileSource) -> tuple[str, str | None, dict[str, str]]:
    """(phone column, text column or None, {variable: column})."""
    problems: list[Problem] = []
    for var, column in src.maps.items():
        if column not in header:
            problems.append(Problem("map", f"{var}={column}: {src.path} has no column {column!r}"))
    require(problems, "--map")
    phone_col = src.maps.get("phone", header[0])
    text_col = src.maps.get("text")
    named = {v: c for v, c in src.maps.items() if v not in ("phone", "text")}
    if not named:
        named = {tpl.column_variable(c): c for c in header if c not in (phone_col, text_col)}
    return phone_col, text_col, named


def _stop_set(session: Session, company_id: int, sender: str) -> set[str]:
    t = StopListEntry.__table__
    q = sa.select(t.c.phone).where(t.c.company_id == company_id, t.c.sender.in_([sender, ALL_SENDERS]))
    return {r[0] for r in session.connection().execute(q)}


def _collect(
    session: Session,
    company_id: int,
    *,
    groups: list[int],
    files: list[FileSource],
    numbers: list[str],
    default_country: str | None,
    stop: set[str],
) -> tuple[_Collected, set[str], bool]:
    """The recipients in source order, the file variables seen and whether rows carry text."""
    out = _Collected()
    file_vars: set[str] = set()
    has_text = False
    problems: list[Problem] = []

    def add(raw: str, values: dict | None, text: str | None, normalised: bool = False) -> None:
        if normalised:
            number = raw
        else:
            try:
                if default_country is None and raw[:1].isdigit() and not raw.startswith("00"):
                    raw = "+" + raw  # without a default country, digits are international (E.164 without '+')
                number = normalise(raw, default_country)
            except PhoneError as exc:
                out.invalid += 1
                if len(out.invalid_examples) < 10:
                    out.invalid_examples.append(f"{raw!r} {exc}")
                return
        if number in out.order:
            out.duplicate += 1
            return
        if number in stop:
            out.stop_listed += 1
            out.order[number] = None  # type: ignore[assignment]  # counted once, kept out
            return
        out.order[number] = (*destination(number), values, text)

    if groups:
        c, m = Contact.__table__, ContactGroupMember.__table__
        q = (
            sa.select(c.c.phone)
            .select_from(m.join(c, c.c.id == m.c.contact_id))
            .where(m.c.group_id.in_(groups), c.c.company_id == company_id)
            .order_by(m.c.group_id, c.c.id)
        )
        for (number,) in session.connection().execute(q):
            add(number, None, None, normalised=True)
    for src in files:
        plan = None
        for row_no, row in read_rows(src.path, sheet=src.sheet):
            if plan is None:
                plan = _file_plan(list(row), src)
                file_vars.update(plan[2])
                has_text = has_text or plan[1] is not None
            phone_col, text_col, named = plan
            text = None
            if text_col is not None:
                text = (row.get(text_col) or "").strip("\r\n")
                if not text.strip():
                    if len(problems) < 50:
                        problems.append(Problem(text_col, "empty message text", row_no))
                    continue
            values = {v: row.get(col_) or "" for v, col_ in named.items()} or None
            if bad := first_text_problem({**(values or {}), **({text_col: text} if text_col else {})}):
                if len(problems) < 50:  # NUL, not UTF-8: PostgreSQL refuses it
                    problems.append(Problem(bad[0], bad[1], row_no))
                continue
            add(row.get(phone_col) or "", values, text)
        if plan is None:
            problems.append(Problem("file", f"{src.path} has no rows"))
    for number in numbers:
        for part in str(number).split(","):
            if part.strip():
                add(part.strip(), None, None)
    require(problems, "the recipient file")
    out.order = {k: v for k, v in out.order.items() if v is not None}
    return out, file_vars, has_text


def available_variables(session: Session, company_id: int, file_vars: Iterable[str]) -> set[str]:
    fields_ = session.exec(select(ContactField.variable).where(ContactField.company_id == company_id))
    return {"phone", *BASE_COLUMNS, *fields_, *file_vars}


def is_template(text: str) -> bool:
    return any(m in text for m in _TEMPLATE_MARKS)


def create(
    session: Session,
    *,
    company: str | int,
    sender: str | int,
    text: str | None = None,
    template: str | int | None = None,
    groups: Iterable[str] = (),
    files: Iterable[FileSource] = (),
    numbers: Iterable[str] = (),
    flash: bool = False,
    name: str | None = None,
    default_country: str | None = None,
) -> Campaign:
    """A draft campaign with its recipients (bulk-inserted)."""
    comp = client_company(session, company)
    holds.refuse_if_held(session, comp.id, "create")
    sid = senders.usable(session, sender, company_id=comp.id)  # exit 5 for a channel no gateway serves
    ag = session.get(Agreement, sid.agreement_id)
    assert ag is not None
    files = list(files)
    groups = list(groups)
    numbers = list(numbers)
    problems: list[Problem] = []
    if not (groups or files or numbers):
        problems.append(Problem("recipients", "give at least one --group, --file or --to"))
    if text is not None and template is not None:
        problems.append(Problem("text", "give --text or --template, not both"))
    if flash and sid.channel != "sms":
        problems.append(Problem("flash", "flash messages are SMS only"))
    tmpl: MessageTemplate | None = None
    if template is not None:
        tmpl = saved.get(session, template, company_id=comp.id)
        if tmpl.channel != sid.channel:
            problems.append(
                Problem("template", f"{tmpl.name!r} is a {tmpl.channel} template, the sender is {sid.channel}")
            )
        text = tmpl.text
    if text is not None and not text.strip():
        problems.append(Problem("text", "the message is empty"))
    require(problems)
    group_ids = [group_by_ref(session, comp, g).id for g in groups]
    stop = _stop_set(session, comp.id, sid.sender)
    got, file_vars, has_text = _collect(
        session, comp.id, groups=group_ids, files=files, numbers=numbers, default_country=default_country, stop=stop
    )
    if has_text and text is not None:
        raise InvalidInput(str(Problem("text", "the file has a text column (--map text=...); do not give --text too")))
    if not has_text and text is None:
        raise InvalidInput(str(Problem("text", "give --text, --template or a file text column (--map text=COL)")))
    if has_text and (groups or numbers):
        raise InvalidInput(
            str(Problem("text", "with a file text column every recipient needs its text: use files only"))
        )
    personalised = text is not None and is_template(text)
    used: list[str] = []
    if personalised:
        assert text is not None
        used = sorted(tpl.validate(text, available_variables(session, comp.id, file_vars)))
    now = clock.now()
    row = Campaign(
        company_id=comp.id,
        name=(name or f"Campaign {now:%Y-%m-%d %H:%M}").strip(),
        channel=sid.channel,
        sender_id=sid.id,
        agreement_id=ag.id,
        template_id=tmpl.id if tmpl else None,
        from_template=tmpl is not None,
        text=text,
        personalised=personalised,
        variables=used,
        flash=flash,
        currency=ag.currency,
        recipients=len(got.order),
        excluded_stop_list=got.stop_listed,
        excluded_invalid=got.invalid,
        excluded_duplicate=got.duplicate,
        sources={
            "groups": groups,
            "files": [{"path": f.path, "maps": f.maps} for f in files],
            "numbers": len(numbers),
            "default_country": default_country,
            "invalid_examples": got.invalid_examples,
        },
    )
    session.add(row)
    session.flush()
    _insert_recipients(session, row.id, got.order)
    record(
        session,
        action="recipients",
        object_type="campaign",
        object_id=row.id,
        company_id=comp.id,
        new={
            "recipients": row.recipients,
            "stop_list": got.stop_listed,
            "invalid": got.invalid,
            "duplicate": got.duplicate,
        },
    )
    return row


class _BulkInsert:
    """executemany of plain tuples straight to the driver (no per-row SQLAlchemy work).

    Each column's own bind processor (JSON serialiser, UTC datetime) is applied
    here: once for the constant columns, per row only for the varying ones
    that have a processor.
    """

    def __init__(self, session: Session, table: sa.Table, varying: list[str], constants: dict[str, Any]):
        self.conn = session.connection()
        dialect = self.conn.dialect
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        names = varying + list(constants)
        quote = dialect.identifier_preparer.quote
        pg = dialect.name == "postgresql"

        def is_json(name: str) -> bool:
            return isinstance(table.c[name].type.dialect_impl(dialect), sa.JSON)

        def processor(name: str):
            if pg and is_json(name):  # JSON text, cast in the statement
                return lambda v: None if v is None else json.dumps(v)
            return table.c[name].type.bind_processor(dialect)

        marks = [f"{mark}::jsonb" if pg and is_json(n) else mark for n in names]
        self.sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({', '.join(marks)})"
        consts = []
        for name, value in constants.items():
            proc = processor(name)
            consts.append(proc(value) if proc else value)
        self.consts = tuple(consts)
        self.procs = [(i, p) for i, n in enumerate(varying) if (p := processor(n))]

    def __call__(self, rows: list[tuple]) -> None:
        if not rows:
            return
        consts = self.consts
        if self.procs:
            out = []
            for r in rows:
                r = list(r)
                for i, p in self.procs:
                    r[i] = p(r[i])
                out.append((*r, *consts))
        else:
            out = [(*r, *consts) for r in rows]
        self.conn.exec_driver_sql(self.sql, out)


def _insert_recipients(session: Session, campaign_id: int, order: dict) -> None:
    insert = _BulkInsert(
        session,
        CampaignRecipient.__table__,
        ["phone", "country", "mcc", "mnc", "network", "values", "text"],
        {"campaign_id": campaign_id},
    )
    batch: list[tuple] = []
    for number, rest in order.items():
        batch.append((number, *rest))
        if len(batch) >= PAGE:
            insert(batch)
            batch = []
    insert(batch)


# ---------------------------------------------------------------- rendering


def _pages(session: Session, c: Campaign, *, with_contacts: bool) -> Iterator[list[tuple]]:
    """Recipient rows in id order, a page at a time:
    (id, phone, country, mcc, mnc, network, values, text[, contact columns])."""
    r = CampaignRecipient.__table__
    cols = [r.c.id, r.c.phone, r.c.country, r.c.mcc, r.c.mnc, r.c.network, r.c["values"], r.c.text]
    src: Any = r
    if with_contacts:
        ct = Contact.__table__
        cols += [ct.c.first_name, ct.c.last_name, ct.c.birthday, ct.c.gender, ct.c.comments, ct.c.fields]
        src = r.outerjoin(ct, sa.and_(ct.c.company_id == c.company_id, ct.c.phone == r.c.phone))
    last = 0
    conn = session.connection()
    while True:
        q = sa.select(*cols).select_from(src).where(r.c.campaign_id == c.id, r.c.id > last).order_by(r.c.id).limit(PAGE)
        rows = conn.execute(q).all()
        if not rows:
            return
        last = rows[-1][0]
        yield rows


def messages(session: Session, c: Campaign) -> Iterator[list[tuple[str, est.Key, str]]]:
    """Each recipient's (phone, (country, mcc, mnc, carrier), text), a page at a time, rendered when personalised."""
    if not c.personalised:
        for page in _pages(session, c, with_contacts=False):
            yield [(p[1], (p[2], p[3], p[4], p[5]), p[7] if p[7] is not None else c.text) for p in page]  # type: ignore[misc]
        return
    assert c.text is not None
    compiled = tpl.compile_template(c.text)
    used = list(c.variables)
    base_cols = [v for v in used if v in BASE_COLUMNS]
    idx = {"first_name": 8, "last_name": 9, "birthday": 10, "gender": 11, "comments": 12}
    with_contacts = any(v != "phone" for v in used)
    render = compiled.render
    for page in _pages(session, c, with_contacts=with_contacts):
        out = []
        for p in page:
            values = dict.fromkeys(used)
            values["phone"] = p[1]
            if with_contacts:
                for v in base_cols:
                    values[v] = p[idx[v]]
                extra = p[13]
                if extra:
                    for k, v in extra.items():
                        if k in values:
                            values[k] = v
            fv = p[6]
            if fv:
                values.update(fv)
            try:
                text = render(values)
            except Exception:  # noqa: BLE001 - the template layer names the problem
                text = tpl.render(compiled, values, row=None)
            out.append((p[1], (p[2], p[3], p[4], p[5]), text))
        yield out


Hist = dict[est.Key, Counter]


def _tally_plain(session: Session, c: Campaign) -> Hist:
    r = CampaignRecipient.__table__
    _enc, segs = encoding_segments(c.text or "")
    dest = (r.c.country, r.c.mcc, r.c.mnc, r.c.network)
    q = sa.select(*dest, sa.func.count()).where(r.c.campaign_id == c.id).group_by(*dest)
    return {(k0, k1, k2, k3): Counter({segs: n}) for k0, k1, k2, k3, n in session.connection().execute(q)}


@dataclass
class Estimate:
    tally: Hist
    encodings: Counter
    rows: list[dict[str, Any]]
    cost: int
    unpriced: int
    available: int | None

    @property
    def fits(self) -> bool:
        return self.available is None or self.cost <= self.available


def _price(session: Session, c: Campaign, tally: Hist, encodings: Counter, at: datetime) -> Estimate:
    ag = session.get(Agreement, c.agreement_id)
    assert ag is not None
    snaps = agreement_snapshots(session, ag, at)
    rows, cost, unpriced = est.price_tally(snaps, tally, channel=c.channel, currency=c.currency)
    return Estimate(tally, encodings, rows, cost, unpriced, funds.available(session, ag, at))


def estimate(session: Session, c: Campaign, *, at: datetime | None = None) -> Estimate:
    """Count (rendering personalised texts, nothing stored) and price the campaign as it stands."""
    at = at or clock.now()
    if not c.personalised and c.text is not None:
        enc = encoding_segments(c.text)[0]
        tally = _tally_plain(session, c)
        return _price(session, c, tally, Counter({enc: sum(sum(h.values()) for h in tally.values())}), at)
    tally: Hist = defaultdict(Counter)
    encodings: Counter = Counter()
    for page in messages(session, c):
        for _phone, dest, text in page:
            enc, segs = encoding_segments(text)
            tally[dest][segs] += 1
            encodings[enc] += 1
    return _price(session, c, dict(tally), encodings, at)


def _countries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-country sums of the destination rows (cost None when some messages are unpriced)."""
    out: dict[str | None, dict[str, Any]] = {}
    for r in rows:
        d = out.setdefault(
            r["country"], {"country": r["country"], "recipients": 0, "messages": 0, "segments": 0, "cost": 0}
        )
        for k in ("recipients", "messages", "segments"):
            d[k] += r[k]
        d["cost"] = None if d["cost"] is None or r["cost"] is None else d["cost"] + r["cost"]
    return [{**d, "cost": format_micros(d["cost"]) if d["cost"] is not None else None} for d in out.values()]


def estimate_dict(c: Campaign, e: Estimate) -> dict[str, Any]:
    hist: Counter = Counter()
    for h in e.tally.values():
        hist.update(h)
    messages_ = sum(hist.values())
    return {
        "campaign_id": c.id,
        "recipients": {
            "total": c.recipients + c.excluded_stop_list + c.excluded_invalid + c.excluded_duplicate,
            "sendable": c.recipients,
            "excluded": {
                "stop_list": c.excluded_stop_list,
                "invalid": c.excluded_invalid,
                "duplicate": c.excluded_duplicate,
            },
        },
        "messages": messages_,
        "segments": sum(k * n for k, n in hist.items()),
        "segment_histogram": {str(k): hist[k] for k in sorted(hist)},
        "encoding": {GSM7: e.encodings.get(GSM7, 0), UCS2: e.encodings.get(UCS2, 0)},
        "destinations": est.shown(e.rows),
        "countries": _countries(e.rows),
        "network_note": NETWORK_NOTE,
        "currency": c.currency,
        "estimated_cost": format_micros(e.cost),
        "unpriced_messages": e.unpriced,
        "available": format_micros(e.available) if e.available is not None else None,
        "unlimited_credit": e.available is None,
        "fits": e.fits,
    }


# ---------------------------------------------------------------- lifecycle


@dataclass
class StartOutcome:
    campaign: Campaign
    started: bool
    estimate: Estimate | None = None
    reason: str | None = None


def _recheck_stop_list(session: Session, c: Campaign, sender: str) -> int:
    r, s = CampaignRecipient.__table__, StopListEntry.__table__
    blocked = sa.select(s.c.phone).where(s.c.company_id == c.company_id, s.c.sender.in_([sender, ALL_SENDERS]))
    removed = (
        session.connection().execute(sa.delete(r).where(r.c.campaign_id == c.id, r.c.phone.in_(blocked))).rowcount or 0
    )
    if removed:
        c.excluded_stop_list += removed
        c.recipients -= removed
    return removed


def _fail(session: Session, c: Campaign, reason: str, now: datetime) -> None:
    c.state = "failed"
    c.failure_reason = reason
    c.finished_at = now
    c.updated_at = now
    session.flush()


def _start(session: Session, c: Campaign, now: datetime) -> StartOutcome:
    """Materialise the queue and run, or mark the campaign failed for lack of credit."""
    sid = session.get(SenderId, c.sender_id)
    assert sid is not None
    senders.require_gateway(c.channel)  # also a draft made before channels without a gateway were refused
    if sid.status != "active":
        raise Conflict(f"sender ID {sid.sender!r} is {sid.status}; the campaign cannot start")
    if c.from_template and c.template_id is None:
        raise Conflict(f"campaign #{c.id} was made from a template that has been deleted; it cannot start")
    _recheck_stop_list(session, c, sid.sender)
    if c.recipients <= 0:
        raise Conflict(f"campaign #{c.id} has no recipients to send to")
    t = OutboundMessage.__table__
    conn = session.connection()
    common = {
        "campaign_id": c.id,
        "sender_id": sid.id,
        "sender": sid.sender,
        "connection_id": sid.connection_id,
        "flash": c.flash,
        "state": "queued",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    if not c.personalised and c.text is not None:
        e = estimate(session, c, at=now)
        if not e.fits:
            return _no_credit(session, c, e, now)
        enc, segs = encoding_segments(c.text)
        r = CampaignRecipient.__table__
        consts = {**common, "text": c.text, "encoding": enc, "segments": segs}
        names = list(consts)
        dest = ["phone", "country", "mcc", "mnc", "network"]
        sel = sa.select(*[r.c[k] for k in dest], *[sa.literal(v, t.c[k].type).label(k) for k, v in consts.items()])
        sel = sel.where(r.c.campaign_id == c.id)
        conn.execute(sa.insert(t).from_select([*dest, *names], sel.order_by(r.c.id)))
        c.messages = c.recipients
        c.segments = segs * c.recipients
    else:
        tally: Hist = defaultdict(Counter)
        encodings: Counter = Counter()
        nested = session.begin_nested()
        total_msgs = total_segs = 0
        varying = ["phone", "country", "mcc", "mnc", "network", "text", "encoding", "segments"]
        insert = _BulkInsert(session, t, varying, common)
        for page in messages(session, c):
            batch = []
            for phone, dest, text in page:
                enc, segs = encoding_segments(text)
                tally[dest][segs] += 1
                encodings[enc] += 1
                total_segs += segs
                batch.append((phone, *dest, text, enc, segs))
            total_msgs += len(batch)
            insert(batch)
        e = _price(session, c, dict(tally), encodings, now)
        if not e.fits:
            nested.rollback()
            return _no_credit(session, c, e, now)
        nested.commit()
        c.messages, c.segments = total_msgs, total_segs
    c.estimated_cost = e.cost
    c.state = "in_progress"
    c.started_at = now
    c.updated_at = now
    session.flush()
    record(
        session,
        action="materialise",
        object_type="campaign",
        object_id=c.id,
        company_id=c.company_id,
        new={"messages": c.messages, "segments": c.segments, "estimated_cost": format_micros(e.cost)},
    )
    return StartOutcome(c, True, e)


def _no_credit(session: Session, c: Campaign, e: Estimate, now: datetime) -> StartOutcome:
    reason = (
        f"insufficient credit: estimated {format_micros(e.cost)} {c.currency}, "
        f"available {format_micros(e.available)} {c.currency}"
    )
    c.estimated_cost = e.cost
    _fail(session, c, reason, now)
    return StartOutcome(c, False, e, reason)


def _moderated(session: Session, c: Campaign) -> bool:
    """True when the company moderates campaigns and this one has not been approved yet."""
    from cpaas_cli.models.tenancy import Company

    comp = session.get(Company, c.company_id)
    return bool(comp and comp.moderation and c.moderated_at is None)


def send(session: Session, c: Campaign) -> StartOutcome:
    """Draft → start now (or wait for moderation)."""
    check_action(c, "send")
    c.scheduled_at, c.schedule_tz = None, None
    if _moderated(session, c):
        c.state = "pending_moderation"
        session.flush()
        return StartOutcome(c, False, reason="waiting for moderation")
    return _start(session, c, clock.now())


def schedule(session: Session, c: Campaign, *, at: str, tz: str) -> Campaign:
    check_action(c, "schedule")
    when = resolve_local(at, tz)
    now = clock.now()
    if when <= now:
        problem = Problem("at", f"{at} {tz} ({iso(when)}) is in the past; a schedule must be in the future")
        raise InvalidInput(str(problem), problems=[problem])
    c.scheduled_at, c.schedule_tz = when, tz
    c.state = "pending_moderation" if _moderated(session, c) else "scheduled"
    session.flush()
    return c


def start(session: Session, c: Campaign) -> StartOutcome:
    """Scheduled → start now."""
    check_action(c, "start")
    return _start(session, c, clock.now())


def approve(session: Session, c: Campaign) -> StartOutcome:
    check_action(c, "approve")
    now = clock.now()
    c.moderated_at, c.moderated_by = now, session.info.get("actor")
    if c.scheduled_at is not None and c.scheduled_at > now:
        c.state = "scheduled"
        session.flush()
        return StartOutcome(c, False, reason="scheduled")
    return _start(session, c, now)


def reject(session: Session, c: Campaign, *, reason: str | None = None) -> Campaign:
    check_action(c, "reject")
    now = clock.now()
    c.moderated_at, c.moderated_by = now, session.info.get("actor")
    _fail(session, c, "rejected in moderation" + (f": {reason}" if reason else ""), now)
    return c


def pause(session: Session, c: Campaign) -> Campaign:
    check_action(c, "pause")
    c.state = "paused"
    session.flush()
    return c


def resume(session: Session, c: Campaign) -> Campaign:
    check_action(c, "resume")
    c.state = "in_progress"
    session.flush()
    return c


def cancel(session: Session, c: Campaign) -> Campaign:
    """Paused or scheduled → canceled; messages not yet handed to a worker are dropped (failed)."""
    check_action(c, "cancel")
    now = clock.now()
    t = OutboundMessage.__table__
    session.connection().execute(
        sa.update(t)
        .where(t.c.campaign_id == c.id, t.c.state == "queued")
        .values(state="failed", error="campaign canceled", updated_at=now)
    )
    c.state = "canceled"
    c.finished_at = now
    session.flush()
    return c


def repeat(session: Session, c: Campaign, *, name: str | None = None) -> Campaign:
    """A new draft with the same sender, text and recipients (the stop list is checked at start)."""
    check_action(c, "repeat")
    new = Campaign(
        company_id=c.company_id,
        name=name or f"{c.name} (repeat)",
        channel=c.channel,
        sender_id=c.sender_id,
        agreement_id=c.agreement_id,
        template_id=c.template_id,
        from_template=c.from_template,
        text=c.text,
        personalised=c.personalised,
        variables=list(c.variables),
        flash=c.flash,
        currency=c.currency,
        recipients=c.recipients,
        excluded_stop_list=c.excluded_stop_list,
        excluded_invalid=c.excluded_invalid,
        excluded_duplicate=c.excluded_duplicate,
        sources=dict(c.sources),
        repeat_of_id=c.id,
    )
    session.add(new)
    session.flush()
    r = CampaignRecipient.__table__
    copied = ["phone", "country", "mcc", "mnc", "network", "values", "text"]
    sel = sa.select(sa.literal(new.id, sa.Integer), *[r.c[k] for k in copied]).where(r.c.campaign_id == c.id)
    session.connection().execute(sa.insert(r).from_select(["campaign_id", *copied], sel.order_by(r.c.id)))
    return new


def delete(session: Session, c: Campaign) -> dict[str, int]:
    check_action(c, "delete")
    conn = session.connection()
    o, r = OutboundMessage.__table__, CampaignRecipient.__table__
    messages_ = conn.execute(sa.delete(o).where(o.c.campaign_id == c.id)).rowcount or 0
    recipients = conn.execute(sa.delete(r).where(r.c.campaign_id == c.id)).rowcount or 0
    ct = Campaign.__table__
    conn.execute(sa.update(ct).where(ct.c.repeat_of_id == c.id).values(repeat_of_id=None))
    session.delete(c)
    session.flush()
    return {"recipients": recipients, "messages": messages_}


def start_due(session: Session, *, now: datetime | None = None) -> list[StartOutcome]:
    """Start every scheduled campaign whose time has come (for the scheduler of `serve`).

    A campaign that cannot start (sender disabled, template deleted, no
    recipients) is marked failed with the reason instead of blocking the others.
    """
    now = now or clock.now()
    due = session.exec(
        select(Campaign)
        .where(Campaign.state == "scheduled", col(Campaign.scheduled_at) <= now)
        .order_by(col(Campaign.scheduled_at), col(Campaign.id))
    ).all()
    out = []
    for c in due:
        locking.lock_row(session, c)
        if c.state != "scheduled":  # started or canceled by a command meanwhile
            continue
        try:
            holds.refuse_if_held(session, c.company_id, "start")
            out.append(_start(session, c, now))
        except Conflict as exc:
            _fail(session, c, exc.message, now)
            out.append(StartOutcome(c, False, reason=exc.message))
    return out


def complete_finished(session: Session, *, now: datetime | None = None) -> list[int]:
    """Mark completed every running campaign with no message left to send (for dispatch)."""
    now = now or clock.now()
    o = OutboundMessage.__table__
    pending = sa.select(o.c.id).where(
        o.c.campaign_id == Campaign.id, o.c.state.in_(["queued", "claimed", "sending", "submitted", "unknown"])
    )
    done = session.exec(select(Campaign).where(Campaign.state == "in_progress", ~sa.exists(pending))).all()
    for c in done:
        c.state = "completed"
        c.finished_at = now
    session.flush()
    return [c.id for c in done if c.id is not None]


# ---------------------------------------------------------------- output


def progress(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    if not ids:
        return {}
    o = OutboundMessage.__table__
    q = (
        sa.select(o.c.campaign_id, o.c.state, sa.func.count())
        .where(o.c.campaign_id.in_(ids))
        .group_by(o.c.campaign_id, o.c.state)
    )
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for cid, state, n in session.connection().execute(q):
        out[cid][state] = n
    return out


def campaign_dict(session: Session, c: Campaign, counts: dict[str, int] | None = None) -> dict[str, Any]:
    sid = session.get(SenderId, c.sender_id)
    counts = counts or {}
    finished = counts.get("done", 0) + counts.get("failed", 0)
    spent = funds.spent(session, c.id) if c.id is not None else None
    return {
        "id": c.id,
        "name": c.name,
        "company_id": c.company_id,
        "channel": c.channel,
        "sender": sid.sender if sid else None,
        "state": c.state,
        "recipients": c.recipients,
        "excluded": {
            "stop_list": c.excluded_stop_list,
            "invalid": c.excluded_invalid,
            "duplicate": c.excluded_duplicate,
        },
        "personalised": c.personalised,
        "variables": list(c.variables),
        "text": c.text,
        "template_id": c.template_id,
        "flash": c.flash,
        "scheduled_at": iso(c.scheduled_at),
        "schedule_tz": c.schedule_tz,
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
        "messages": c.messages,
        "segments": c.segments,
        "progress": round(100 * finished / c.messages, 1) if c.messages else 0.0,
        "queue": counts,
        "held": holds.held(session, c, counts),
        "currency": c.currency,
        "estimated_cost": format_micros(c.estimated_cost) if c.estimated_cost is not None else None,
        "cost": format_micros(spent) if spent is not None else None,
        "failure_reason": c.failure_reason,
        "moderated_by": c.moderated_by,
        "moderated_at": iso(c.moderated_at),
        "repeat_of_id": c.repeat_of_id,
        "created_at": iso(c.created_at),
    }


def list_campaigns(
    session: Session, *, company: str | int | None = None, state: str | None = None, limit: int | None = None
) -> list[Campaign]:
    q = select(Campaign).order_by(col(Campaign.id).desc())
    if company is not None:
        q = q.where(Campaign.company_id == client_company(session, company).id)
    if state:
        if state not in CAMPAIGN_STATES:
            raise InvalidInput(str(Problem("state", f"{state!r} is not one of {', '.join(CAMPAIGN_STATES)}")))
        q = q.where(Campaign.state == state)
    if limit:
        q = q.limit(limit)
    return list(session.exec(q))
