"""`cpaas contacts group …`: contact groups and their members."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, confirm, emit, session
from cpaas_cli.cli.options import CompanyOpt, DefaultCountryOpt
from cpaas_cli.contacts import groups as contact_groups
from cpaas_cli.contacts.service import client_company

app = typer.Typer(no_args_is_help=True)

GroupArg = Annotated[str, typer.Argument(help="Group id or name.")]


@app.command("add")
def group_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Group name (unique in the company).")],
    company: CompanyOpt,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    output: OutputOpt = None,
) -> None:
    """Create a group."""
    with session(ctx) as s:
        owner = client_company(s, company)
        data = contact_groups.group_dict(contact_groups.create_group(s, owner, name=name, description=description), 0)
    emit(ctx, data, output=output)


@app.command("list")
def group_list(ctx: typer.Context, company: CompanyOpt, output: OutputOpt = None) -> None:
    """List groups with their number of contacts."""
    with session(ctx) as s:
        data = contact_groups.list_groups(s, client_company(s, company))
    emit(ctx, data, output=output, columns=["id", "name", "contacts", "description"])


@app.command("rename")
def group_rename(
    ctx: typer.Context,
    group: GroupArg,
    company: CompanyOpt,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description ('' clears it).")] = None,
    output: OutputOpt = None,
) -> None:
    """Rename a group or change its description."""
    with session(ctx) as s:
        owner = client_company(s, company)
        g = contact_groups.rename_group(s, contact_groups.group(s, owner, group), name=name, description=description)
        data = contact_groups.group_dict(g)
    emit(ctx, data, output=output)


@app.command("delete")
def group_delete(
    ctx: typer.Context,
    group: GroupArg,
    company: CompanyOpt,
    delete_contacts: Annotated[
        bool, typer.Option("--delete-contacts", help="Also delete contacts that are in no other group.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a group (refused while it is the only group of some contact, unless --delete-contacts)."""
    with session(ctx) as s:
        owner = client_company(s, company)
        g = contact_groups.group(s, owner, group)
        confirm(ctx, f"Delete group {g.name!r}?", yes)
        name = g.name
        counts = contact_groups.delete_group(s, g, delete_orphans=delete_contacts)
    emit(ctx, {"deleted": name, **counts}, output=output)


def _members(ctx, group, company, phones, default_country, output, fn) -> None:
    with session(ctx) as s:
        owner = client_company(s, company)
        data = fn(s, contact_groups.group(s, owner, group), phones=phones, default_country=default_country)
    emit(ctx, data, output=output)


PhonesArg = Annotated[list[str], typer.Argument(help="Phone numbers of existing contacts.")]


@app.command("add-members")
def group_add_members(
    ctx: typer.Context,
    group: GroupArg,
    phones: PhonesArg,
    company: CompanyOpt,
    default_country: DefaultCountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Add existing contacts to a group."""
    _members(ctx, group, company, phones, default_country, output, contact_groups.add_members)


@app.command("remove-members")
def group_remove_members(
    ctx: typer.Context,
    group: GroupArg,
    phones: PhonesArg,
    company: CompanyOpt,
    default_country: DefaultCountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Take contacts out of a group (refused for a contact's last group)."""
    _members(ctx, group, company, phones, default_country, output, contact_groups.remove_members)


def _copy(ctx, source, target, company, output, move: bool) -> None:
    with session(ctx) as s:
        owner = client_company(s, company)
        data = contact_groups.copy_members(
            s, contact_groups.group(s, owner, source), contact_groups.group(s, owner, target), move=move
        )
    emit(ctx, data, output=output)


@app.command("copy")
def group_copy(
    ctx: typer.Context,
    source: GroupArg,
    target: Annotated[str, typer.Argument(help="Target group.")],
    company: CompanyOpt,
    output: OutputOpt = None,
) -> None:
    """Add every contact of one group to another."""
    _copy(ctx, source, target, company, output, False)


@app.command("move")
def group_move(
    ctx: typer.Context,
    source: GroupArg,
    target: Annotated[str, typer.Argument(help="Target group.")],
    company: CompanyOpt,
    output: OutputOpt = None,
) -> None:
    """Move every contact of one group to another (the source group is left empty)."""
    _copy(ctx, source, target, company, output, True)
