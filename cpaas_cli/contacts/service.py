"""Contacts of a client company: the contact rows, their queries and views, and import history.

Rules kept here: a phone is stored as E.164 digits and is unique per company;
a new contact joins at least one group and has every required custom field.
Beside this module: `groups` (membership, CON-02), `fields` (custom fields,
CON-04), `stoplist` (blocks, AMB-01), `values` (parsing what is typed) and
`importer` (files).

Services take a Session first, keyword-only arguments after it, and never commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli.contacts.fields import field, fields
from cpaas_cli.contacts.groups import group
from cpaas_cli.contacts.stoplist import senders_blocked, state_condition
from cpaas_cli.contacts.values import parse_birthday, parse_gender, parse_value, phone, variable_name
from cpaas_cli.errors import Conflict, InvalidInput, NotFound, Problem, require
from cpaas_cli.models.contacts import Contact, ContactGroup, ContactGroupMember, ContactImport
from cpaas_cli.models.tenancy import Company
from cpaas_cli.tenancy.service import company as company_by_ref
from cpaas_cli.timeutil import iso


def client_company(session: Session, ref: str | int) -> Company:
    row = company_by_ref(session, ref)
    if row.kind != "client":
        raise InvalidInput(f"company {row.name!r} is a {row.kind}; contacts belong to client companies")
    return row


# ---------------------------------------------------------------- contacts


def contact(session: Session, company: Company, ref: str, default_country: str | None = None) -> Contact:
    text = str(ref).strip()
    if text.startswith("#") and text[1:].isdigit():
        row = session.get(Contact, int(text[1:]))
        if row is None or row.company_id != company.id:
            raise NotFound(f"contact {text} not found")
        return row
    number = phone(text, default_country)
    row = session.exec(select(Contact).where(Contact.company_id == company.id, Contact.phone == number)).first()
    if row is None:
        raise NotFound(f"no contact with phone {number} in {company.name!r}")
    return row


def _values(
    session: Session, company: Company, values: dict[str, str | None], fields_in: dict[str, str], *, creating: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for key, text in values.items():
        if text is None:
            continue
        if text == "":
            out[key] = None
            continue
        try:
            if key == "birthday":
                out[key] = parse_birthday(text)
            elif key == "gender":
                out[key] = parse_gender(text)
            else:
                out[key] = text.strip()
        except ValueError as exc:
            problems.append(Problem(key, str(exc)))
    defs = {f.variable: f for f in fields(session, company)}
    custom: dict[str, Any] = {}
    for ref, text in fields_in.items():
        f = defs.get(ref.strip().strip("{}")) or defs.get(variable_name(ref))
        if f is None:
            problems.append(Problem(f"field:{ref}", f"no such custom field (known: {', '.join(defs) or 'none'})"))
            continue
        if text == "":
            custom[f.variable] = None
            continue
        try:
            custom[f.variable] = parse_value(f.data_type, text)
        except ValueError as exc:
            problems.append(Problem(f"field:{f.variable}", str(exc)))
    if creating:
        for f in defs.values():
            if f.required and custom.get(f.variable) in (None, ""):
                problems.append(Problem(f"field:{f.variable}", "is required"))
    require(problems)
    return out, custom


def create_contact(
    session: Session,
    company: Company,
    *,
    phone_text: str,
    groups: list[str],
    values: dict[str, str | None] | None = None,
    fields_in: dict[str, str] | None = None,
    default_country: str | None = None,
) -> Contact:
    number = phone(phone_text, default_country)
    if not groups:
        raise InvalidInput("groups: a contact must be in at least one group (--group)")
    group_rows = [group(session, company, g) for g in groups]
    base, custom = _values(session, company, values or {}, fields_in or {}, creating=True)
    if session.exec(select(Contact.id).where(Contact.company_id == company.id, Contact.phone == number)).first():
        raise Conflict(f"a contact with phone {number} already exists in {company.name!r}")
    row = Contact(
        company_id=company.id, phone=number, fields={k: v for k, v in custom.items() if v is not None}, **base
    )
    session.add(row)
    session.flush()
    for g in group_rows:
        session.add(ContactGroupMember(contact_id=row.id, group_id=g.id))
    session.flush()
    return row


def update_contact(
    session: Session,
    row: Contact,
    *,
    phone_text: str | None = None,
    values: dict[str, str | None] | None = None,
    fields_in: dict[str, str] | None = None,
    default_country: str | None = None,
) -> Contact:
    company = session.get(Company, row.company_id)
    base, custom = _values(session, company, values or {}, fields_in or {}, creating=False)
    if phone_text is not None:
        number = phone(phone_text, default_country)
        if number != row.phone:
            if session.exec(
                select(Contact.id).where(Contact.company_id == company.id, Contact.phone == number)
            ).first():
                raise Conflict(f"a contact with phone {number} already exists")
            row.phone = number
    for key, value in base.items():
        setattr(row, key, value)
    if custom:
        merged = dict(row.fields or {})
        for k, v in custom.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        missing = [f.variable for f in fields(session, company) if f.required and merged.get(f.variable) is None]
        if missing:
            raise InvalidInput(f"field:{missing[0]}: is required")
        row.fields = merged
    session.flush()
    return row


def delete_contacts(session: Session, rows: list[Contact]) -> int:
    for r in rows:
        session.delete(r)
    session.flush()
    return len(rows)


def _field_condition(session: Session, company: Company, expr: str):
    m = re.match(r"^\s*\{?([^=<>!{}]+?)\}?\s*(=|!=|>=|<=|>|<)\s*(.*)$", expr)
    if not m:
        raise InvalidInput(f"--field {expr!r}: use NAME=VALUE (or !=, >, <, >=, <=)")
    f = field(session, company, m.group(1))
    op, text = m.group(2), m.group(3)
    try:
        value = parse_value(f.data_type, text)
    except ValueError as exc:
        raise InvalidInput(f"--field {expr!r}: {exc}") from exc
    item = Contact.__table__.c.fields[f.variable]
    if f.data_type == "number":
        left, right = item.as_float(), float(value)
    elif f.data_type == "bool":
        left, right = item.as_boolean(), value
    else:
        left, right = item.as_string(), str(value)
    ops = {
        "=": left == right,
        "!=": left != right,
        ">": left > right,
        "<": left < right,
        ">=": left >= right,
        "<=": left <= right,
    }
    if f.data_type == "bool" and op not in ("=", "!="):
        raise InvalidInput(f"--field {expr!r}: a yes/no field compares with = or != only")
    return ops[op]


def contacts_query(
    session: Session,
    company: Company,
    *,
    groups: list[str] | None = None,
    field_filters: list[str] | None = None,
    stoplist: str | None = None,
    phone_like: str | None = None,
):
    """A Core select of contact rows matching the filters (AND between kinds, OR between groups)."""
    t = Contact.__table__
    q = sa.select(t).where(t.c.company_id == company.id)
    if groups:
        ids = [group(session, company, g).id for g in groups]
        m = ContactGroupMember.__table__
        q = q.where(sa.exists().where(m.c.contact_id == t.c.id, m.c.group_id.in_(ids)))
    for expr in field_filters or []:
        q = q.where(_field_condition(session, company, expr))
    if stoplist:
        q = q.where(state_condition(company.id, t.c.phone, stoplist))
    if phone_like:
        q = q.where(t.c.phone.contains(re.sub(r"\D", "", phone_like)))
    return q.order_by(t.c.id)


def iter_contact_dicts(session: Session, company: Company, query, *, limit: int | None = None) -> Iterator[dict]:
    """Contact dicts with groups and blocked senders, fetched in batches."""
    if limit:
        query = query.limit(limit)
    result = session.connection().execution_options(yield_per=5000).execute(query)
    gnames = dict(
        session.exec(select(ContactGroup.id, ContactGroup.name).where(ContactGroup.company_id == company.id)).all()
    )
    for batch in result.partitions():
        ids = [r.id for r in batch]
        phones = [r.phone for r in batch]
        memberships: dict[int, list[str]] = {}
        for cid, gid in session.exec(
            select(ContactGroupMember.contact_id, ContactGroupMember.group_id).where(
                col(ContactGroupMember.contact_id).in_(ids)
            )
        ):
            memberships.setdefault(cid, []).append(gnames.get(gid, str(gid)))
        blocks = senders_blocked(session, company.id, phones)
        for r in batch:
            yield {
                "id": r.id,
                "phone": r.phone,
                "first_name": r.first_name,
                "last_name": r.last_name,
                "birthday": r.birthday.isoformat() if r.birthday else None,
                "gender": r.gender,
                "comments": r.comments,
                "groups": sorted(memberships.get(r.id, [])),
                "blocked_senders": sorted(blocks.get(r.phone, [])),
                "fields": r.fields or {},
                "created_at": iso(r.created_at),
                "updated_at": iso(r.updated_at),
            }


def contact_dict(session: Session, row: Contact) -> dict[str, Any]:
    company = session.get(Company, row.company_id)
    q = sa.select(Contact.__table__).where(Contact.__table__.c.id == row.id)
    return next(iter_contact_dicts(session, company, q))


# ---------------------------------------------------------------- import history


def import_history(session: Session, company: Company | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
    q = select(ContactImport)
    if company is not None:
        q = q.where(ContactImport.company_id == company.id)
    rows = session.exec(q.order_by(col(ContactImport.id).desc()).limit(limit))
    return [import_dict(r) for r in rows]


def import_dict(r: ContactImport) -> dict[str, Any]:
    return {
        "id": r.id,
        "company_id": r.company_id,
        "group": r.group_name,
        "file": r.file,
        "sha256": r.sha256,
        "size_bytes": r.size_bytes,
        "mode": r.mode,
        "stoplist": r.stoplist,
        "read": r.rows_read,
        "inserted": r.inserted,
        "updated": r.updated,
        "skipped": r.skipped,
        "rejected": r.rejected,
        "duplicates": r.duplicates,
        "stop_listed": r.stop_listed,
        "actor": r.actor,
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
    }
