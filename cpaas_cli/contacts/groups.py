"""Contact groups and their members.

A contact is always in at least one group (CON-02): removing its last group,
or deleting a group that is some contact's only group, is refused unless the
caller asks for those contacts to be deleted too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from cpaas_cli.audit.service import record
from cpaas_cli.contacts.values import phone
from cpaas_cli.errors import Conflict, InvalidInput, NotFound
from cpaas_cli.models.contacts import Contact, ContactGroup, ContactGroupMember
from cpaas_cli.models.tenancy import Company
from cpaas_cli.refs import by_ref
from cpaas_cli.timeutil import iso


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
