"""Agreements and their versions.

An agreement is a contract between a seller (the owner or a reseller) and a
company under it, and one balance. Its versions carry the terms that change
over time (credit limit, invoicing); versions of one agreement never overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.agreements.reselling import currency_conflict
from cpaas_cli.errors import Conflict, InvalidInput, NotFound, Problem, require
from cpaas_cli.models.agreements import (
    BILLING_PERIODS,
    DIRECTIONS,
    EMAIL_KINDS,
    Agreement,
    AgreementVersion,
)
from cpaas_cli.models.billing import Charge, Payment
from cpaas_cli.models.tenancy import BankAccount, Company, LegalEntity
from cpaas_cli.money import MoneyError, check_currency, format_micros, to_micros
from cpaas_cli.refs import by_ref
from cpaas_cli.tenancy import banks
from cpaas_cli.tenancy import service as tenancy
from cpaas_cli.timeutil import TimeError, check_zone, iso, zone

EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


def has_charges(session: Session, agreement_id: int) -> bool:
    """Whether the agreement has a charge or a payment: then its company,
    currency and direction stay fixed (AMB-14). Asked of the tables directly,
    so the answer does not depend on which modules a process has imported."""
    for table in (Charge, Payment):
        if session.exec(select(table.id).where(table.agreement_id == agreement_id).limit(1)).first() is not None:
            return True
    return False


# ------------------------------------------------------------------ terms


@dataclass
class Terms:
    """The terms a version carries. None = not given (keep / copy / default)."""

    credit_limit: str | None = None  # "" or "unlimited" = unlimited
    billing_period: str | None = None
    billing_day: int | None = None
    split_by_month: bool | None = None
    billing_tz: str | None = None
    days_for_payment: int | None = None
    emails: dict[str, list[str]] | None = None
    tax_rate: str | None = None  # percent, e.g. "20" or "7.5"

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


DEFAULT_TERMS = Terms(
    credit_limit="",
    billing_period="monthly",
    billing_day=1,
    split_by_month=False,
    billing_tz="UTC",
    days_for_payment=30,
    emails={},
    tax_rate="0",
)


def billing_day_range(period: str) -> tuple[int, int] | None:
    """Valid billing days per period; None = the period takes no billing day.

    daily: none; weekly: 1-7 (ISO weekday, 1 = Monday); monthly and quarterly:
    1-31 (a day past the end of a short month means its last day; for
    quarterly, the day of the quarter's first month).
    """
    return {"daily": None, "weekly": (1, 7), "monthly": (1, 31), "quarterly": (1, 31)}[period]


def parse_credit_limit(text: str | None) -> int | None:
    """'' / 'unlimited' → None (unlimited); otherwise a non-negative amount."""
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("", "unlimited", "none", "-"):
        return None
    micros = to_micros(value)
    if micros < 0:
        raise MoneyError("a credit limit cannot be negative")
    return micros


def validate_terms(t: Terms) -> list[Problem]:
    """Check a complete set of terms (every field filled)."""
    problems: list[Problem] = []
    try:
        parse_credit_limit(t.credit_limit)
    except MoneyError as exc:
        problems.append(Problem("credit_limit", str(exc)))
    if t.billing_period not in BILLING_PERIODS:
        problems.append(Problem("billing_period", f"must be one of {', '.join(BILLING_PERIODS)}"))
    else:
        span = billing_day_range(t.billing_period)
        if span is None:
            if t.billing_day not in (None, 1):
                problems.append(Problem("billing_day", "a daily billing period takes no billing day"))
        elif t.billing_day is None or not span[0] <= t.billing_day <= span[1]:
            problems.append(
                Problem(
                    "billing_day", f"must be {span[0]}-{span[1]} for a {t.billing_period} period, got {t.billing_day}"
                )
            )
        if t.split_by_month and t.billing_period not in ("daily", "weekly"):
            problems.append(Problem("split_by_month", "applies only to daily and weekly billing periods"))
    try:
        check_zone(t.billing_tz or "")
    except TimeError as exc:
        problems.append(Problem("billing_tz", str(exc)))
    if t.days_for_payment is None or t.days_for_payment < 0 or t.days_for_payment > 3650:
        problems.append(Problem("days_for_payment", f"must be 0-3650, got {t.days_for_payment}"))
    for kind, addresses in (t.emails or {}).items():
        if kind not in EMAIL_KINDS:
            problems.append(Problem("emails", f"unknown e-mail kind {kind!r} (kinds: {', '.join(EMAIL_KINDS)})"))
            continue
        for addr in addresses:
            if not EMAIL_RE.match(addr):
                problems.append(Problem(f"emails.{kind}", f"not an e-mail address: {addr!r}"))
    try:
        parse_tax_rate(t.tax_rate)
    except MoneyError as exc:
        problems.append(Problem("tax_rate", str(exc)))
    return problems


def parse_tax_rate(text: str | None) -> int:
    """A percentage ("20", "7.5") → percent × 1,000,000; 0-100, at most six decimals."""
    try:
        value = to_micros(text if text not in (None, "") else "0")
    except MoneyError as exc:
        if "out of range" not in str(exc):
            raise
        value = -1  # a huge number: named as a tax rate below, not against the money maximum
    if not 0 <= value <= 100_000_000:
        raise MoneyError(f"a tax rate is a percentage from 0 to 100, got {str(text)[:40]!r}")
    return value


def _complete(base: Terms, overlay: Terms) -> Terms:
    merged = Terms(**{f.name: getattr(base, f.name) for f in fields(Terms)})
    for key, value in overlay.given().items():
        setattr(merged, key, value)
    if merged.billing_period == "daily" and overlay.billing_day is None:
        merged.billing_day = None
    elif merged.billing_day is None and merged.billing_period in ("weekly", "monthly", "quarterly"):
        merged.billing_day = 1
    if merged.billing_period not in ("daily", "weekly") and overlay.split_by_month is None:
        merged.split_by_month = False
    return merged


def terms_of(v: AgreementVersion) -> Terms:
    return Terms(
        credit_limit=format_micros(v.credit_limit) if v.credit_limit is not None else "",
        billing_period=v.billing_period,
        billing_day=v.billing_day,
        split_by_month=v.split_by_month,
        billing_tz=v.billing_tz,
        days_for_payment=v.days_for_payment,
        emails=dict(v.emails or {}),
        tax_rate=format_micros(v.tax_rate or 0),
    )


def _apply_terms(v: AgreementVersion, t: Terms) -> None:
    v.credit_limit = parse_credit_limit(t.credit_limit)
    v.billing_period = t.billing_period or "monthly"
    v.billing_day = None if t.billing_period == "daily" else t.billing_day
    v.split_by_month = bool(t.split_by_month)
    v.billing_tz = t.billing_tz or "UTC"
    v.days_for_payment = int(t.days_for_payment if t.days_for_payment is not None else 30)
    v.emails = {k: list(a) for k, a in (t.emails or {}).items() if a}
    v.tax_rate = parse_tax_rate(t.tax_rate)


# ------------------------------------------------------------- agreements


def get(session: Session, ref: str | int, *, seller: str | int | None = None) -> Agreement:
    where = []
    if seller is not None:
        where.append(Agreement.seller_company_id == tenancy.company(session, seller).id)
    return by_ref(session, Agreement, ref, field="code", what="agreement", where=where)


def _pick_bank_account(
    session: Session,
    ref: str | int | None,
    *,
    company: Company,
    le: LegalEntity | None,
    field: str,
    problems: list[Problem],
) -> BankAccount | None:
    if ref is None or str(ref).strip() == "":
        return None
    try:
        acc = banks.bank_account(session, ref, company_id=company.id)
    except (NotFound, InvalidInput) as exc:
        problems.append(Problem(field, f"{company.name!r}: {exc.message}"))
        return None
    if le is not None and acc.legal_entity_id != le.id:
        problems.append(Problem(field, f"bank account {acc.name!r} belongs to another legal entity than {le.name!r}"))
    return acc


def create(
    session: Session,
    *,
    company_ref: str | int,
    code: str,
    currency: str,
    direction: str = "CLIENT",
    legal_entity_ref: str | int | None = None,
    own_legal_entity_ref: str | int | None = None,
    bank_account_ref: str | int | None = None,
    own_bank_account_ref: str | int | None = None,
    agreement_date: date | None = None,
    effective_from: datetime | None = None,
    effective_from_tz: str = "UTC",
    effective_till: datetime | None = None,
    effective_till_tz: str | None = None,
    description: str | None = None,
    version_code: str | None = None,
    terms: Terms | None = None,
) -> tuple[Agreement, AgreementVersion]:
    """Create an agreement and its first version."""
    problems: list[Problem] = []
    client = tenancy.company(session, company_ref)
    if client.kind == "owner" or client.parent_id is None:
        raise InvalidInput("the system owner has no seller; agreements are made with resellers and clients")
    seller = session.get(Company, client.parent_id)
    assert seller is not None
    code = (code or "").strip()
    if not code:
        problems.append(Problem("code", "is required"))
    elif len(code) > 64:
        problems.append(Problem("code", "is longer than 64 characters"))
    try:
        currency = check_currency(currency)
    except MoneyError as exc:
        problems.append(Problem("currency", str(exc)))
    direction = (direction or "").upper()
    if direction not in DIRECTIONS:
        problems.append(Problem("direction", f"must be CLIENT or VENDOR, got {direction!r}"))
    elif direction == "VENDOR":
        problems.append(Problem("direction", "VENDOR agreements cannot be created yet (AMB-13); use CLIENT"))
    for tz_field, tz in (("effective_from_tz", effective_from_tz), ("effective_till_tz", effective_till_tz)):
        if tz is not None:
            try:
                check_zone(tz)
            except TimeError as exc:
                problems.append(Problem(tz_field, str(exc)))
    start = effective_from or clock.now()
    if effective_till is not None and effective_till <= start:
        problems.append(Problem("effective_till", "must be later than effective_from"))
    le = None
    if legal_entity_ref is None:
        le = tenancy.default_legal_entity(session, client.id)
        if le is None:
            problems.append(Problem("legal_entity", f"{client.name!r} has no default legal entity; add one or name it"))
    else:
        try:
            le = tenancy.legal_entity(session, legal_entity_ref, company_id=client.id)
        except (NotFound, InvalidInput) as exc:
            problems.append(Problem("legal_entity", f"{client.name!r}: {exc.message}"))
    own_le = None
    if own_legal_entity_ref is None and client.own_legal_entity_id is not None:
        own_le = session.get(LegalEntity, client.own_legal_entity_id)
    else:
        own_le = tenancy.seller_legal_entity(session, seller, own_legal_entity_ref, problems)
    bank = _pick_bank_account(session, bank_account_ref, company=client, le=le, field="bank_account", problems=problems)
    own_bank = _pick_bank_account(
        session, own_bank_account_ref, company=seller, le=own_le, field="own_bank_account", problems=problems
    )
    given = terms or Terms()
    if given.billing_tz is None:
        given.billing_tz = effective_from_tz  # invoices follow the agreement's zone unless told otherwise
    full_terms = _complete(DEFAULT_TERMS, given)
    problems += validate_terms(full_terms)
    require(problems)
    if session.exec(
        select(Agreement.id).where(Agreement.seller_company_id == seller.id, Agreement.code == code)
    ).first():
        raise Conflict(f"{seller.name!r} already has an agreement with code {code!r}")
    assert le is not None and own_le is not None
    clash = currency_conflict(session, own_le.id, currency, start, effective_till)  # type: ignore[arg-type]
    if clash:
        raise Conflict(f"agreement {code!r} in {currency}: {clash}")
    tz = effective_from_tz
    row = Agreement(
        code=code,
        seller_company_id=seller.id,
        company_id=client.id,
        direction=direction,
        legal_entity_id=le.id,
        own_legal_entity_id=own_le.id,
        bank_account_id=bank.id if bank else None,
        own_bank_account_id=own_bank.id if own_bank else None,
        agreement_date=agreement_date or start.astimezone(zone(tz)).date(),
        currency=currency,
        effective_from=start,
        effective_from_tz=tz,
        effective_till=effective_till,
        effective_till_tz=effective_till_tz or tz,
        description=description,
    )
    session.add(row)
    session.flush()
    version = AgreementVersion(
        agreement_id=row.id, code=version_code, effective_from=start, effective_till=effective_till, tz=tz
    )
    _apply_terms(version, full_terms)
    session.add(version)
    session.flush()
    return row, version


def versions(session: Session, agreement: Agreement) -> list[AgreementVersion]:
    return list(
        session.exec(
            select(AgreementVersion)
            .where(AgreementVersion.agreement_id == agreement.id)
            .order_by(col(AgreementVersion.effective_from))
        )
    )


def version_at(session: Session, agreement: Agreement, at: datetime) -> AgreementVersion | None:
    """The version in force at ``at`` (the earliest-starting one if several overlap), or None.
    One row asked of the database (the credit check of every API send reads it)."""
    V = AgreementVersion
    return session.exec(
        select(V)
        .where(
            V.agreement_id == agreement.id,
            col(V.effective_from) <= at,
            sa.or_(col(V.effective_till).is_(None), col(V.effective_till) > at),
        )
        .order_by(col(V.effective_from))
        .limit(1)
    ).first()


def list_agreements(
    session: Session,
    *,
    company_ref: str | int | None = None,
    seller_ref: str | int | None = None,
    currency: str | None = None,
    active_at: datetime | None = None,
) -> list[Agreement]:
    q = select(Agreement)
    if company_ref is not None:
        q = q.where(Agreement.company_id == tenancy.company(session, company_ref).id)
    if seller_ref is not None:
        q = q.where(Agreement.seller_company_id == tenancy.company(session, seller_ref).id)
    if currency:
        q = q.where(Agreement.currency == currency.upper())
    if active_at is not None:
        q = q.where(Agreement.effective_from <= active_at).where(
            (col(Agreement.effective_till).is_(None)) | (col(Agreement.effective_till) > active_at)
        )
    return list(session.exec(q.order_by(Agreement.id)))


def update(session: Session, row: Agreement, changes: dict[str, Any]) -> Agreement:
    """Change agreement fields. Company is never changed here; currency and
    direction only while the agreement has no charge (AMB-14)."""
    problems: list[Problem] = []
    client = session.get(Company, row.company_id)
    seller = session.get(Company, row.seller_company_id)
    assert client is not None and seller is not None
    fixed = [k for k in ("currency", "direction") if changes.get(k) is not None]
    if fixed and has_charges(session, row.id):
        raise Conflict(f"agreement {row.code!r} has charges; its {' and '.join(fixed)} can no longer change")
    if changes.get("currency") is not None:
        try:
            row.currency = check_currency(changes["currency"])
        except MoneyError as exc:
            problems.append(Problem("currency", str(exc)))
    if changes.get("direction") is not None:
        d = str(changes["direction"]).upper()
        if d != "CLIENT":
            problems.append(Problem("direction", "only CLIENT agreements are supported (AMB-13)"))
    le = session.get(LegalEntity, row.legal_entity_id)
    if changes.get("legal_entity") is not None:
        try:
            le = tenancy.legal_entity(session, changes["legal_entity"], company_id=client.id)
            row.legal_entity_id = le.id
        except (NotFound, InvalidInput) as exc:
            problems.append(Problem("legal_entity", exc.message))
    own_le = session.get(LegalEntity, row.own_legal_entity_id)
    if changes.get("own_legal_entity") is not None:
        own_le = tenancy.seller_legal_entity(session, seller, changes["own_legal_entity"], problems)
        if own_le is not None:
            row.own_legal_entity_id = own_le.id
    if "bank_account" in changes and changes["bank_account"] is not None:
        acc = _pick_bank_account(
            session, changes["bank_account"], company=client, le=le, field="bank_account", problems=problems
        )
        row.bank_account_id = acc.id if acc else None
    if "own_bank_account" in changes and changes["own_bank_account"] is not None:
        acc = _pick_bank_account(
            session, changes["own_bank_account"], company=seller, le=own_le, field="own_bank_account", problems=problems
        )
        row.own_bank_account_id = acc.id if acc else None
    if changes.get("agreement_date") is not None:
        row.agreement_date = changes["agreement_date"]
    if changes.get("description") is not None:
        row.description = changes["description"]
    if "effective_till" in changes:
        till = changes["effective_till"]
        _check_till(session, row, till, problems)
        if not problems:
            _move_end(session, row, till)
    require(problems)
    if changes.get("currency") is not None or changes.get("own_legal_entity") is not None:
        clash = currency_conflict(
            session, row.own_legal_entity_id, row.currency, row.effective_from, row.effective_till
        )
        if clash:
            raise Conflict(f"agreement {row.code!r} in {row.currency}: {clash}")
    session.flush()
    return row


def _check_till(session: Session, row: Agreement, till: datetime | None, problems: list[Problem]) -> None:
    if till is None:
        return
    if till <= row.effective_from:
        problems.append(Problem("effective_till", "must be later than effective_from"))
        return
    later = [v for v in versions(session, row) if v.effective_from >= till]
    if later:
        problems.append(
            Problem(
                "effective_till",
                f"version #{later[0].id} starts at {iso(later[0].effective_from)}, after the new end; delete it first",
            )
        )


def _move_end(session: Session, row: Agreement, till: datetime | None) -> None:
    """Set the agreement's end and make its last version end there too."""
    old_till = row.effective_till
    row.effective_till = till
    vs = versions(session, row)
    if vs and vs[-1].effective_till == old_till:
        vs[-1].effective_till = till


def close(session: Session, row: Agreement, *, at: datetime | None = None) -> Agreement:
    """End the agreement at a time (default now). Traffic stops from then on."""
    when = at or clock.now()
    if row.closed_at is not None:
        raise Conflict(f"agreement {row.code!r} is already closed")
    if row.effective_till is not None and row.effective_till < when:
        raise Conflict(f"agreement {row.code!r} already ended at {iso(row.effective_till)}")
    problems: list[Problem] = []
    _check_till(session, row, when, problems)
    require(problems)
    # The version in force at the close time ends there.
    current = version_at(session, row, when)
    row.effective_till = when
    if current is not None:
        current.effective_till = when
    row.closed_at = clock.now()
    session.flush()
    return row


# ---------------------------------------------------------------- versions


def add_version(
    session: Session,
    row: Agreement,
    *,
    effective_from: datetime,
    effective_till: datetime | None = None,
    tz: str = "UTC",
    code: str | None = None,
    terms: Terms | None = None,
) -> tuple[AgreementVersion, AgreementVersion | None]:
    """Add a version; terms not given are copied from the version in force
    just before it. An open-ended version that starts earlier is cut at the
    new start (returned second); any other overlap is a conflict."""
    problems: list[Problem] = []
    try:
        check_zone(tz)
    except TimeError as exc:
        problems.append(Problem("tz", str(exc)))
    if effective_from < row.effective_from:
        problems.append(Problem("effective_from", f"is before the agreement starts ({iso(row.effective_from)})"))
    if row.effective_till is not None and effective_from >= row.effective_till:
        problems.append(Problem("effective_from", f"is after the agreement ends ({iso(row.effective_till)})"))
    till = effective_till
    if till is None and row.effective_till is not None:
        till = row.effective_till
    if till is not None and till <= effective_from:
        problems.append(Problem("effective_till", "must be later than effective_from"))
    if till is not None and row.effective_till is not None and till > row.effective_till:
        problems.append(Problem("effective_till", f"is after the agreement ends ({iso(row.effective_till)})"))
    existing = versions(session, row)
    before = [v for v in existing if v.effective_from < effective_from]
    base = terms_of(before[-1]) if before else DEFAULT_TERMS
    full = _complete(base, terms or Terms())
    problems += validate_terms(full)
    require(problems)
    cut: AgreementVersion | None = None
    for v in existing:
        v_end = v.effective_till
        overlaps = v.effective_from < (till or datetime.max.replace(tzinfo=effective_from.tzinfo)) and (
            v_end is None or effective_from < v_end
        )
        if not overlaps:
            continue
        is_last_open = v is existing[-1] and v.effective_from < effective_from and v_end == row.effective_till
        if is_last_open:
            cut = v
            continue
        raise Conflict(
            f"the new version overlaps version #{v.id} "
            f"({iso(v.effective_from)} - {iso(v_end) or 'indefinitely'}); versions never overlap"
        )
    if cut is not None:
        cut.effective_till = effective_from
    version = AgreementVersion(
        agreement_id=row.id, code=code, effective_from=effective_from, effective_till=till, tz=tz
    )
    _apply_terms(version, full)
    session.add(version)
    session.flush()
    return version, cut


def delete_version(session: Session, row: Agreement, version_id: int) -> AgreementVersion:
    """AGR-07: a version that already started cannot be deleted, nor the only one."""
    existing = versions(session, row)
    target = next((v for v in existing if v.id == version_id), None)
    if target is None:
        raise NotFound(f"agreement {row.code!r} has no version #{version_id}")
    if len(existing) == 1:
        raise Conflict("the only version of an agreement cannot be deleted")
    if target.effective_from < clock.now():
        raise Conflict(
            f"version #{version_id} took effect at {iso(target.effective_from)}; a version that has started cannot be deleted"
        )
    idx = existing.index(target)
    prev = existing[idx - 1] if idx > 0 else None
    if prev is not None and prev.effective_till == target.effective_from:
        # Give the time back to the version before, so the agreement stays covered.
        nxt = existing[idx + 1] if idx + 1 < len(existing) else None
        prev.effective_till = nxt.effective_from if nxt is not None else target.effective_till
    session.delete(target)
    session.flush()
    return target
