"""Checking a reseller provisioning document (`tenant reseller create --from-file`)
before anything is written: every bad field is named by its path in the
document (``services[2].name``), all of them at once.

:func:`check` reads the document against the database (the parent, the
parent's services, logins and codes in use) and returns a :class:`Plan` of
clean values for ``tenancy/provision.py`` to write; it writes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.catalog import service as catalog
from cpaas_cli.errors import CpaasError, Problem, require
from cpaas_cli.identity import users
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.catalog import Service
from cpaas_cli.models.identity import AppUser
from cpaas_cli.models.tenancy import Company, LegalEntity
from cpaas_cli.money import MoneyError, check_currency, to_micros
from cpaas_cli.tenancy import service as tenancy
from cpaas_cli.timeutil import TimeError, check_zone, parse_time

TOP = (
    "parent",
    "own_legal_entity",
    "creator_of_resellers",
    "description",
    "legal_entity",
    "agreement",
    "reselling",
    "services",
    "admin",
    "payment",
    "sender_ids",
)
REQUIRED_TOP = ("legal_entity", "agreement", "admin")
LE_KEYS = tenancy.LE_FIELDS
AGREEMENT_KEYS = (
    "code",
    "currency",
    "effective_from",
    "timezone",
    "description",
    "credit_limit",
    "billing_period",
    "billing_day",
    "split_by_month",
    "billing_tz",
    "days_for_payment",
    "tax_rate",
    "emails",
)
TERM_KEYS = tuple(f.name for f in dataclasses.fields(agreements.Terms))
RESELLING_KEYS = ("effective_from", "effective_till")
SERVICE_KEYS = ("name", "billing", "hidden")
ADMIN_KEYS = (
    "login",
    "first_name",
    "last_name",
    "middle_name",
    "job_title",
    "phone",
    "email",
    "country",
    "language",
    "timezone",
)
PAYMENT_KEYS = ("amount", "reference", "confirmed", "confirm_before", "paid_at", "description")
SENDER_KEYS = ("sender", "channel", "type", "name", "active", "description")
ADMIN_ROLE = "Admin"  # the BackOffice system role with every permission (identity/roles.py)


@dataclass
class ServicePick:
    path: str
    service: Service
    charge: bool | None
    hidden: bool


@dataclass
class SenderPick:
    sender: str
    channel: str
    kind: str
    name: str | None
    active: bool
    description: str | None


@dataclass
class Plan:
    """The document's values, checked; what ``provision.write`` creates."""

    name: str
    parent: Company
    own_legal_entity: LegalEntity
    creator_of_resellers: bool
    description: str | None
    legal_entity: tenancy.LegalEntityInput
    code: str
    currency: str
    effective_from: datetime
    tz: str
    agreement_description: str | None
    terms: agreements.Terms
    link_from: datetime
    link_till: datetime | None
    services: list[ServicePick] = field(default_factory=list)
    admin: users.UserInput = field(default_factory=users.UserInput)
    payment: dict[str, Any] | None = None
    senders: list[SenderPick] = field(default_factory=list)


class _Doc:
    """Typed reads of a document's fields, each failure a Problem named by its path."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def section(self, doc: Any, path: str, keys: tuple[str, ...], *, required: bool = True) -> dict[str, Any] | None:
        if doc is None:
            if required:
                self.bad(path, "is required")
            return None
        if not isinstance(doc, dict):
            self.bad(path or "document", f"must be a mapping of fields, not a {type(doc).__name__}")
            return None
        for key in doc:
            if key not in keys:
                self.bad(f"{path}.{key}" if path else str(key), f"unknown field (known: {', '.join(keys)})")
        return doc

    def text(self, doc: dict, key: str, path: str, *, required: bool = False, limit: int = 300) -> str | None:
        value = doc.get(key)
        where = f"{path}.{key}" if path else key
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.bad(where, "is required")
            return None
        if isinstance(value, bool):  # YAML reads NO, YES, ON, OFF as booleans: Norway's code needs quotes
            self.bad(where, f"must be text, not {str(value).lower()} (quote it: YAML reads no/yes/on/off as booleans)")
            return None
        if isinstance(value, dict | list):
            self.bad(where, f"must be text, not a {'mapping' if isinstance(value, dict) else 'list'}")
            return None
        text = str(value).strip()
        if len(text) > limit:
            self.bad(where, f"is longer than {limit} characters")
            return None
        return text

    def flag(self, doc: dict, key: str, path: str, default: bool) -> bool:
        value = doc.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.bad(f"{path}.{key}" if path else key, f"must be true or false, not {value!r}")
            return default
        return value

    def number(self, doc: dict, key: str, path: str) -> int | None:
        value = doc.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(f"{path}.{key}", f"must be a whole number, not {value!r}")
            return None
        return value

    def time(self, doc: dict, key: str, path: str, tz: str) -> datetime | None:
        value = doc.get(key)
        if value is None:
            return None
        if isinstance(value, datetime | date):
            value = value.isoformat()
        try:
            return parse_time(str(value), tz)
        except TimeError as exc:
            self.bad(f"{path}.{key}", str(exc))
            return None

    def items(self, doc: dict, key: str) -> list[Any]:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad(key, f"must be a list, not {type(value).__name__}")
            return []
        return value


def check(session: Session, name: str, doc: Any) -> Plan:
    """The plan of a provisioning document, or InvalidInput naming every bad field."""
    d = _Doc()
    top = d.section(doc, "", TOP)
    if top is None:
        require(d.problems or [Problem("file", "is empty")], "the reseller document")
    assert top is not None
    for key in REQUIRED_TOP:
        if top.get(key) is None:
            d.bad(key, "is required")
    tenancy.check_name(name, "name", d.problems)
    parent = _parent(session, d, top, name)
    own_le = None
    if parent is not None:
        own_le = tenancy.seller_legal_entity(
            session, parent, d.text(top, "own_legal_entity", ""), d.problems, field="own_legal_entity"
        )
    le = _legal_entity(d, top.get("legal_entity"))
    ag = _agreement(session, d, top.get("agreement"), parent)
    link_from, link_till = _reselling(d, top.get("reselling"), ag)
    plan = Plan(
        name=(name or "").strip(),
        parent=parent,  # type: ignore[arg-type]
        own_legal_entity=own_le,  # type: ignore[arg-type]
        creator_of_resellers=d.flag(top, "creator_of_resellers", "", False),
        description=d.text(top, "description", "", limit=2000),
        legal_entity=le,
        code=ag["code"],
        currency=ag["currency"],
        effective_from=ag["start"],
        tz=ag["tz"],
        agreement_description=ag["description"],
        terms=ag["terms"],
        link_from=link_from,
        link_till=link_till,
    )
    plan.services = _services(session, d, top, parent, ag["currency"])
    plan.admin = _admin(session, d, top.get("admin"))
    plan.payment = _payment(d, top.get("payment"), ag["currency"], ag["tz"])
    plan.senders = _senders(d, top)
    require(d.problems, "the reseller document")
    return plan


def _parent(session: Session, d: _Doc, top: dict, name: str) -> Company | None:
    ref = d.text(top, "parent", "")
    try:
        parent = tenancy.company(session, ref) if ref else tenancy.require_owner(session)
    except CpaasError as exc:
        d.bad("parent", exc.message)
        return None
    d.problems.extend(tenancy.validate_company_parent(session, kind="reseller", parent=parent, field="parent"))
    clean = (name or "").strip()
    if clean and session.exec(select(Company.id).where(Company.name == clean, Company.parent_id == parent.id)).first():
        d.bad("name", f"a company named {clean!r} already exists under {parent.name!r}")
    return parent


def _legal_entity(d: _Doc, doc: Any) -> tenancy.LegalEntityInput:
    sec = d.section(doc, "legal_entity", LE_KEYS, required=False) or {}
    data = tenancy.LegalEntityInput(**{k: d.text(sec, k, "legal_entity") for k in LE_KEYS}, is_default=True)
    if doc is not None and isinstance(doc, dict):
        d.problems.extend(tenancy.validate_legal_entity(data, company_kind="reseller", prefix="legal_entity."))
    return data


def _agreement(session: Session, d: _Doc, doc: Any, parent: Company | None) -> dict[str, Any]:
    p = "agreement"
    sec = d.section(doc, p, AGREEMENT_KEYS, required=False) or {}
    code = d.text(sec, "code", p, required=doc is not None, limit=64) or ""
    currency = d.text(sec, "currency", p, required=doc is not None) or ""
    if currency:
        try:
            currency = check_currency(currency)
        except MoneyError as exc:
            d.bad(f"{p}.currency", str(exc))
    tz = d.text(sec, "timezone", p) or "UTC"
    try:
        check_zone(tz)
    except TimeError as exc:
        d.bad(f"{p}.timezone", str(exc))
        tz = "UTC"
    start = d.time(sec, "effective_from", p, tz) or clock.now()
    given: dict[str, Any] = {}
    for key in ("credit_limit", "billing_period", "billing_tz", "tax_rate"):
        given[key] = d.text(sec, key, p)
    for key in ("billing_day", "days_for_payment"):
        given[key] = d.number(sec, key, p)
    if "split_by_month" in sec:
        given["split_by_month"] = d.flag(sec, "split_by_month", p, False)
    given["emails"] = _emails(d, sec.get("emails"))
    terms = agreements.Terms(**{k: v for k, v in given.items() if v is not None})
    if terms.billing_tz is None:
        terms.billing_tz = tz
    full = dataclasses.replace(agreements.DEFAULT_TERMS, **terms.given())
    if full.billing_period == "daily" and terms.billing_day is None:
        full.billing_day = None
    for problem in agreements.validate_terms(full):
        d.bad(f"{p}.{problem.field}", problem.message)
    if code and parent is not None:
        taken = select(Agreement.id).where(Agreement.seller_company_id == parent.id, Agreement.code == code)
        if session.exec(taken).first() is not None:
            d.bad(f"{p}.code", f"{parent.name!r} already has an agreement with code {code!r}")
    return {
        "code": code,
        "currency": currency,
        "start": start,
        "tz": tz,
        "description": d.text(sec, "description", p, limit=2000),
        "terms": terms,
    }


def _emails(d: _Doc, value: Any) -> dict[str, list[str]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        d.bad("agreement.emails", "must be a mapping of kind → list of addresses")
        return None
    out: dict[str, list[str]] = {}
    for kind, addresses in value.items():
        items = [addresses] if isinstance(addresses, str) else addresses
        if not isinstance(items, list) or not all(isinstance(a, str) for a in items):
            d.bad(f"agreement.emails.{kind}", "must be an address or a list of addresses")
            continue
        out[str(kind)] = [a.strip() for a in items]
    return out


def _reselling(d: _Doc, doc: Any, ag: dict[str, Any]) -> tuple[datetime, datetime | None]:
    sec = d.section(doc, "reselling", RESELLING_KEYS, required=False) or {}
    start = d.time(sec, "effective_from", "reselling", ag["tz"]) or ag["start"]
    till = d.time(sec, "effective_till", "reselling", ag["tz"])
    if start < ag["start"]:
        d.bad("reselling.effective_from", "is before the agreement starts")
    if till is not None and till <= start:
        d.bad("reselling.effective_till", "must be later than effective_from")
    return start, till


def _services(session: Session, d: _Doc, top: dict, parent: Company | None, currency: str) -> list[ServicePick]:
    out: list[ServicePick] = []
    seen: set[int] = set()
    for i, item in enumerate(d.items(top, "services")):
        p = f"services[{i}]"
        sec = {"name": item} if isinstance(item, str) else d.section(item, p, SERVICE_KEYS)
        if sec is None:
            continue
        ref = d.text(sec, "name", p, required=True)
        billing = d.text(sec, "billing", p)
        hidden = d.flag(sec, "hidden", p, False)
        if ref is None:
            continue
        try:
            svc = catalog.get(session, ref)
        except CpaasError as exc:
            d.bad(f"{p}.name", exc.message)
            continue
        if svc.id in seen:
            d.bad(f"{p}.name", f"{svc.name!r} is listed twice")
            continue
        seen.add(svc.id)  # type: ignore[arg-type]
        problems = _service_problems(svc, parent, currency)
        sized = svc.type in catalog.SIZED_TYPES
        if billing is not None and billing not in ("charge", "free"):
            problems.append(("billing", "must be charge or free"))
        elif sized and billing is None:
            problems.append(("billing", f"{svc.name!r} is a {svc.type}: give its billing, charge or free"))
        elif not sized and billing is not None:
            problems.append(("billing", "charge/free apply to packs only"))
        for key, message in problems:
            d.bad(f"{p}.{key}", message)
        if not problems:
            out.append(ServicePick(p, svc, (billing == "charge") if sized else None, hidden))
    return out


def _service_problems(svc: Service, parent: Company | None, currency: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if svc.archived_at is not None:
        problems.append(("name", f"service {svc.name!r} is archived"))
    if svc.type == "vendor":
        problems.append(("name", f"{svc.name!r} is a vendor price plan, not a service to resell"))
    if parent is not None:
        owner_id = svc.owner_company_id
        if owner_id != parent.id and not (owner_id is None and parent.kind == "owner"):
            problems.append(("name", f"{svc.name!r} is not a service of {parent.name!r}, the reseller's seller"))
    if svc.type in ("payg", "monetary-pack") and currency and svc.currency != currency:
        problems.append(("name", f"{svc.name!r} is in {svc.currency}, the agreement in {currency}"))
    return problems


def _admin(session: Session, d: _Doc, doc: Any) -> users.UserInput:
    sec = d.section(doc, "admin", ADMIN_KEYS, required=False) or {}
    data = users.UserInput(**{k: d.text(sec, k, "admin") for k in ADMIN_KEYS})
    if doc is None or not isinstance(doc, dict):
        return data
    problems: list[Problem] = []
    for key in ("login", "first_name", "last_name"):
        if getattr(data, key) is None:
            problems.append(Problem(key, "is required"))
    fields = users.check_fields(data, problems)
    for problem in problems:
        d.bad(f"admin.{problem.field}", problem.message)
    login = fields.get("login")
    if login and session.exec(select(AppUser.id).where(AppUser.login == login)).first() is not None:
        d.bad("admin.login", f"a user with login {login!r} already exists")
    return data


def _payment(d: _Doc, doc: Any, currency: str, tz: str) -> dict[str, Any] | None:
    p = "payment"
    sec = d.section(doc, p, PAYMENT_KEYS, required=False)
    if sec is None:
        return None
    amount = d.text(sec, "amount", p, required=True, limit=40)
    if amount is not None:
        try:
            if to_micros(amount) <= 0:
                d.bad(f"{p}.amount", "must be more than zero")
        except MoneyError as exc:
            d.bad(f"{p}.amount", str(exc))
    confirmed = d.flag(sec, "confirmed", p, True)
    confirm_before = d.time(sec, "confirm_before", p, tz)
    if confirmed and confirm_before is not None:
        d.bad(f"{p}.confirm_before", "only for a payment that is not confirmed")
    if not confirmed and confirm_before is None:
        d.bad(f"{p}.confirm_before", "an unconfirmed payment needs a confirm-before time")
    return {
        "amount": amount,
        "reference": d.text(sec, "reference", p, limit=200) or "opening balance",
        "confirmed": confirmed,
        "confirm_before": confirm_before,
        "paid_at": d.time(sec, "paid_at", p, tz),
        "description": d.text(sec, "description", p, limit=2000),
        "currency": currency,
    }


def _senders(d: _Doc, top: dict) -> list[SenderPick]:
    from cpaas_cli.campaigns import senders  # only a document with sender IDs needs the campaign code
    from cpaas_cli.dispatch.outbound import GATEWAY_CHANNELS

    out: list[SenderPick] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(d.items(top, "sender_ids")):
        p = f"sender_ids[{i}]"
        sec = {"sender": item} if isinstance(item, str | int) and not isinstance(item, bool) else None
        if sec is None:
            sec = d.section(item, p, SENDER_KEYS)
        if sec is None:
            continue
        text = d.text(sec, "sender", p, required=True, limit=32)
        channel = d.text(sec, "channel", p) or "sms"
        kind = d.text(sec, "type", p) or "alphanumeric"
        pick = SenderPick(
            sender=text or "",
            channel=channel,
            kind=kind,
            name=d.text(sec, "name", p, limit=100),
            active=d.flag(sec, "active", p, False),
            description=d.text(sec, "description", p, limit=2000),
        )
        if text is None:
            continue
        value, problems = senders.check_new(channel, kind, text, prefix=f"{p}.")
        d.problems.extend(problems)
        if problems or value is None:
            continue
        if channel not in GATEWAY_CHANNELS:
            d.bad(f"{p}.channel", f"no gateway serves channel {channel}")
            continue
        if (channel, value) in seen:
            d.bad(f"{p}.sender", f"{value!r} ({channel}) is listed twice")
            continue
        seen.add((channel, value))
        out.append(pick)
    return out
