"""Tenancy: the company tree (owner → resellers → clients) and legal entities
(banks and bank accounts: ``tenancy/banks.py``).

Services take a Session first, keyword-only arguments after it, and never
commit: the command owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, or_, select

from cpaas_cli.errors import Conflict, NotFound, Problem, require
from cpaas_cli.geo import CountryError, check_country
from cpaas_cli.models.tenancy import Bank, BankAccount, Company, LegalEntity
from cpaas_cli.refs import by_ref
from cpaas_cli.timeutil import iso

DEFAULT_OWNER_NAME = "System owner"


# ---------------------------------------------------------------- companies


def get_owner(session: Session) -> Company | None:
    return session.exec(select(Company).where(Company.kind == "owner")).first()


def ensure_owner(session: Session, name: str | None = None) -> tuple[Company, bool]:
    """Return the system owner, creating it with ``name`` when there is none.

    An owner still called :data:`DEFAULT_OWNER_NAME` (made by a plain `db
    upgrade`) takes the name given; an owner with another name is never renamed
    here: that is a Conflict naming both.
    """
    owner = get_owner(session)
    if owner is None:
        owner = Company(name=name or DEFAULT_OWNER_NAME, kind="owner")
        session.add(owner)
        session.flush()
        return owner, True
    if name and owner.name != name:
        if owner.name != DEFAULT_OWNER_NAME:
            raise Conflict(
                f"this database's system owner is {owner.name!r} (#{owner.id}), not {name!r}; "
                "init names a new owner, it never renames one"
            )
        owner.name = name
        session.flush()
    return owner, False


def require_owner(session: Session) -> Company:
    owner = get_owner(session)
    if owner is None:
        raise NotFound("no system owner yet: run `cpaas db upgrade` or `cpaas init --owner NAME`")
    return owner


def company(session: Session, ref: str | int) -> Company:
    return by_ref(session, Company, ref, what="company")


def default_legal_entity(session: Session, company_id: int) -> LegalEntity | None:
    rows = list(session.exec(select(LegalEntity).where(LegalEntity.company_id == company_id)))
    defaults = [r for r in rows if r.is_default]
    if defaults:
        return defaults[0]
    return rows[0] if len(rows) == 1 else None


def legal_entity(session: Session, ref: str | int, *, company_id: int | None = None) -> LegalEntity:
    where = [LegalEntity.company_id == company_id] if company_id is not None else None
    return by_ref(session, LegalEntity, ref, what="legal entity", where=where)


def check_name(name: str | None, field: str, problems: list[Problem], row: int | None = None) -> None:
    if name is None or not name.strip():
        problems.append(Problem(field, "is required", row))
    elif len(name) > 200:
        problems.append(Problem(field, "is longer than 200 characters", row))


def validate_company_parent(
    session: Session, *, kind: str, parent: Company, field: str = "parent", row: int | None = None
) -> list[Problem]:
    problems: list[Problem] = []
    if kind not in ("reseller", "client"):
        problems.append(Problem("type", f"must be reseller or client, not {kind!r}", row))
        return problems
    if parent.kind == "client":
        problems.append(Problem(field, f"{parent.name!r} is a client; only the owner or a reseller has clients", row))
    if kind == "reseller" and parent.kind == "reseller" and not parent.creator_of_resellers:
        problems.append(
            Problem(
                field, f"reseller {parent.name!r} is not allowed to create resellers (creator of resellers is off)", row
            )
        )
    return problems


def create_company(
    session: Session,
    *,
    name: str,
    kind: str,
    parent: str | int | None = None,
    own_legal_entity: str | int | None = None,
    description: str | None = None,
    enabled: bool = True,
    creator_of_resellers: bool = False,
    moderation: bool = False,
    mo_messages: bool = False,
) -> Company:
    """Create a reseller or a client under the owner (default) or a reseller."""
    problems: list[Problem] = []
    check_name(name, "name", problems)
    parent_row = company(session, parent) if parent is not None else require_owner(session)
    problems += validate_company_parent(session, kind=kind, parent=parent_row)
    if creator_of_resellers and kind != "reseller":
        problems.append(Problem("creator_of_resellers", "only a reseller can create resellers"))
    own_le = seller_legal_entity(session, parent_row, own_legal_entity, problems)
    require(problems)
    _unique_name(session, name.strip(), parent_row.id)
    row = Company(
        name=name.strip(),
        kind=kind,
        parent_id=parent_row.id,
        own_legal_entity_id=own_le.id if own_le else None,
        description=description,
        enabled=enabled,
        creator_of_resellers=creator_of_resellers,
        moderation=moderation,
        mo_messages=mo_messages,
    )
    session.add(row)
    session.flush()
    return row


def seller_legal_entity(
    session: Session,
    seller: Company,
    ref: str | int | None,
    problems: list[Problem],
    row: int | None = None,
    field: str = "own_legal_entity",
) -> LegalEntity | None:
    if ref is not None and str(ref).strip():
        try:
            return legal_entity(session, ref, company_id=seller.id)
        except NotFound:
            problems.append(Problem(field, f"{seller.name!r} has no legal entity {str(ref)!r}", row))
            return None
    found = default_legal_entity(session, seller.id)
    if found is None:
        problems.append(
            Problem(
                field,
                f"{seller.name!r} has no default legal entity; add one with "
                "`cpaas tenant legal-entity add` or name one",
                row,
            )
        )
    return found


def _unique_name(session: Session, name: str, parent_id: int | None, exclude_id: int | None = None) -> None:
    q = select(Company.id).where(Company.name == name, Company.parent_id == parent_id)
    if exclude_id is not None:
        q = q.where(Company.id != exclude_id)
    if session.exec(q).first() is not None:
        raise Conflict(f"a company named {name!r} already exists under the same parent")


def ancestors(session: Session, row: Company) -> list[Company]:
    out, seen = [], {row.id}
    current = row
    while current.parent_id is not None:
        parent = session.get(Company, current.parent_id)
        if parent is None or parent.id in seen:
            break
        out.append(parent)
        seen.add(parent.id)
        current = parent
    return out


def update_company(
    session: Session,
    row: Company,
    *,
    name: str | None = None,
    description: str | None = None,
    parent: str | int | None = None,
    own_legal_entity: str | int | None = None,
    creator_of_resellers: bool | None = None,
    kind: str | None = None,
    moderation: bool | None = None,
    mo_messages: bool | None = None,
) -> Company:
    problems: list[Problem] = []
    if row.kind == "owner" and (parent is not None or kind is not None):
        raise Conflict("the system owner has no parent and keeps its type")
    new_parent = session.get(Company, row.parent_id) if row.parent_id else None
    if parent is not None:
        new_parent = company(session, parent)
        if new_parent.id == row.id or any(a.id == row.id for a in ancestors(session, new_parent)):
            raise Conflict(f"moving {row.name!r} under {new_parent.name!r} would make a cycle in the tenant tree")
    new_kind = kind or row.kind
    if row.kind != "owner" and new_parent is not None and (parent is not None or kind is not None):
        problems += validate_company_parent(session, kind=new_kind, parent=new_parent)
    if new_kind == "client" and row.kind == "reseller":
        children = session.exec(select(func.count()).where(Company.parent_id == row.id)).one()
        if children:
            raise Conflict(f"{row.name!r} has {children} companies under it and cannot become a client")
    if creator_of_resellers and new_kind != "reseller":
        problems.append(Problem("creator_of_resellers", "only a reseller can create resellers"))
    if name is not None:
        check_name(name, "name", problems)
    own_le = None
    if own_legal_entity is not None and new_parent is not None:
        own_le = seller_legal_entity(session, new_parent, own_legal_entity, problems)
    elif parent is not None and new_parent is not None and row.own_legal_entity_id is not None:
        current_le = session.get(LegalEntity, row.own_legal_entity_id)
        if current_le is None or current_le.company_id != new_parent.id:
            own_le = seller_legal_entity(session, new_parent, None, problems)
    require(problems)
    if name is not None or parent is not None:
        _unique_name(
            session,
            (name or row.name).strip(),
            new_parent.id if new_parent else None,
            exclude_id=row.id,
        )
    if name is not None:
        row.name = name.strip()
    if description is not None:
        row.description = description
    if parent is not None and new_parent is not None:
        row.parent_id = new_parent.id
    if own_le is not None:
        row.own_legal_entity_id = own_le.id
    if creator_of_resellers is not None:
        row.creator_of_resellers = creator_of_resellers
    if kind is not None:
        row.kind = kind
    if moderation is not None:
        row.moderation = moderation
    if mo_messages is not None:
        row.mo_messages = mo_messages
    session.flush()
    return row


def set_enabled(session: Session, row: Company, enabled: bool) -> Company:
    if row.kind == "owner" and not enabled:
        raise Conflict("the system owner cannot be disabled")
    row.enabled = enabled
    session.flush()
    return row


def delete_company(session: Session, row: Company) -> dict[str, int]:
    """Delete a company with its legal entities, bank accounts and banks.

    Refused when it is the owner, has companies under it, has agreements or
    anything else refers to it (contacts, sender IDs, campaigns…: named).
    """

    if row.kind == "owner":
        raise Conflict("the system owner cannot be deleted")
    children = session.exec(select(func.count()).where(Company.parent_id == row.id)).one()
    if children:
        raise Conflict(f"{row.name!r} has {children} companies under it; move or delete them first")
    from cpaas_cli.models.agreements import Agreement  # only here: listing companies does not load it

    agreements = list(
        session.exec(
            select(Agreement.code).where(or_(Agreement.company_id == row.id, Agreement.seller_company_id == row.id))
        )
    )
    if agreements:
        raise Conflict(f"{row.name!r} has agreements ({', '.join(agreements)}); close them instead of deleting")
    from cpaas_cli.tenancy.usage import blockers

    blocked = blockers(session, row.id, handled={"company", "agreement", "bank", "bank_account", "legal_entity"})
    if blocked:
        raise Conflict(f"{row.name!r} still has {', '.join(blocked)}; delete those first, or disable the company")
    counts = {"bank_accounts": 0, "banks": 0, "legal_entities": 0}
    for acc in session.exec(select(BankAccount).where(BankAccount.company_id == row.id)):
        session.delete(acc)
        counts["bank_accounts"] += 1
    session.flush()
    for bank in session.exec(select(Bank).where(Bank.owner_company_id == row.id)):
        used = session.exec(select(func.count()).where(BankAccount.bank_id == bank.id)).one()
        if used:
            raise Conflict(f"bank {bank.name!r} of {row.name!r} is used by {used} accounts of other companies")
        session.delete(bank)
        counts["banks"] += 1
    row.own_legal_entity_id = None
    session.flush()
    for le in session.exec(select(LegalEntity).where(LegalEntity.company_id == row.id)):
        _ensure_le_unused(session, le, ignore_company_id=row.id)
        session.delete(le)
        counts["legal_entities"] += 1
    session.flush()
    session.delete(row)
    session.flush()
    return counts


def list_companies(
    session: Session,
    *,
    parent: str | int | None = None,
    kind: str | None = None,
    enabled: bool | None = None,
    name_like: str | None = None,
) -> list[Company]:
    q = select(Company)
    if parent is not None:
        q = q.where(Company.parent_id == company(session, parent).id)
    if kind:
        q = q.where(Company.kind == kind)
    if enabled is not None:
        q = q.where(Company.enabled == enabled)
    if name_like:
        q = q.where(col(Company.name).ilike(f"%{name_like}%"))
    return list(session.exec(q.order_by(Company.id)))


def tree(session: Session, root: str | int | None = None) -> list[dict[str, Any]]:
    """Rows in depth-first order with their depth, for `tenant list --tree`."""
    rows = list(session.exec(select(Company).order_by(Company.id)))
    children: dict[int | None, list[Company]] = {}
    for r in rows:
        children.setdefault(r.parent_id, []).append(r)
    starts = [company(session, root)] if root is not None else children.get(None, [])
    out: list[dict[str, Any]] = []

    def walk(node: Company, depth: int) -> None:
        item = company_dict(session, node)
        item["depth"] = depth
        out.append(item)
        for child in children.get(node.id, []):
            walk(child, depth + 1)

    for start in starts:
        walk(start, 0)
    return out


def agreement_codes(session: Session, row: Company) -> list[str]:
    """Codes of the agreements the company is the client of."""
    from cpaas_cli.models.agreements import Agreement

    return list(session.exec(select(Agreement.code).where(Agreement.company_id == row.id)))


def company_dict(session: Session, row: Company) -> dict[str, Any]:
    parent = session.get(Company, row.parent_id) if row.parent_id else None
    le = session.get(LegalEntity, row.own_legal_entity_id) if row.own_legal_entity_id else None
    return {
        "id": row.id,
        "name": row.name,
        "type": row.kind,
        "parent_id": row.parent_id,
        "parent": parent.name if parent else None,
        "own_legal_entity_id": row.own_legal_entity_id,
        "own_legal_entity": le.name if le else None,
        "enabled": row.enabled,
        "creator_of_resellers": row.creator_of_resellers,
        "moderation": row.moderation,
        "mo_messages": row.mo_messages,
        "description": row.description,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


# ----------------------------------------------------------- legal entities

LE_FIELDS = (
    "name",
    "legal_name",
    "country",
    "portal",
    "tax_id",
    "legal_id",
    "vat_id",
    "legal_address",
    "billing_address",
)


@dataclass
class LegalEntityInput:
    name: str | None
    legal_name: str | None
    country: str | None
    portal: str | None = None
    tax_id: str | None = None
    legal_id: str | None = None
    vat_id: str | None = None
    legal_address: str | None = None
    billing_address: str | None = None
    is_default: bool | None = None


def validate_legal_entity(
    data: LegalEntityInput, *, company_kind: str, row: int | None = None, prefix: str = ""
) -> list[Problem]:
    problems: list[Problem] = []
    check_name(data.name, f"{prefix}name", problems, row)
    if not (data.legal_name or "").strip():
        problems.append(Problem(f"{prefix}legal_name", "is required", row))
    try:
        check_country(data.country or "")
    except CountryError as exc:
        problems.append(Problem(f"{prefix}country", str(exc), row))
    if company_kind in ("owner", "reseller") and not (data.legal_id or "").strip():
        problems.append(
            Problem(f"{prefix}legal_id", "is required for the own legal entity of an owner or reseller", row)
        )
    return problems


def add_legal_entity(session: Session, *, company_ref: str | int, data: LegalEntityInput) -> LegalEntity:
    owner = company(session, company_ref)
    require(validate_legal_entity(data, company_kind=owner.kind))
    return insert_legal_entity(session, owner, data)


def insert_legal_entity(session: Session, owner: Company, data: LegalEntityInput) -> LegalEntity:
    name = (data.name or "").strip()
    if session.exec(select(LegalEntity.id).where(LegalEntity.company_id == owner.id, LegalEntity.name == name)).first():
        raise Conflict(f"{owner.name!r} already has a legal entity named {name!r}")
    first = (
        default_legal_entity(session, owner.id) is None
        and not session.exec(select(LegalEntity.id).where(LegalEntity.company_id == owner.id)).first()
    )
    row = LegalEntity(
        company_id=owner.id,
        name=name,
        legal_name=(data.legal_name or "").strip(),
        country=check_country(data.country or ""),
        portal=data.portal or None,
        tax_id=data.tax_id or None,
        legal_id=data.legal_id or None,
        vat_id=data.vat_id or None,
        legal_address=data.legal_address or None,
        billing_address=data.billing_address or None,
        is_default=bool(data.is_default) or first,
    )
    if row.is_default:
        _clear_default(session, owner.id)
    session.add(row)
    session.flush()
    return row


def _clear_default(session: Session, company_id: int, keep_id: int | None = None) -> None:
    for other in session.exec(select(LegalEntity).where(LegalEntity.company_id == company_id, LegalEntity.is_default)):
        if other.id != keep_id:
            other.is_default = False


def update_legal_entity(session: Session, row: LegalEntity, changes: dict[str, Any]) -> LegalEntity:
    owner = session.get(Company, row.company_id)
    assert owner is not None
    merged = LegalEntityInput(**{f: getattr(row, f) for f in LE_FIELDS})
    for key, value in changes.items():
        if value is not None and key in LE_FIELDS:
            setattr(merged, key, value)
    require(validate_legal_entity(merged, company_kind=owner.kind))
    if (
        merged.name != row.name
        and session.exec(
            select(LegalEntity.id).where(
                LegalEntity.company_id == row.company_id, LegalEntity.name == merged.name, LegalEntity.id != row.id
            )
        ).first()
    ):
        raise Conflict(f"{owner.name!r} already has a legal entity named {merged.name!r}")
    for f in LE_FIELDS:
        value = getattr(merged, f)
        if f == "country":
            value = check_country(value)
        setattr(row, f, value)
    if changes.get("is_default"):
        _clear_default(session, row.company_id, keep_id=row.id)
        row.is_default = True
    session.flush()
    return row


def _ensure_le_unused(session: Session, row: LegalEntity, ignore_company_id: int | None = None) -> None:
    from cpaas_cli.models.agreements import Agreement

    uses = list(
        session.exec(
            select(Agreement.code).where(
                or_(Agreement.legal_entity_id == row.id, Agreement.own_legal_entity_id == row.id)
            )
        )
    )
    if uses:
        raise Conflict(f"legal entity {row.name!r} is used by agreements {', '.join(uses)}")
    q = select(Company.name).where(Company.own_legal_entity_id == row.id)
    if ignore_company_id is not None:
        q = q.where(Company.id != ignore_company_id)
    sellers = list(session.exec(q))
    if sellers:
        raise Conflict(f"legal entity {row.name!r} is the own legal entity of {', '.join(sellers)}")
    accounts = session.exec(select(func.count()).where(BankAccount.legal_entity_id == row.id)).one()
    if accounts and ignore_company_id is None:
        raise Conflict(f"legal entity {row.name!r} has {accounts} bank accounts; delete them first")


def delete_legal_entity(session: Session, row: LegalEntity) -> None:
    _ensure_le_unused(session, row)
    session.delete(row)
    session.flush()


def list_legal_entities(session: Session, *, company_ref: str | int | None = None) -> list[LegalEntity]:
    q = select(LegalEntity)
    if company_ref is not None:
        q = q.where(LegalEntity.company_id == company(session, company_ref).id)
    return list(session.exec(q.order_by(LegalEntity.id)))


def legal_entity_dict(session: Session, row: LegalEntity) -> dict[str, Any]:
    owner = session.get(Company, row.company_id)
    return {
        "id": row.id,
        "company_id": row.company_id,
        "company": owner.name if owner else None,
        **{f: getattr(row, f) for f in LE_FIELDS},
        "is_default": row.is_default,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
