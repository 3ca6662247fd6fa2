"""Banks and bank accounts: a bank belongs to the owner or a reseller and is
visible to the companies under it; an account belongs to a legal entity.

Services take a Session first, keyword-only arguments after it, and never
commit: the command owns the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli.errors import Conflict, NotFound, Problem, require
from cpaas_cli.geo import CountryError, check_country
from cpaas_cli.models.tenancy import Bank, BankAccount, Company, LegalEntity
from cpaas_cli.refs import by_ref
from cpaas_cli.tenancy import service as tenancy


def add_bank(
    session: Session,
    *,
    name: str,
    country: str,
    address: str,
    owner_ref: str | int | None = None,
    description: str | None = None,
    swift: str | None = None,
    branch_code: str | None = None,
    bank_code: str | None = None,
) -> Bank:
    problems: list[Problem] = []
    tenancy.check_name(name, "name", problems)
    try:
        country = check_country(country)
    except CountryError as exc:
        problems.append(Problem("country", str(exc)))
    if not (address or "").strip():
        problems.append(Problem("address", "is required"))
    if swift and not (len(swift) in (8, 11) and swift.isalnum()):
        problems.append(Problem("swift", f"a SWIFT/BIC code has 8 or 11 letters and digits, got {swift!r}"))
    owner = tenancy.company(session, owner_ref) if owner_ref is not None else tenancy.require_owner(session)
    if owner.kind == "client":
        problems.append(Problem("owner", "banks are kept by the owner or a reseller, not by a client"))
    require(problems)
    if session.exec(select(Bank.id).where(Bank.owner_company_id == owner.id, Bank.name == name.strip())).first():
        raise Conflict(f"{owner.name!r} already has a bank named {name!r}")
    row = Bank(
        owner_company_id=owner.id,
        name=name.strip(),
        country=country,
        address=address.strip(),
        description=description,
        swift=swift.upper() if swift else None,
        branch_code=branch_code,
        bank_code=bank_code,
    )
    session.add(row)
    session.flush()
    return row


def visible_banks(session: Session, company_row: Company) -> list[Bank]:
    """Banks a company may use: those kept by itself and by the companies above it."""
    ids = [company_row.id] + [a.id for a in tenancy.ancestors(session, company_row)]
    return list(session.exec(select(Bank).where(col(Bank.owner_company_id).in_(ids)).order_by(Bank.id)))


def list_banks(session: Session, *, owner_ref: str | int | None = None) -> list[Bank]:
    q = select(Bank)
    if owner_ref is not None:
        q = q.where(Bank.owner_company_id == tenancy.company(session, owner_ref).id)
    return list(session.exec(q.order_by(Bank.id)))


def bank_dict(session: Session, row: Bank) -> dict[str, Any]:
    owner = session.get(Company, row.owner_company_id)
    return {
        "id": row.id,
        "name": row.name,
        "owner_company_id": row.owner_company_id,
        "owner": owner.name if owner else None,
        "country": row.country,
        "address": row.address,
        "swift": row.swift,
        "branch_code": row.branch_code,
        "bank_code": row.bank_code,
        "description": row.description,
    }


def add_bank_account(
    session: Session,
    *,
    company_ref: str | int,
    legal_entity_ref: str | int | None,
    bank_ref: str | int,
    name: str,
    account_holder: str,
    account_number: str,
) -> BankAccount:
    owner = tenancy.company(session, company_ref)
    problems: list[Problem] = []
    tenancy.check_name(name, "name", problems)
    if not (account_holder or "").strip():
        problems.append(Problem("account_holder", "is required"))
    if not (account_number or "").strip():
        problems.append(Problem("account_number", "is required"))
    le = None
    if legal_entity_ref is None:
        le = tenancy.default_legal_entity(session, owner.id)
        if le is None:
            problems.append(Problem("legal_entity", f"{owner.name!r} has no default legal entity; name one"))
    else:
        try:
            le = tenancy.legal_entity(session, legal_entity_ref, company_id=owner.id)
        except NotFound:
            problems.append(Problem("legal_entity", f"{owner.name!r} has no legal entity {legal_entity_ref!r}"))
    banks = visible_banks(session, owner)
    text = str(bank_ref).strip()
    matches = [b for b in banks if str(b.id) == text.lstrip("#") or b.name == text]
    if not matches:
        problems.append(Problem("bank", f"no bank {text!r} kept by {owner.name!r} or the companies above it"))
    elif len(matches) > 1:
        problems.append(Problem("bank", f"bank {text!r} is ambiguous; give its id"))
    require(problems)
    assert le is not None
    if session.exec(
        select(BankAccount.id).where(BankAccount.legal_entity_id == le.id, BankAccount.name == name.strip())
    ).first():
        raise Conflict(f"legal entity {le.name!r} already has a bank account named {name!r}")
    row = BankAccount(
        company_id=owner.id,
        legal_entity_id=le.id,
        bank_id=matches[0].id,
        name=name.strip(),
        account_holder=account_holder.strip(),
        account_number=account_number.strip(),
    )
    session.add(row)
    session.flush()
    return row


def list_bank_accounts(session: Session, *, company_ref: str | int | None = None) -> list[BankAccount]:
    q = select(BankAccount)
    if company_ref is not None:
        q = q.where(BankAccount.company_id == tenancy.company(session, company_ref).id)
    return list(session.exec(q.order_by(BankAccount.id)))


def bank_account(session: Session, ref: str | int, *, company_id: int) -> BankAccount:
    return by_ref(session, BankAccount, ref, what="bank account", where=[BankAccount.company_id == company_id])


def bank_account_dict(session: Session, row: BankAccount) -> dict[str, Any]:
    owner = session.get(Company, row.company_id)
    le = session.get(LegalEntity, row.legal_entity_id)
    bank = session.get(Bank, row.bank_id)
    return {
        "id": row.id,
        "name": row.name,
        "company_id": row.company_id,
        "company": owner.name if owner else None,
        "legal_entity_id": row.legal_entity_id,
        "legal_entity": le.name if le else None,
        "bank_id": row.bank_id,
        "bank": bank.name if bank else None,
        "account_holder": row.account_holder,
        "account_number": row.account_number,
    }
