"""Invoices: the run over closed periods, recalculation, confirm, void, send.

Which charges an invoice covers
-------------------------------
A charge belongs to the billing period that holds its ``at``. An invoice
claims charges by inserting rows into ``invoice_charge`` (primary key =
charge id, so a charge is covered by one live invoice at most):

* every unclaimed charge of its agreement with ``period_start ≤ at < period_end``;
* plus, as **correction lines**, unclaimed charges dated before its period
  whose own period has no draft invoice (it is confirmed, or there is no
  invoice for it): late or re-rated charges of a confirmed period go to the
  next invoice, never into the confirmed one.

A closed period gets a draft only when it holds an unclaimed charge (all of
them with ``--include-empty``); the agreement's latest closed period is also
tried as the carrier of correction lines and dropped if it claims nothing.
A draft is recalculated by claiming what arrived since and rebuilding its
lines from everything it covers (``rebuild.py``, rules in ``lines.py``), so
it is exact however late charges come.
A confirmed invoice never changes. Voiding an invoice releases its charges;
the next run invoices that period again (``generation`` + 1).

The money relation of an invoice to its charges is in ``models/invoices.py``.
Numbers are given at confirm from a per-own-legal-entity counter row, bumped
by an UPDATE inside the confirm transaction (gapless: a rolled-back confirm
rolls the counter back too; concurrent confirms queue on the row lock).

Racing commands: run, confirm, void, recalculate and the re-rating refresh
of drafts take one named lock (``INVOICING``, until their transaction ends),
so one waits for the other and then sees its result; a confirm or void that
finds the invoice in a state it cannot leave is a Conflict (exit 5).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.audit import service as audit
from cpaas_cli.billing import packs
from cpaas_cli.billing.periods import Period, VersionTerms, closed_periods
from cpaas_cli.db import locking
from cpaas_cli.db.types import UTCDateTime
from cpaas_cli.errors import Conflict, InvalidInput, NotFound
from cpaas_cli.invoices import closing
from cpaas_cli.invoices import lines as invoice_lines
from cpaas_cli.invoices.rebuild import rebuild
from cpaas_cli.models.agreements import Agreement, AgreementVersion
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.invoices import Invoice, InvoiceCharge, InvoiceCounter, InvoiceLine
from cpaas_cli.models.tenancy import Bank, BankAccount, Company, LegalEntity
from cpaas_cli.money import format_micros, minor_units
from cpaas_cli.timeutil import iso, zone

INV = Invoice.__table__
LINE = InvoiceLine.__table__
IC = InvoiceCharge.__table__
INVOICE_COUNTER = InvoiceCounter.__table__
CHG = Charge.__table__
EDR = Edr.__table__
INVOICING = "invoicing"


def format_rate(tax_rate: int) -> str:
    text = format(Decimal(tax_rate) / 1_000_000, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# ------------------------------------------------------------------ the run


def _live(session: Session, agreement_ids: Sequence[int] | None) -> dict[tuple[int, datetime], Invoice]:
    q = select(Invoice).where(Invoice.status != "void")
    if agreement_ids is not None:
        q = q.where(col(Invoice.agreement_id).in_(agreement_ids))
    return {(i.agreement_id, i.period_start): i for i in session.exec(q)}


def run(
    session: Session,
    *,
    as_of: datetime | None = None,
    agreement_ref: str | None = None,
    dry_run: bool = False,
    include_empty: bool = False,
    line_decimals: int | None = None,
) -> dict[str, Any]:
    """One draft per agreement and closed period that holds charges; drafts
    with new charges are recalculated. Idempotent: a second run with nothing
    new changes nothing. With ``dry_run`` everything is computed in a
    savepoint and rolled back.

    A closed period without charges gets no draft (a 0.00 invoice) unless
    ``include_empty``; its agreement's latest closed period is still tried,
    and kept only if it takes late charges of confirmed periods (correction
    lines), so those are never left out. ``line_decimals`` (the
    ``[invoice] line_decimals`` setting) is stored on new drafts, and a draft
    built with other decimals is rebuilt; None keeps each draft's own."""
    as_of = as_of or clock.now()
    locking.serialise(session, INVOICING)  # a racing run waits, then finds this run's drafts
    if agreement_ref is not None:
        ags = [agreements.get(session, agreement_ref)]
    else:
        ags = list(session.exec(select(Agreement).order_by(col(Agreement.id))))
    ids = [a.id for a in ags]
    by_ag: dict[int, list[AgreementVersion]] = defaultdict(list)
    vq = select(AgreementVersion).order_by(col(AgreementVersion.effective_from))
    if agreement_ref is not None:
        vq = vq.where(col(AgreementVersion.agreement_id).in_(ids))
    for v in session.exec(vq):
        by_ag[v.agreement_id].append(v)
    live = _live(session, ids if agreement_ref is not None else None)
    gens = _generations(session, ids if agreement_ref is not None else None)
    nested = session.begin_nested() if dry_run else None
    packs.charge_due(session, now=min(as_of, clock.now()), agreement_ids=ids if agreement_ref else None)  # ENS-06
    out: list[dict[str, Any]] = []
    counts = {"created": 0, "recalculated": 0, "unchanged": 0}
    # Two passes: every missing draft first, then the claims. Claiming in period
    # order gives the same lines either way; creating the drafts first means
    # PostgreSQL plans the foreign-key checks of invoice_charge against the
    # full invoice table (a plan made while it held a few rows is a sequential
    # scan per claimed charge, kept for the whole run).
    plans: list[tuple[Agreement, dict[int, AgreementVersion], list[Period], list, list[Period]]] = []
    for ag in ags:
        vs = by_ag.get(ag.id, [])
        if not vs:
            continue
        mine: list[tuple[Agreement, Invoice, str]] = []  # what: draft, new, or carrier (kept only if it claims)
        missing: list[Period] = []
        periods = closed_periods([VersionTerms.of(v) for v in vs], as_of)
        for p in periods:
            inv = live.get((ag.id, p.start))
            if inv is None:
                missing.append(p)
            elif inv.status == "draft":
                mine.append((ag, inv, "draft"))
            else:
                counts["unchanged"] += 1
        plans.append((ag, {v.id: v for v in vs}, periods, mine, missing))
    probe = [(ag.id, p) for ag, _v, _ps, _m, missing in plans for p in missing]
    busy = set(range(len(probe))) if include_empty else _holding_charges(session, probe)
    todo: list[tuple[Agreement, Invoice, str]] = []
    k = 0
    for ag, vmap, periods, mine, missing in plans:
        for p in missing:
            if k in busy or p is periods[-1]:
                inv = _create(session, ag, p, vmap[p.version_id], as_of, gens.get((ag.id, p.start), -1) + 1,
                              line_decimals)  # fmt: skip
                mine.append((ag, inv, "new" if k in busy else "carrier"))
            k += 1
        todo += sorted(mine, key=lambda t: t[1].period_start)
    for ag, inv, what in todo:
        claimed = _attach(session, inv)
        if what == "carrier" and not claimed:
            session.delete(inv)
            session.flush()
            continue
        stale = line_decimals is not None and inv.line_decimals != line_decimals
        if not (claimed or stale or what != "draft"):
            counts["unchanged"] += 1
            continue
        if line_decimals is not None:
            inv.line_decimals = line_decimals
        rebuild(session, inv)
        action = "recalculated" if what == "draft" else "created"
        counts[action] += 1
        out.append({**summary(inv, agreement=ag.code), "action": action})
    if nested is not None:
        nested.rollback()
    elif counts["created"] or counts["recalculated"]:
        audit.record(
            session,
            action="invoice_run",
            object_type="invoice",
            new={"as_of": iso(as_of), "created": counts["created"], "recalculated": counts["recalculated"]},
        )
    return {"as_of": iso(as_of), "dry_run": dry_run, **counts, "invoices": out}


def _holding_charges(session: Session, pairs: Sequence[tuple[int, Period]]) -> set[int]:
    """Indexes of the (agreement id, period) ``pairs`` whose period holds an
    unclaimed charge of the agreement: an index range probe each, 500 pairs
    to a statement (a VALUES list in a CTE: SQLite names no columns of a
    VALUES subquery)."""
    found: set[int] = set()
    for lo in range(0, len(pairs), 500):
        chunk = pairs[lo : lo + 500]
        v = (
            sa.values(
                sa.column("i", sa.Integer),
                sa.column("ag", sa.Integer),
                sa.column("s", UTCDateTime()),
                sa.column("e", UTCDateTime()),
                name="probe",
            )
            .data([(i, ag_id, p.start, p.end) for i, (ag_id, p) in enumerate(chunk, lo)])
            .cte("probe")
        )
        q = sa.select(v.c.i).where(
            sa.exists().where(
                CHG.c.agreement_id == v.c.ag,
                CHG.c.at >= v.c.s,
                CHG.c.at < v.c.e,
                ~sa.exists().where(IC.c.charge_id == CHG.c.id),
            )
        )
        found.update(session.execute(q).scalars())
    return found


def _generations(session: Session, ids: Sequence[int] | None) -> dict[tuple[int, datetime], int]:
    q = sa.select(INV.c.agreement_id, INV.c.period_start, sa.func.max(INV.c.generation)).group_by(
        INV.c.agreement_id, INV.c.period_start
    )
    if ids is not None:
        q = q.where(INV.c.agreement_id.in_(ids))
    return {(a, p): g for a, p, g in session.execute(q)}


def _create(
    session: Session,
    ag: Agreement,
    p: Period,
    v: AgreementVersion,
    as_of: datetime,
    generation: int,
    line_decimals: int | None,
) -> Invoice:
    issue = as_of.astimezone(zone(v.billing_tz)).date()
    inv = Invoice(
        agreement_id=ag.id,
        version_id=v.id,
        own_legal_entity_id=ag.own_legal_entity_id,
        legal_entity_id=ag.legal_entity_id,
        generation=generation,
        status="draft",
        period_start=p.start,
        period_end=p.end,
        billing_tz=v.billing_tz,
        local_start_date=p.local_start_date,
        local_end_date=p.local_end_date,
        currency=ag.currency,
        tax_rate=v.tax_rate or 0,
        days_for_payment=v.days_for_payment,
        issue_date=issue,
        due_date=issue + timedelta(days=v.days_for_payment),
        line_decimals=invoice_lines.DEFAULT_LINE_DECIMALS if line_decimals is None else line_decimals,
    )
    session.add(inv)
    session.flush()
    return inv


_OTHER = INV.alias("other")
# The charges an invoice may claim (see the module docstring). Whether a charge
# is claimed already is left to the primary key of invoice_charge (ON CONFLICT
# DO NOTHING) rather than an anti-join: the anti-join's plan on PostgreSQL
# follows the table's statistics, and an invoice run that grows invoice_charge
# from empty to millions of rows kept a hash anti-join over the whole table
# (a full scan per invoice: 257 s instead of seconds for 3,000 invoices).
_CLAIMABLE = sa.select(CHG.c.id, sa.bindparam("inv_id", type_=sa.Integer)).where(
    CHG.c.agreement_id == sa.bindparam("ag_id"),
    CHG.c.at < sa.bindparam("p_end"),
    sa.or_(
        CHG.c.at >= sa.bindparam("p_start"),
        ~sa.exists().where(
            _OTHER.c.agreement_id == sa.bindparam("ag_id"),
            _OTHER.c.status == "draft",
            _OTHER.c.id != sa.bindparam("inv_id"),
            CHG.c.at >= _OTHER.c.period_start,
            CHG.c.at < _OTHER.c.period_end,
        ),
    ),
)
# Built once per dialect (bind parameters), so each call only executes.
# rowcount of INSERT … SELECT is -1 on psycopg here; count what came back.
_ATTACH = {
    name: dialect.insert(IC)
    .from_select(["charge_id", "invoice_id"], _CLAIMABLE)
    .on_conflict_do_nothing(index_elements=["charge_id"])
    .returning(IC.c.charge_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _attach(session: Session, inv: Invoice) -> int:
    """Claim the unclaimed charges this invoice covers; returns how many."""
    res = session.execute(
        _ATTACH[session.get_bind().dialect.name],
        {"inv_id": inv.id, "ag_id": inv.agreement_id, "p_start": inv.period_start, "p_end": inv.period_end},
    )
    return len(res.fetchall())


# ----------------------------------------------------------- one invoice


def get(session: Session, ref: str | int) -> Invoice:
    text = str(ref).strip()
    inv: Invoice | None = None
    if text.isdigit():
        inv = session.get(Invoice, int(text))
    if inv is None:
        found = list(session.exec(select(Invoice).where(Invoice.reference == text)))
        if len(found) > 1:
            raise InvalidInput(f"several own legal entities have an invoice {text!r}; give the invoice id")
        inv = found[0] if found else None
    if inv is None:
        raise NotFound(f"invoice {text!r} not found")
    return inv


def _locked(session: Session, ref: str | int) -> Invoice:
    """The invoice, re-read after taking the invoicing lock: of two racing
    confirms (or a confirm and a void) one waits and then sees the other's
    result, so a number is never drawn twice or burnt, and a void is never
    overwritten by a confirm that read the draft before it."""
    locking.serialise(session, INVOICING)
    inv = get(session, ref)
    locking.lock_row(session, inv)
    return inv


def recalculate(session: Session, ref: str | int, *, line_decimals: int | None = None) -> Invoice:
    """Claim late charges and rebuild a draft (with ``line_decimals`` when given)."""
    inv = _locked(session, ref)
    if inv.status != "draft":
        raise Conflict(
            f"invoice {inv.reference or inv.id} is {inv.status}; a confirmed invoice never changes "
            "(later charges go to the next invoice as correction lines)"
        )
    _attach(session, inv)
    if line_decimals is not None:
        inv.line_decimals = line_decimals
    rebuild(session, inv)
    return inv


def confirm(
    session: Session,
    ref: str | int,
    *,
    at: datetime | None = None,
    line_decimals: int | None = None,
    ad_hoc: bool = False,
) -> Invoice:
    """Recalculate, then freeze (the next number, issue and due dates); see ``closing`` for ``ad_hoc``."""
    now = clock.now()
    at = at or now
    inv = _locked(session, ref)
    if inv.status != "draft":
        raise Conflict(f"invoice {inv.reference or inv.id} is {inv.status}; only a draft can be confirmed")
    closing.refuse_unclosed(inv, at=at, now=now, ad_hoc=ad_hoc)
    _attach(session, inv)
    if line_decimals is not None:
        inv.line_decimals = line_decimals
    rebuild(session, inv)
    ins = (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert(INVOICE_COUNTER)
    session.execute(ins.values(legal_entity_id=inv.own_legal_entity_id, last_number=0).on_conflict_do_nothing())
    number = session.execute(
        sa.update(INVOICE_COUNTER)
        .where(INVOICE_COUNTER.c.legal_entity_id == inv.own_legal_entity_id)
        .values(last_number=INVOICE_COUNTER.c.last_number + 1)
        .returning(INVOICE_COUNTER.c.last_number)
    ).scalar_one()
    inv.number = int(number)
    inv.reference = f"INV-{number}"
    inv.status = "confirmed"
    inv.confirmed_at = at
    inv.issue_date = at.astimezone(zone(inv.billing_tz)).date()
    inv.due_date = inv.issue_date + timedelta(days=inv.days_for_payment)
    session.flush()
    return inv


def void(session: Session, ref: str | int) -> Invoice:
    """Cancel an invoice (draft or confirmed); its number stays used, its charges are released."""
    inv = _locked(session, ref)
    if inv.status == "void":
        raise Conflict(f"invoice {inv.reference or inv.id} is already void")
    session.execute(sa.delete(IC).where(IC.c.invoice_id == inv.id))
    inv.status = "void"
    inv.voided_at = clock.now()
    session.flush()
    return inv


def list_invoices(
    session: Session,
    *,
    agreement_ref: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    q = select(Invoice, Agreement.code).join(Agreement, col(Agreement.id) == Invoice.agreement_id)
    if agreement_ref:
        q = q.where(Invoice.agreement_id == agreements.get(session, agreement_ref).id)
    if status:
        q = q.where(Invoice.status == status)
    if since:
        q = q.where(Invoice.period_start >= since)
    q = q.order_by(col(Invoice.period_start), col(Invoice.agreement_id), col(Invoice.id))
    return [summary(inv, agreement=code) for inv, code in session.exec(q)]


def summary(inv: Invoice, *, agreement: str | None = None) -> dict[str, Any]:
    m = minor_units(inv.currency)
    return {
        "id": inv.id,
        "reference": inv.reference,
        "number": inv.number,
        "agreement": agreement,
        "status": inv.status,
        "direction": "RECEIVABLE",
        "period_start": iso(inv.period_start),
        "period_end": iso(inv.period_end),
        "local_start_date": inv.local_start_date.isoformat(),
        "local_end_date": inv.local_end_date.isoformat(),
        "billing_tz": inv.billing_tz,
        "currency": inv.currency,
        "tax_rate": format_rate(inv.tax_rate),
        "issue_date": inv.issue_date.isoformat(),
        "due_date": inv.due_date.isoformat(),
        "charge_count": inv.charge_count,
        "charges_total": format_micros(inv.charges_total),
        "net": format_micros(inv.net, m),
        "rounding": format_micros(inv.rounding),
        "tax": format_micros(inv.tax, m),
        "total": format_micros(inv.total, m),
        "line_decimals": inv.line_decimals,
        "generation": inv.generation,
        "sent_at": iso(inv.sent_at),
    }


def lines(session: Session, inv: Invoice) -> list[dict[str, Any]]:
    q = sa.select(LINE).where(LINE.c.invoice_id == inv.id).order_by(LINE.c.position)
    m = minor_units(inv.currency)
    out = []
    for r in session.execute(q).mappings():
        d = dict(r)
        for k in ("exact", "rounding"):
            d[k] = format_micros(d[k])
        for k in ("unit_price", "net", "tax", "total"):
            d[k] = format_micros(d[k], m)
        d.pop("invoice_id")
        out.append(d)
    return out


def _party(session: Session, le_id: int, account_id: int | None) -> dict[str, Any]:
    le = session.get(LegalEntity, le_id)
    assert le is not None
    company = session.get(Company, le.company_id)
    out: dict[str, Any] = {
        "company": company.name if company else None,
        "name": le.name,
        "legal_name": le.legal_name,
        "country": le.country,
        "legal_id": le.legal_id,
        "tax_id": le.tax_id,
        "vat_id": le.vat_id,
        "address": le.billing_address or le.legal_address,
        "bank_account": None,
    }
    acc = session.get(BankAccount, account_id) if account_id else None
    if acc is not None:
        bank = session.get(Bank, acc.bank_id)
        out["bank_account"] = {
            "name": acc.name,
            "holder": acc.account_holder,
            "number": acc.account_number,
            "bank": bank.name if bank else None,
            "swift": bank.swift if bank else None,
        }
    return out


def show(session: Session, ref: str | int) -> dict[str, Any]:
    inv = get(session, ref)
    ag = session.get(Agreement, inv.agreement_id)
    assert ag is not None
    data = summary(inv, agreement=ag.code)
    data["seller"] = _party(session, inv.own_legal_entity_id, ag.own_bank_account_id)
    data["buyer"] = _party(session, inv.legal_entity_id, ag.bank_account_id)
    data["lines"] = lines(session, inv)
    data["confirmed_at"] = iso(inv.confirmed_at)
    data["voided_at"] = iso(inv.voided_at)
    data["sent_to"] = inv.sent_to or []
    return data


def invoice_emails(session: Session, inv: Invoice) -> list[str]:
    v = session.get(AgreementVersion, inv.version_id) if inv.version_id else None
    if v is None:
        ag = session.get(Agreement, inv.agreement_id)
        v = agreements.version_at(session, ag, clock.now()) if ag else None
    return list(((v.emails or {}) if v else {}).get("invoice") or [])


def mark_sent(session: Session, inv: Invoice, to: list[str], at: datetime | None = None) -> None:
    inv.sent_at = at or clock.now()
    inv.sent_to = list(to)
    session.flush()


def run_job(engine) -> dict[str, Any]:
    """Scheduler job: invoice every period that has closed by now (line
    decimals from the config file of the environment, as ``invoice run``)."""
    from cpaas_cli.config import invoice_line_decimals, load_settings
    from cpaas_cli.db.engine import session_scope

    decimals = invoice_line_decimals(load_settings())
    with session_scope(engine, actor="scheduler", command="invoice run") as s:
        res = run(s, line_decimals=decimals)
    return {k: res[k] for k in ("created", "recalculated", "unchanged")}


def refresh_drafts(session: Session, agreement_id: int) -> int:
    """Claim new charges (e.g. re-rating rows) into the agreement's drafts and
    rebuild those that got some; confirmed invoices are left alone (their late
    charges become correction lines of the next invoice). Returns how many."""
    n = 0
    locking.serialise(session, INVOICING)  # not while a confirm or void of these drafts is under way
    q = select(Invoice).where(Invoice.agreement_id == agreement_id, Invoice.status == "draft")
    for inv in session.exec(q.order_by(col(Invoice.period_start))):
        if _attach(session, inv):
            rebuild(session, inv)
            n += 1
    return n
