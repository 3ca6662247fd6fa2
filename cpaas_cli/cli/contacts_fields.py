"""`cpaas contacts field …`: custom contact fields."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, confirm, emit, session
from cpaas_cli.cli.options import CompanyOpt
from cpaas_cli.contacts import fields as contact_fields
from cpaas_cli.contacts.service import client_company

app = typer.Typer(no_args_is_help=True)


class FieldType(str, Enum):
    text = "text"
    number = "number"
    date = "date"
    bool = "bool"


@app.command("add")
def field_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Field name; the variable is its letters and digits, lowercased.")],
    company: CompanyOpt,
    data_type: Annotated[FieldType, typer.Option("--type", help="text, number, date or bool.")] = FieldType.text,
    required: Annotated[bool, typer.Option("--required", help="Required when a contact is created.")] = False,
    output: OutputOpt = None,
) -> None:
    """Add a custom contact field."""
    with session(ctx) as s:
        owner = client_company(s, company)
        data = contact_fields.field_dict(
            contact_fields.create_field(s, owner, name=name, data_type=data_type.value, required=required)
        )
    emit(ctx, data, output=output)


@app.command("list")
def field_list(ctx: typer.Context, company: CompanyOpt, output: OutputOpt = None) -> None:
    """List custom fields."""
    with session(ctx) as s:
        data = [contact_fields.field_dict(f) for f in contact_fields.fields(s, client_company(s, company))]
    emit(ctx, data, output=output, columns=["id", "name", "macro", "type", "required"])


@app.command("update")
def field_update(
    ctx: typer.Context,
    field: Annotated[str, typer.Argument(help="Field name, variable or id.")],
    company: CompanyOpt,
    name: Annotated[str | None, typer.Option(help="New display name (the variable stays).")] = None,
    required: Annotated[bool | None, typer.Option("--required/--optional", help="Required flag.")] = None,
    output: OutputOpt = None,
) -> None:
    """Rename a custom field or change its required flag."""
    with session(ctx) as s:
        owner = client_company(s, company)
        data = contact_fields.field_dict(
            contact_fields.update_field(s, contact_fields.field(s, owner, field), name=name, required=required)
        )
    emit(ctx, data, output=output)


@app.command("delete")
def field_delete(
    ctx: typer.Context,
    field: Annotated[str, typer.Argument(help="Field name, variable or id.")],
    company: CompanyOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a custom field and its values on every contact."""
    with session(ctx) as s:
        owner = client_company(s, company)
        f = contact_fields.field(s, owner, field)
        confirm(ctx, f"Delete field {f.name!r} and its values?", yes)
        var = f.variable
        n = contact_fields.delete_field(s, f)
    emit(ctx, {"deleted": var, "contacts_changed": n}, output=output)
