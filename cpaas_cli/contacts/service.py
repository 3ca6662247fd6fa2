"""Contacts of a client company: groups, custom fields, contacts and the stop list.

Rules kept here:
- a phone is stored as E.164 digits and is unique per company;
- a contact is always in at least one group (CON-02): removing its last group,
  or deleting a group that is some contact's only group, is refused unless the
  caller asks for those contacts to be deleted too;
- custom field variables are the field name lowercased with everything but
  letters and digits removed (CON-04); renaming a field keeps its variable, so
  stored values and campaign macros keep working;
- the stop list holds (phone, sender) blocks, ``ALL`` meaning every sender
  (AMB-01); it does not touch group membership.

Services take a Session first, keyword-only arguments after it, and never commit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from cpaas_cli.audit.service import record
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.errors import Conflict, InvalidInput, NotFound, Problem, require
from cpaas_cli.imports.values import parse_bool
from cpaas_cli.models.contacts import (
    ALL_SENDERS,
    FIELD_TYPES,
    Contact,
    ContactField,
    ContactGroup,
    ContactGroupMember,
    ContactImport,
    StopListEntry,
)
from cpaas_cli.models.tenancy import Company
from cpaas_cli.refs import by_ref
from cpaas_cli.tenancy.service import company as company_by_ref
from cpaas_cli.timeutil import iso

GENDERS = ("male", "female", "other")
BASE_COLUMNS = ("first_name", "last_name", "birthday", "gender", "comments")
_SENDER = re.compile(r"^[A-Za-z0-9 ._&+\-]{1,32}$")


# ---------------------------------------------------------------- helpers


def client_company(session: Session, ref: str | int) -> Company:
    row = company_by_ref(session, ref)
    if row.kind != "client":
        raise InvalidInput(f"company {row.name!r} is a {row.kind}; contacts belong to client companies")
    return row


def phone(text: str, default_country: str | None = None, *, field: str = "phone", row: int | None = None) -> str:
    try:
        return normalise(text, default_country)
    except PhoneError as exc:
        raise InvalidInput(str(Problem(field, f"{text!r} {exc}", row))) from exc


def variable_name(name: str) -> str:
    """The macro variable of a custom field: its name lowercased, letters and digits only."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def sender_name(text: str) -> str:
    value = text.strip()
    if value.upper() == ALL_SENDERS:
        return ALL_SENDERS
    if not _SENDER.match(value):
        raise InvalidInput(f"sender {text!r} is not a sender ID (1-32 letters, digits, spaces or ._&+-) or ALL")
    return value


def senders(texts: Iterable[str]) -> list[str]:
    out: list[str] = []
    for t in texts:
        for part in str(t).split(","):
            if part.strip():
                name = sender_name(part)
                if name not in out:
                    out.append(name)
    if not out:
        raise InvalidInput("give at least one sender ID or ALL")
    return out


MAX_NUMBER = Decimal("1e300")
"""The largest custom-field number (a JSON number, read back as a float)."""


def parse_value(data_type: str, text: str) -> Any:
    """A custom field cell to its JSON value; ValueError with the reason."""
    value = text.strip()
    if data_type == "text":
        return value
    if data_type == "number":
        try:
            number = Decimal(value.replace(",", ".") if value.count(",") == 1 and "." not in value else value)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{text!r} is not a number")
        if abs(number) > MAX_NUMBER:  # a float would turn it into infinity (which JSON cannot hold)
            raise ValueError(f"{value[:40]!r} is out of range (at most {MAX_NUMBER:E} either way)")
        return int(number) if number == number.to_integral_value() and abs(number) < 2**53 else float(number)
    if data_type == "date":
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if data_type == "bool":
        result = parse_bool(value)
        if result is None:
            raise ValueError("is empty")
        return result
    raise ValueError(f"unknown type {data_type!r}")


def parse_birthday(text: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_gender(text: str) -> str:
    value = text.strip().lower()
    value = {"m": "male", "f": "female", "o": "other"}.get(value, value)
    if value not in GENDERS:
        raise ValueError(f"{text!r} is not one of {', '.join(GENDERS)}")
    return value


# ---------------------------------------------------------------- groups


def group(session: Session, company: Company, ref: str | int) -> ContactGroup:
    return by_ref(session, ContactGroup, ref, what="group", where=[ContactGroup.company_id == company.id])


def create_group(session: Session, company: Company, *, name: str, description: str | None = None) -> ContactGroup:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name: is required")
    if len(name) > 200:
        raise InvalidInput("name: is longer than 200 characters")
    taken = session.exec(
        select(ContactGroup.id).where(ContactGroup.company_id == company.id, ContactGroup.name == name)
    ).first()
    if taken is not None:
        raise Conflict(f"group {name!r} already exists in {company.name!r}")
    row = ContactGroup(company_id=company.id, name=name, description=description)
    session.add(row)
    session.flush()
    return row


def list_groups(session: Session, company: Company) -> list[dict[str, Any]]:
    counts = dict(
        session.exec(
            select(ContactGroupMember.group_id, func.count())
            .join(ContactGroup, ContactGroup.id == ContactGroupMember.group_id)
            .where(ContactGroup.company_id == company.id)
            .group_by(ContactGroupMember.group_id)
        ).all()
    )
    rows = session.exec(select(ContactGroup).where(ContactGroup.company_id == company.id).order_by(ContactGroup.name))
    return [group_dict(g, counts.get(g.id, 0)) for g in rows]


def group_dict(g: ContactGroup, members: int | None = None) -> dict[str, Any]:
    data = {"id": g.id, "company_id": g.company_id, "name": g.name, "description": g.description}
    if members is not None:
        data["contacts"] = members
    data["created_at"] = iso(g.created_at)
    return data


def rename_group(
    session: Session, g: ContactGroup, *, name: str | None = None, description: str | None = None
) -> ContactGroup:
    if name is not None and name.strip() != g.name:
        name = name.strip()
        if not name:
            raise InvalidInput("name: is required")
        taken = session.exec(
            select(ContactGroup.id).where(ContactGroup.company_id == g.company_id, ContactGroup.name == name)
        ).first()
        if taken is not None:
            raise Conflict(f"group {name!r} already exists")
        g.name = name
    if description is not None:
        g.description = description or None
    session.flush()
    return g


def _only_group_members(session: Session, group_id: int, contact_ids: list[int] | None = None) -> list[int]:
    """Contacts of this group that are in no other group."""
    m2 = sa.orm.aliased(ContactGroupMember)
    q = (
        select(ContactGroupMember.contact_id)
        .where(ContactGroupMember.group_id == group_id)
        .where(~sa.exists().where(m2.contact_id == ContactGroupMember.contact_id, m2.group_id != group_id))
    )
    if contact_ids is not None:
        q = q.where(col(ContactGroupMember.contact_id).in_(contact_ids))
    return list(session.exec(q))


def delete_group(session: Session, g: ContactGroup, *, delete_orphans: bool = False) -> dict[str, int]:
    """Delete a group. Contacts whose only group it is are refused, or deleted with ``delete_orphans``."""
    orphans = _only_group_members(session, g.id)
    if orphans and not delete_orphans:
        raise Conflict(
            f"group {g.name!r} is the only group of {len(orphans)} contact(s); move them first or use --delete-contacts"
        )
    members = session.exec(select(func.count()).where(ContactGroupMember.group_id == g.id)).one()
    conn = session.connection()
    conn.execute(sa.delete(ContactGroupMember.__table__).where(ContactGroupMember.__table__.c.group_id == g.id))
    deleted = 0
    for start in range(0, len(orphans), 10000):
        chunk = orphans[start : start + 10000]
        conn.execute(
            sa.delete(ContactGroupMember.__table__).where(ContactGroupMember.__table__.c.contact_id.in_(chunk))
        )
        deleted += conn.execute(sa.delete(Contact.__table__).where(Contact.__table__.c.id.in_(chunk))).rowcount
    record(
        session,
        action="delete",
        object_type="contact_group",
        object_id=g.id,
        company_id=g.company_id,
        old={"name": g.name, "members": members, "contacts_deleted": deleted},
    )
    session.delete(g)
    session.flush()
    return {"members": members, "contacts_deleted": deleted}


def _contact_ids(session: Session, company: Company, phones: list[str], default_country: str | None) -> list[int]:
    wanted = [phone(p, default_country) for p in phones]
    found = dict(
        session.exec(
            select(Contact.phone, Contact.id).where(Contact.company_id == company.id, col(Contact.phone).in_(wanted))
        ).all()
    )
    missing = [p for p in wanted if p not in found]
    if missing:
        raise NotFound(f"no contact with phone {', '.join(missing[:10])}")
    return [found[p] for p in wanted]


def _add_members(session: Session, group_id: int, ids: Iterable[int]) -> int:
    ids = list(ids)
    if not ids:
        return 0
    present = set()
    for start in range(0, len(ids), 10000):
        chunk = ids[start : start + 10000]
        present.update(
            session.exec(
                select(ContactGroupMember.contact_id).where(
                    ContactGroupMember.group_id == group_id, col(ContactGroupMember.contact_id).in_(chunk)
                )
            )
        )
    new = [{"contact_id": i, "group_id": group_id} for i in dict.fromkeys(ids) if i not in present]
    if new:
        session.connection().execute(sa.insert(ContactGroupMember.__table__), new)
    return len(new)


def add_members(
    session: Session, g: ContactGroup, *, phones: list[str], default_country: str | None = None
) -> dict[str, int]:
    company = session.get(Company, g.company_id)
    ids = _contact_ids(session, company, phones, default_country)
    added = _add_members(session, g.id, ids)
    record(
        session,
        action="add_members",
        object_type="contact_group",
        object_id=g.id,
        company_id=g.company_id,
        new={"added": added},
    )
    return {"added": added, "already": len(set(ids)) - added}


def remove_members(
    session: Session, g: ContactGroup, *, phones: list[str], default_country: str | None = None
) -> dict[str, int]:
    company = session.get(Company, g.company_id)
    ids = _contact_ids(session, company, phones, default_country)
    lonely = _only_group_members(session, g.id, ids)
    if lonely:
        raise Conflict(f"{len(lonely)} contact(s) are in no other group; a contact must stay in at least one group")
    t = ContactGroupMember.__table__
    removed = session.connection().execute(sa.delete(t).where(t.c.group_id == g.id, t.c.contact_id.in_(ids))).rowcount
    record(
        session,
        action="remove_members",
        object_type="contact_group",
        object_id=g.id,
        company_id=g.company_id,
        new={"removed": removed},
    )
    return {"removed": removed}


def copy_members(session: Session, source: ContactGroup, target: ContactGroup, *, move: bool = False) -> dict[str, int]:
    """Copy (or move) every contact of ``source`` into ``target``."""
    if source.id == target.id:
        raise InvalidInput("source and target are the same group")
    ids = list(session.exec(select(ContactGroupMember.contact_id).where(ContactGroupMember.group_id == source.id)))
    added = _add_members(session, target.id, ids)
    removed = 0
    if move:
        t = ContactGroupMember.__table__
        removed = session.connection().execute(sa.delete(t).where(t.c.group_id == source.id)).rowcount
    record(
        session,
        action="move_members" if move else "copy_members",
        object_type="contact_group",
        object_id=target.id,
        company_id=target.company_id,
        new={"from": source.name, "to": target.name, "added": added, "removed": removed},
    )
    return {"contacts": len(ids), "added": added, "removed_from_source": removed}


# ---------------------------------------------------------------- custom fields


def fields(session: Session, company: Company) -> list[ContactField]:
    return list(
        session.exec(
            select(ContactField)
            .where(ContactField.company_id == company.id)
            .order_by(ContactField.position, ContactField.id)
        )
    )


def field(session: Session, company: Company, ref: str) -> ContactField:
    text = str(ref).strip().strip("{}")
    rows = fields(session, company)
    for f in rows:
        if f.variable == text or f.name == text or (text.isdigit() and f.id == int(text)):
            return f
    var = variable_name(text)
    for f in rows:
        if f.variable == var:
            return f
    raise NotFound(f"custom field {ref!r} not found in {company.name!r}")


def create_field(
    session: Session, company: Company, *, name: str, data_type: str = "text", required: bool = False
) -> ContactField:
    name = (name or "").strip()
    problems: list[Problem] = []
    var = variable_name(name)
    if not name:
        problems.append(Problem("name", "is required"))
    elif not var:
        problems.append(Problem("name", "needs at least one letter or digit (the variable is made from them)"))
    elif var in BASE_COLUMNS or var in ("phone", "groups", "firstname", "lastname"):
        problems.append(Problem("name", f"variable {{{var}}} is a system column"))
    if data_type not in FIELD_TYPES:
        problems.append(Problem("type", f"must be one of {', '.join(FIELD_TYPES)}"))
    require(problems)
    if session.exec(
        select(ContactField.id).where(ContactField.company_id == company.id, ContactField.variable == var)
    ).first():
        raise Conflict(f"a field with variable {{{var}}} already exists in {company.name!r}")
    position = session.exec(
        select(func.coalesce(func.max(ContactField.position), 0)).where(ContactField.company_id == company.id)
    ).one()
    row = ContactField(
        company_id=company.id, name=name, variable=var, data_type=data_type, required=required, position=position + 1
    )
    session.add(row)
    session.flush()
    return row


def update_field(
    session: Session, f: ContactField, *, name: str | None = None, required: bool | None = None
) -> ContactField:
    """Only the name and the required flag change (CON-04); the variable stays."""
    if name is not None:
        if not name.strip():
            raise InvalidInput("name: is required")
        f.name = name.strip()
    if required is not None:
        f.required = required
    session.flush()
    return f


def delete_field(session: Session, f: ContactField) -> int:
    """Delete a field definition and its value on every contact of the company."""
    t = Contact.__table__
    if session.get_bind().dialect.name == "postgresql":
        key = sa.cast(sa.literal(f.variable), sa.Text)
        new_value = t.c.fields.op("-", return_type=t.c.fields.type)(key)
        has = t.c.fields.op("?", return_type=sa.Boolean)(key)
    else:
        new_value = func.json_remove(t.c.fields, f"$.{f.variable}")
        has = func.json_type(t.c.fields, f"$.{f.variable}").is_not(None)
    changed = (
        session.connection()
        .execute(sa.update(t).where(t.c.company_id == f.company_id, has).values(fields=new_value))
        .rowcount
    )
    session.delete(f)
    session.flush()
    return changed


def field_dict(f: ContactField) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": f.name,
        "variable": f.variable,
        "macro": "{" + f.variable + "}",
        "type": f.data_type,
        "required": f.required,
        "position": f.position,
    }


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
        s = StopListEntry.__table__
        blocked = sa.exists().where(s.c.company_id == company.id, s.c.phone == t.c.phone)
        all_blocked = sa.exists().where(s.c.company_id == company.id, s.c.phone == t.c.phone, s.c.sender == ALL_SENDERS)
        conds = {"blocked": blocked, "clear": ~blocked, "all": all_blocked}
        if stoplist not in conds:
            raise InvalidInput("--stoplist must be blocked, clear or all")
        q = q.where(conds[stoplist])
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
        blocks: dict[str, list[str]] = {}
        for p, s in session.exec(
            select(StopListEntry.phone, StopListEntry.sender).where(
                StopListEntry.company_id == company.id, col(StopListEntry.phone).in_(phones)
            )
        ):
            blocks.setdefault(p, []).append(s)
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


# ---------------------------------------------------------------- stop list


def block(session: Session, company: Company, *, phones: list[str], sender_list: list[str]) -> int:
    """Add (phone, sender) blocks; existing blocks are kept (adding is never destructive)."""
    rows = {(p, s) for p in phones for s in sender_list}
    if not rows:
        return 0
    t = StopListEntry.__table__
    existing = set()
    plist = list({p for p, _ in rows})
    for start in range(0, len(plist), 10000):
        existing.update(
            tuple(r)
            for r in session.connection().execute(
                sa.select(t.c.phone, t.c.sender).where(
                    t.c.company_id == company.id, t.c.phone.in_(plist[start : start + 10000])
                )
            )
        )
    from cpaas_cli import clock

    now = clock.now()
    new = [
        {"company_id": company.id, "phone": p, "sender": s, "created_at": now}
        for p, s in rows
        if (p, s) not in existing
    ]
    if new:
        session.connection().execute(sa.insert(t), new)
    record(
        session,
        action="block",
        object_type="stop_list_entry",
        company_id=company.id,
        new={"phones": len(plist), "senders": sender_list, "added": len(new)},
    )
    return len(new)


def unblock(session: Session, company: Company, *, phones: list[str], sender_list: list[str]) -> int:
    """Remove blocks. ``ALL`` in the list removes every block of those phones."""
    t = StopListEntry.__table__
    q = sa.delete(t).where(t.c.company_id == company.id, t.c.phone.in_(phones))
    if ALL_SENDERS not in sender_list:
        q = q.where(t.c.sender.in_(sender_list))
    removed = session.connection().execute(q).rowcount
    record(
        session,
        action="unblock",
        object_type="stop_list_entry",
        company_id=company.id,
        new={"phones": len(phones), "senders": sender_list, "removed": removed},
    )
    return removed


def stoplist_rows(
    session: Session,
    company: Company,
    *,
    phone_text: str | None = None,
    sender: str | None = None,
    default_country: str | None = None,
) -> list[dict[str, Any]]:
    q = select(StopListEntry).where(StopListEntry.company_id == company.id)
    if phone_text:
        q = q.where(StopListEntry.phone == phone(phone_text, default_country))
    if sender:
        q = q.where(StopListEntry.sender == sender_name(sender))
    rows = session.exec(q.order_by(StopListEntry.phone, StopListEntry.sender))
    return [{"phone": r.phone, "sender": r.sender, "created_at": iso(r.created_at)} for r in rows]


def is_blocked(session: Session, company_id: int, phone_number: str, sender: str) -> bool:
    """True when (phone, sender) must not be messaged: a block for that sender or for ALL."""
    return (
        session.exec(
            select(StopListEntry.id).where(
                StopListEntry.company_id == company_id,
                StopListEntry.phone == phone_number,
                col(StopListEntry.sender).in_([sender, ALL_SENDERS]),
            )
        ).first()
        is not None
    )


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
