"""`cpaas tenant …`: companies, legal entities, banks and bank accounts."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer
from sqlmodel import func, select

from cpaas_cli.cli.context import OutputOpt, confirm, emit, say, session
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt
from cpaas_cli.models.tenancy import Company
from cpaas_cli.tenancy import banks
from cpaas_cli.tenancy import service as tenancy

app = typer.Typer(no_args_is_help=True)
le_app = typer.Typer(no_args_is_help=True)
bank_app = typer.Typer(no_args_is_help=True)
account_app = typer.Typer(no_args_is_help=True)
reseller_app = typer.Typer(no_args_is_help=True)
app.add_typer(le_app, name="legal-entity", help="Legal entities of a company (own ones for owner and resellers).")
app.add_typer(bank_app, name="bank", help="Banks kept by the owner or a reseller.")
app.add_typer(account_app, name="bank-account", help="Bank accounts of a company's legal entities.")
app.add_typer(reseller_app, name="reseller", help="Provision a reseller in one step (TEN-12).")

COMPANY_COLUMNS = ["id", "name", "type", "parent", "own_legal_entity", "enabled", "creator_of_resellers", "description"]


class Kind(str, Enum):
    client = "client"
    reseller = "reseller"


CompanyArg = Annotated[str, typer.Argument(help="Company id or name.")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Company name (unique under its parent).")],
    kind: Annotated[Kind, typer.Option("--type", help="client or reseller.")] = Kind.client,
    parent: Annotated[
        str | None, typer.Option(help="Parent company (owner or reseller); default the system owner.")
    ] = None,
    own_legal_entity: Annotated[
        str | None,
        typer.Option(help="The parent's legal entity that sells to this company; default the parent's default."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled (no access to interfaces).")] = False,
    creator_of_resellers: Annotated[
        bool, typer.Option("--creator-of-resellers", help="A reseller that may create resellers.")
    ] = False,
    moderation: Annotated[
        bool, typer.Option("--moderation", help="Its campaigns wait for approval (pre-moderation).")
    ] = False,
    mo_messages: Annotated[
        bool, typer.Option("--mo-messages", help="MO messages mode: API messages may ask for replies (acceptMO).")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Create a reseller or client company."""
    with session(ctx) as s:
        row = tenancy.create_company(
            s,
            name=name,
            kind=kind.value,
            parent=parent,
            own_legal_entity=own_legal_entity,
            description=description,
            enabled=not disabled,
            creator_of_resellers=creator_of_resellers,
            moderation=moderation,
            mo_messages=mo_messages,
        )
        data = tenancy.company_dict(s, row)
    say(ctx, f"created {data['type']} {data['name']!r} (#{data['id']})")
    emit(ctx, data, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    parent: Annotated[str | None, typer.Option(help="Only direct children of this company.")] = None,
    kind: Annotated[str | None, typer.Option("--type", help="owner, reseller or client.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Only enabled or only disabled ones.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name contains this text.")] = None,
    as_tree: Annotated[
        bool, typer.Option("--tree", help="The company tree, depth first, with a depth column.")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """List companies."""
    with session(ctx) as s:
        if as_tree:
            data = tenancy.tree(s, parent)
            for item in data:
                item["tree"] = "  " * item["depth"] + item["name"]
            emit(ctx, data, output=output, columns=["id", "tree", "type", "enabled", "own_legal_entity", "depth"])
            return
        rows = tenancy.list_companies(s, parent=parent, kind=kind, enabled=enabled, name_like=name)
        data = [tenancy.company_dict(s, r) for r in rows]
    emit(ctx, data, output=output, columns=COMPANY_COLUMNS)


@app.command("show")
def show(ctx: typer.Context, company: CompanyArg, output: OutputOpt = None) -> None:
    """Show a company with its legal entities, children and agreements."""
    with session(ctx) as s:
        row = tenancy.company(s, company)
        data = tenancy.company_dict(s, row)
        data["legal_entities"] = [
            tenancy.legal_entity_dict(s, le) for le in tenancy.list_legal_entities(s, company_ref=row.id)
        ]
        data["children"] = s.exec(select(func.count()).where(Company.parent_id == row.id)).one()
        data["agreements"] = tenancy.agreement_codes(s, row)
    emit(ctx, data, output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    company: CompanyArg,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    parent: Annotated[str | None, typer.Option(help="Move under this company (refused if it makes a cycle).")] = None,
    own_legal_entity: Annotated[str | None, typer.Option(help="The parent's legal entity that sells to it.")] = None,
    kind: Annotated[Kind | None, typer.Option("--type", help="client or reseller.")] = None,
    creator_of_resellers: Annotated[
        bool | None, typer.Option("--creator-of-resellers/--no-creator-of-resellers", help="May it create resellers.")
    ] = None,
    moderation: Annotated[
        bool | None, typer.Option("--moderation/--no-moderation", help="Campaigns wait for approval, or not.")
    ] = None,
    mo_messages: Annotated[
        bool | None,
        typer.Option(
            "--mo-messages/--no-mo-messages",
            help="MO messages mode (default off): API messages may ask for the replies (acceptMO), or not.",
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Change a company."""
    with session(ctx) as s:
        row = tenancy.update_company(
            s,
            tenancy.company(s, company),
            name=name,
            description=description,
            parent=parent,
            own_legal_entity=own_legal_entity,
            creator_of_resellers=creator_of_resellers,
            kind=kind.value if kind else None,
            moderation=moderation,
            mo_messages=mo_messages,
        )
        data = tenancy.company_dict(s, row)
    emit(ctx, data, output=output)


def _toggle(ctx: typer.Context, company: str, enabled: bool, output) -> None:
    with session(ctx) as s:
        row = tenancy.set_enabled(s, tenancy.company(s, company), enabled)
        data = tenancy.company_dict(s, row)
    say(ctx, f"{'enabled' if enabled else 'disabled'} {data['name']!r}")
    emit(ctx, data, output=output)


@app.command("disable")
def disable(ctx: typer.Context, company: CompanyArg, output: OutputOpt = None) -> None:
    """Block a company (it keeps its data)."""
    _toggle(ctx, company, False, output)


@app.command("enable")
def enable(ctx: typer.Context, company: CompanyArg, output: OutputOpt = None) -> None:
    """Unblock a company."""
    _toggle(ctx, company, True, output)


@app.command("delete")
def delete(
    ctx: typer.Context,
    company: CompanyArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted and change nothing.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a company with its legal entities and bank accounts (refused while it has children or agreements)."""
    with session(ctx) as s:
        row = tenancy.company(s, company)
        data = tenancy.company_dict(s, row)
        if not dry_run:
            confirm(ctx, f"Delete company {row.name!r} (#{row.id})?", yes)
        counts = tenancy.delete_company(s, row)
        data.update({"deleted": not dry_run, **counts})
        if dry_run:
            s.rollback()
    emit(ctx, data, output=output)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="CSV, XLSX or JSONL: one row per company with its legal entity.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show what would be created.")] = False,
    output: OutputOpt = None,
) -> None:
    """Create companies with their legal entities from a file, all or nothing.

    Columns: name, type, parent, own_legal_entity, description, enabled,
    creator_of_resellers, le_name, le_legal_name, le_country, le_tax_id,
    le_legal_id, le_vat_id, le_legal_address, le_billing_address, le_portal.
    """
    from cpaas_cli.tenancy import importer  # file readers: only this command needs them

    with session(ctx) as s:
        result = importer.run(s, file, dry_run=dry_run)
    say(ctx, f"{'would create' if dry_run else 'created'} {result.rows} companies from {file}")
    emit(
        ctx,
        {
            "file": result.file,
            "dry_run": result.dry_run,
            "rows": result.rows,
            "companies": result.companies,
            "legal_entities": result.legal_entities,
            "created": result.created,
        },
        output=output,
    )


# ----------------------------------------------------------------- resellers

PROVISION_COLUMNS = ["step", "object", "id", "name", "detail"]


@reseller_app.command("create")
def reseller_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new reseller company (unique under its parent).")],
    from_file: Annotated[
        str,
        typer.Option(
            "--from-file",
            help="The reseller.yaml document: legal_entity, agreement, admin, and optionally parent, "
            "reselling, services, payment, sender_ids (see sample_data/reseller_demo.yaml).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything and show what would be created; write nothing.")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Create a reseller with everything it needs, all or nothing: the company, its legal
    entity, its purchase agreement attached as its reselling agreement, the parent's
    services enabled, an Admin BackOffice user (invited: its one-time activation token is
    shown once), an opening payment and delegated sender IDs.

    A bad document is refused naming every bad field by its path (services[2].name),
    and nothing is written."""
    from cpaas_cli.tenancy import provision  # the YAML reader and every domain it writes to

    doc = provision.read(from_file)
    with session(ctx) as s:
        result = provision.create(s, name, doc)
        rows = [c.as_dict() for c in result.created]
        if dry_run:
            s.rollback()
            for row in rows:
                row["id"] = None  # ids are only given on commit
    if not dry_run and result.activation_token:
        rows.append(
            {
                "step": 6,
                "object": "activation_token",
                "id": None,
                "name": next(r["name"] for r in rows if r["object"] == "user"),
                "detail": result.activation_token,
            }
        )
        rows.sort(key=lambda r: r["step"])
        say(ctx, "the activation token is shown once; it is not stored in clear (cpaas user activate TOKEN)")
    say(ctx, f"{'dry run: would create' if dry_run else 'created'} reseller {name.strip()!r} ({len(rows)} objects)")
    emit(ctx, rows, output=output, columns=PROVISION_COLUMNS)


# ----------------------------------------------------------- legal entities

LE_COLUMNS = ["id", "company", "name", "legal_name", "country", "legal_id", "vat_id", "is_default"]


@le_app.command("add")
def le_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the legal entity (unique per company).")],
    company: CompanyOpt,
    legal_name: Annotated[str, typer.Option(help="Legal company name.")],
    country: Annotated[str, typer.Option(help="Country of registration, ISO 3166-1 alpha-2.")],
    tax_id: Annotated[str | None, typer.Option(help="Tax id number.")] = None,
    legal_id: Annotated[
        str | None, typer.Option(help="Registration number (required for owner and resellers).")
    ] = None,
    vat_id: Annotated[str | None, typer.Option(help="EU VAT id.")] = None,
    legal_address: Annotated[str | None, typer.Option(help="Legal address.")] = None,
    billing_address: Annotated[str | None, typer.Option(help="Billing address (where invoices go).")] = None,
    portal: Annotated[str | None, typer.Option(help="Portal (reseller legal entities).")] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the company's default legal entity.")] = False,
    output: OutputOpt = None,
) -> None:
    """Add a legal entity to a company (the first one becomes its default)."""
    with session(ctx) as s:
        row = tenancy.add_legal_entity(
            s,
            company_ref=company,
            data=tenancy.LegalEntityInput(
                name=name,
                legal_name=legal_name,
                country=country,
                portal=portal,
                tax_id=tax_id,
                legal_id=legal_id,
                vat_id=vat_id,
                legal_address=legal_address,
                billing_address=billing_address,
                is_default=default,
            ),
        )
        data = tenancy.legal_entity_dict(s, row)
    emit(ctx, data, output=output)


@le_app.command("list")
def le_list(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    output: OutputOpt = None,
) -> None:
    """List legal entities."""
    with session(ctx) as s:
        data = [tenancy.legal_entity_dict(s, r) for r in tenancy.list_legal_entities(s, company_ref=company)]
    emit(ctx, data, output=output, columns=LE_COLUMNS)


def _le(s, ref: str, company: str | None):
    company_id = tenancy.company(s, company).id if company else None
    return tenancy.legal_entity(s, ref, company_id=company_id)


LeArg = Annotated[str, typer.Argument(help="Legal entity id (or name with --company).")]


@le_app.command("show")
def le_show(
    ctx: typer.Context, legal_entity: LeArg, company: CompanyFilterOpt = None, output: OutputOpt = None
) -> None:
    """Show a legal entity."""
    with session(ctx) as s:
        data = tenancy.legal_entity_dict(s, _le(s, legal_entity, company))
    emit(ctx, data, output=output)


@le_app.command("update")
def le_update(
    ctx: typer.Context,
    legal_entity: LeArg,
    company: CompanyFilterOpt = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    legal_name: Annotated[str | None, typer.Option(help="Legal company name.")] = None,
    country: Annotated[str | None, typer.Option(help="ISO 3166-1 alpha-2.")] = None,
    tax_id: Annotated[str | None, typer.Option()] = None,
    legal_id: Annotated[str | None, typer.Option()] = None,
    vat_id: Annotated[str | None, typer.Option()] = None,
    legal_address: Annotated[str | None, typer.Option()] = None,
    billing_address: Annotated[str | None, typer.Option()] = None,
    portal: Annotated[str | None, typer.Option()] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the company's default.")] = False,
    output: OutputOpt = None,
) -> None:
    """Change a legal entity."""
    with session(ctx) as s:
        row = tenancy.update_legal_entity(
            s,
            _le(s, legal_entity, company),
            {
                "name": name,
                "legal_name": legal_name,
                "country": country,
                "tax_id": tax_id,
                "legal_id": legal_id,
                "vat_id": vat_id,
                "legal_address": legal_address,
                "billing_address": billing_address,
                "portal": portal,
                "is_default": default or None,
            },
        )
        data = tenancy.legal_entity_dict(s, row)
    emit(ctx, data, output=output)


@le_app.command("delete")
def le_delete(
    ctx: typer.Context,
    legal_entity: LeArg,
    company: CompanyFilterOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a legal entity that no agreement, company or bank account uses."""
    with session(ctx) as s:
        row = _le(s, legal_entity, company)
        data = tenancy.legal_entity_dict(s, row)
        confirm(ctx, f"Delete legal entity {row.name!r} (#{row.id})?", yes)
        tenancy.delete_legal_entity(s, row)
    data["deleted"] = True
    emit(ctx, data, output=output)


# --------------------------------------------------------- banks, accounts


@bank_app.command("add")
def bank_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Bank name.")],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2.")],
    address: Annotated[str, typer.Option(help="Bank address.")],
    company: CompanyFilterOpt = None,
    description: Annotated[str | None, typer.Option()] = None,
    swift: Annotated[str | None, typer.Option(help="SWIFT/BIC code (8 or 11 characters).")] = None,
    branch_code: Annotated[str | None, typer.Option()] = None,
    bank_code: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = None,
) -> None:
    """Add a bank, kept by --company (an owner or reseller; default the system owner) and
    usable by it and every company below it."""
    with session(ctx) as s:
        row = banks.add_bank(
            s,
            name=name,
            country=country,
            address=address,
            owner_ref=company,
            description=description,
            swift=swift,
            branch_code=branch_code,
            bank_code=bank_code,
        )
        data = banks.bank_dict(s, row)
    emit(ctx, data, output=output)


@bank_app.command("list")
def bank_list(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    output: OutputOpt = None,
) -> None:
    """List banks (with --company: the banks that company keeps)."""
    with session(ctx) as s:
        data = [banks.bank_dict(s, r) for r in banks.list_banks(s, owner_ref=company)]
    emit(ctx, data, output=output, columns=["id", "name", "owner", "country", "swift", "address"])


@account_app.command("add")
def account_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Account name (unique per legal entity).")],
    company: CompanyOpt,
    bank: Annotated[str, typer.Option(help="Bank id or name (kept by the company or one above it).")],
    holder: Annotated[str, typer.Option("--holder", help="Account holder.")],
    number: Annotated[str, typer.Option("--number", help="Account number / IBAN.")],
    legal_entity: Annotated[
        str | None, typer.Option(help="Legal entity of the company; default its default one.")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Add a bank account to a company's legal entity (a client's account or a seller's own account)."""
    with session(ctx) as s:
        row = banks.add_bank_account(
            s,
            company_ref=company,
            legal_entity_ref=legal_entity,
            bank_ref=bank,
            name=name,
            account_holder=holder,
            account_number=number,
        )
        data = banks.bank_account_dict(s, row)
    emit(ctx, data, output=output)


@account_app.command("list")
def account_list(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    output: OutputOpt = None,
) -> None:
    """List bank accounts."""
    with session(ctx) as s:
        data = [banks.bank_account_dict(s, r) for r in banks.list_bank_accounts(s, company_ref=company)]
    emit(
        ctx,
        data,
        output=output,
        columns=["id", "name", "company", "legal_entity", "bank", "account_holder", "account_number"],
    )
