"""Custom contact fields (CON-04): text, number, date or bool, each with its macro variable.

Renaming a field keeps its variable, so stored values and campaign macros
keep working; deleting one removes its value from every contact.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, func, select

from cpaas_cli.contacts.values import BASE_COLUMNS, variable_name
from cpaas_cli.errors import Conflict, InvalidInput, NotFound, Problem, require
from cpaas_cli.models.contacts import FIELD_TYPES, Contact, ContactField
from cpaas_cli.models.tenancy import Company


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
