"""`cpaas tenant import`: one row per company with its legal entity.

The whole file is validated before anything is written; any bad row stops the
import (all-or-nothing) and every problem is reported with its row and field.
A row may name as parent a company created by an earlier row of the same file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from cpaas_cli.audit.service import record
from cpaas_cli.errors import InvalidInput, NotFound, Problem, require
from cpaas_cli.imports.readers import read_rows
from cpaas_cli.imports.values import parse_bool
from cpaas_cli.models.tenancy import Company
from cpaas_cli.tenancy import service as tenancy

COLUMNS = {
    "name": "company name (required)",
    "type": "client or reseller (required)",
    "parent": "parent company name or id; default the system owner; may be a company of an earlier row",
    "own_legal_entity": "the parent's legal entity that sells to this company; default the parent's default",
    "description": "free text",
    "enabled": "yes/no, default yes",
    "creator_of_resellers": "yes/no (resellers only), default no",
    "le_name": "legal entity name (required)",
    "le_legal_name": "legal company name (required)",
    "le_country": "ISO 3166-1 alpha-2 country of registration (required)",
    "le_tax_id": "tax id",
    "le_legal_id": "registration number (required for resellers)",
    "le_vat_id": "EU VAT id",
    "le_legal_address": "legal address",
    "le_billing_address": "billing address",
    "le_portal": "portal",
}
REQUIRED = ("name", "type", "le_name", "le_legal_name", "le_country")


@dataclass
class PlannedCompany:
    row: int
    name: str
    kind: str
    parent_existing: Company | None
    parent_new: str | None
    own_legal_entity: str | None
    description: str | None
    enabled: bool
    creator_of_resellers: bool
    legal_entity: tenancy.LegalEntityInput


@dataclass
class ImportResult:
    file: str
    rows: int
    companies: int
    legal_entities: int
    dry_run: bool
    created: list[dict[str, Any]] = field(default_factory=list)


def plan(session: Session, path: Path) -> list[PlannedCompany]:
    problems: list[Problem] = []
    planned: list[PlannedCompany] = []
    new_by_name: dict[str, PlannedCompany] = {}
    owner = tenancy.require_owner(session)
    header_checked = False
    for number, data in read_rows(path):
        if not header_checked:
            missing = [c for c in REQUIRED if c not in data]
            unknown = [c for c in data if c not in COLUMNS]
            if missing:
                raise InvalidInput(f"{path.name}: missing columns {', '.join(missing)}")
            if unknown:
                raise InvalidInput(f"{path.name}: unknown columns {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
            header_checked = True
        row_problems: list[Problem] = []
        name = data.get("name", "").strip()
        kind = data.get("type", "").strip().lower()
        if not name:
            row_problems.append(Problem("name", "is required", number))
        if kind not in ("client", "reseller"):
            row_problems.append(Problem("type", f"must be client or reseller, got {data.get('type')!r}", number))
        flags = {}
        for key, default in (("enabled", True), ("creator_of_resellers", False)):
            try:
                flags[key] = parse_bool(data.get(key), default)
            except ValueError as exc:
                row_problems.append(Problem(key, str(exc), number))
        if flags.get("creator_of_resellers") and kind == "client":
            row_problems.append(Problem("creator_of_resellers", "only a reseller can create resellers", number))
        parent_ref = data.get("parent", "").strip()
        parent_existing: Company | None = None
        parent_new: str | None = None
        parent_kind, parent_creator = "owner", True
        if not parent_ref:
            parent_existing = owner
        elif parent_ref in new_by_name:
            parent_new = parent_ref
            p = new_by_name[parent_ref]
            parent_kind, parent_creator = p.kind, p.creator_of_resellers
        else:
            try:
                parent_existing = tenancy.company(session, parent_ref)
            except (InvalidInput, NotFound) as exc:
                row_problems.append(Problem("parent", exc.message, number))
        if parent_existing is not None:
            parent_kind, parent_creator = parent_existing.kind, parent_existing.creator_of_resellers
        if parent_kind == "client":
            row_problems.append(Problem("parent", f"{parent_ref!r} is a client and cannot have companies", number))
        elif kind == "reseller" and parent_kind == "reseller" and not parent_creator:
            row_problems.append(Problem("parent", f"reseller {parent_ref!r} may not create resellers", number))
        own_le_ref = data.get("own_legal_entity", "").strip() or None
        if parent_existing is not None and parent_kind != "client":
            tenancy.seller_legal_entity(session, parent_existing, own_le_ref, row_problems, number)
        elif parent_new is not None and own_le_ref and own_le_ref != new_by_name[parent_new].legal_entity.name:
            row_problems.append(
                Problem(
                    "own_legal_entity",
                    f"{parent_new!r} (created by this file) has no legal entity {own_le_ref!r}",
                    number,
                )
            )
        le = tenancy.LegalEntityInput(
            name=data.get("le_name"),
            legal_name=data.get("le_legal_name"),
            country=data.get("le_country"),
            portal=data.get("le_portal") or None,
            tax_id=data.get("le_tax_id") or None,
            legal_id=data.get("le_legal_id") or None,
            vat_id=data.get("le_vat_id") or None,
            legal_address=data.get("le_legal_address") or None,
            billing_address=data.get("le_billing_address") or None,
            is_default=True,
        )
        row_problems += tenancy.validate_legal_entity(le, company_kind=kind or "client", row=number, prefix="le_")
        if name:
            parent_key = parent_existing.id if parent_existing is not None else parent_new
            duplicate_in_file = any(
                p.name == name and (p.parent_existing.id if p.parent_existing else p.parent_new) == parent_key
                for p in planned
            )
            if duplicate_in_file:
                row_problems.append(Problem("name", f"{name!r} appears twice under the same parent", number))
            elif name in new_by_name:
                row_problems.append(Problem("name", f"{name!r} appears twice in the file", number))
            elif (
                parent_existing is not None
                and session.exec(
                    select(Company.id).where(Company.name == name, Company.parent_id == parent_existing.id)
                ).first()
            ):
                row_problems.append(Problem("name", f"{name!r} already exists under {parent_existing.name!r}", number))
        problems += row_problems
        item = PlannedCompany(
            row=number,
            name=name,
            kind=kind,
            parent_existing=parent_existing,
            parent_new=parent_new,
            own_legal_entity=own_le_ref,
            description=data.get("description") or None,
            enabled=bool(flags.get("enabled", True)),
            creator_of_resellers=bool(flags.get("creator_of_resellers", False)),
            legal_entity=le,
        )
        planned.append(item)
        if name and not row_problems:
            new_by_name[name] = item
    if not header_checked:
        raise InvalidInput(f"{path.name}: the file has no data rows")
    require(problems, path.name)
    return planned


def run(session: Session, path: str | Path, *, dry_run: bool = False) -> ImportResult:
    p = Path(path)
    planned = plan(session, p)
    result = ImportResult(file=str(p), rows=len(planned), companies=0, legal_entities=0, dry_run=dry_run)
    if dry_run:
        result.created = [
            {"row": item.row, "name": item.name, "type": item.kind, "parent": _parent_name(item)} for item in planned
        ]
        return result
    created: dict[str, Company] = {}
    for item in planned:
        parent = item.parent_existing or created[item.parent_new or ""]
        own_le = None
        if item.own_legal_entity:
            own_le = tenancy.legal_entity(session, item.own_legal_entity, company_id=parent.id)
        else:
            own_le = tenancy.default_legal_entity(session, parent.id)
        row = Company(
            name=item.name,
            kind=item.kind,
            parent_id=parent.id,
            own_legal_entity_id=own_le.id if own_le else None,
            description=item.description,
            enabled=item.enabled,
            creator_of_resellers=item.creator_of_resellers,
        )
        session.add(row)
        session.flush()
        tenancy.insert_legal_entity(session, row, item.legal_entity)
        created[item.name] = row
        result.companies += 1
        result.legal_entities += 1
        result.created.append(
            {"row": item.row, "id": row.id, "name": row.name, "type": row.kind, "parent": parent.name}
        )
    record(
        session,
        action="import",
        object_type="company",
        new={"file": str(p), "companies": result.companies, "legal_entities": result.legal_entities},
    )
    return result


def _parent_name(item: PlannedCompany) -> str:
    if item.parent_existing is not None:
        return item.parent_existing.name
    return item.parent_new or ""
