"""`cpaas contacts …`: contacts, groups, custom fields, the stop list and imports."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from cpaas_cli.cli.context import ForceOpt, OutputOpt, confirm, emit, out_target, say, session, state
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt
from cpaas_cli.contacts import importer
from cpaas_cli.contacts import service as contacts
from cpaas_cli.errors import InvalidInput
from cpaas_cli.exports.writers import write_rows
from cpaas_cli.imports.readers import DEFAULT_MAX_BYTES, read_rows

app = typer.Typer(no_args_is_help=True)
group_app = typer.Typer(no_args_is_help=True)
field_app = typer.Typer(no_args_is_help=True)
stop_app = typer.Typer(no_args_is_help=True)
app.add_typer(group_app, name="group", help="Contact groups (a contact is always in at least one).")
app.add_typer(field_app, name="field", help="Custom contact fields (text, number, date, bool).")
app.add_typer(stop_app, name="stoplist", help="Stop list: (phone, sender ID or ALL) blocks.")

CountryOpt = Annotated[
    str | None, typer.Option("--default-country", help="ISO country for numbers written without a country code.")
]
CONTACT_COLUMNS = ["id", "phone", "first_name", "last_name", "groups", "blocked_senders", "fields"]
EXPORT_COLUMNS = [
    "phone",
    "first_name",
    "last_name",
    "birthday",
    "gender",
    "comments",
    "groups",
    "blocked_senders",
    "fields",
    "created_at",
    "updated_at",
]


class Mode(str, Enum):
    upsert = "upsert"
    new_only = "new-only"
    update_only = "update-only"


class FieldType(str, Enum):
    text = "text"
    number = "number"
    date = "date"
    bool = "bool"


class StopState(str, Enum):
    blocked = "blocked"
    clear = "clear"
    all = "all"


def _pairs(items: list[str] | None, opt: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{opt} {item!r}: use NAME=VALUE")
        out[key.strip()] = value
    return out


def _values(first_name, last_name, birthday, gender, comments) -> dict[str, str | None]:
    return {
        "first_name": first_name,
        "last_name": last_name,
        "birthday": birthday,
        "gender": gender,
        "comments": comments,
    }


# ---------------------------------------------------------------- contacts


@app.command("add")
def add(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="Phone number (+34…, 0034…, or national with --default-country).")],
    company: CompanyOpt,
    group: Annotated[list[str], typer.Option("--group", "-g", help="Group (repeat for several; at least one).")],
    first_name: Annotated[str | None, typer.Option(help="First name.")] = None,
    last_name: Annotated[str | None, typer.Option(help="Last name.")] = None,
    birthday: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD.")] = None,
    gender: Annotated[str | None, typer.Option(help="male, female or other.")] = None,
    comments: Annotated[str | None, typer.Option(help="Free text.")] = None,
    field: Annotated[list[str] | None, typer.Option("--field", "-f", help="Custom field value NAME=VALUE.")] = None,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Add a contact to one or more groups."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        row = contacts.create_contact(
            s,
            owner,
            phone_text=phone,
            groups=group,
            values=_values(first_name, last_name, birthday, gender, comments),
            fields_in=_pairs(field, "--field"),
            default_country=default_country,
        )
        data = contacts.contact_dict(s, row)
    say(ctx, f"added contact {data['phone']} (#{data['id']})")
    emit(ctx, data, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyOpt,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="In any of these groups.")] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", "-f", help="Custom field filter: NAME=VALUE, NAME>VALUE, NAME!=VALUE…"),
    ] = None,
    stoplist: Annotated[
        StopState | None, typer.Option(help="blocked (any block), clear (no block) or all (blocked for ALL senders).")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="Phone contains these digits.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0: no limit).")] = 1000,
    output: OutputOpt = None,
) -> None:
    """List contacts, filtered by group, custom field values and stop-list state."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        q = contacts.contacts_query(
            s, owner, groups=group, field_filters=field, stoplist=stoplist.value if stoplist else None, phone_like=phone
        )
        data = list(contacts.iter_contact_dicts(s, owner, q, limit=limit or None))
    emit(ctx, data, output=output, columns=CONTACT_COLUMNS)


@app.command("show")
def show(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="Phone number or #id.")],
    company: CompanyOpt,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Show one contact with its groups, blocked senders and custom fields."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        data = contacts.contact_dict(s, contacts.contact(s, owner, phone, default_country))
    emit(ctx, data, output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="Phone number or #id of the contact.")],
    company: CompanyOpt,
    new_phone: Annotated[str | None, typer.Option("--phone", help="New phone number.")] = None,
    first_name: Annotated[str | None, typer.Option(help="First name ('' clears it).")] = None,
    last_name: Annotated[str | None, typer.Option(help="Last name ('' clears it).")] = None,
    birthday: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD ('' clears it).")] = None,
    gender: Annotated[str | None, typer.Option(help="male, female or other ('' clears it).")] = None,
    comments: Annotated[str | None, typer.Option(help="Free text ('' clears it).")] = None,
    field: Annotated[
        list[str] | None, typer.Option("--field", "-f", help="Custom field NAME=VALUE (NAME= clears it).")
    ] = None,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Change a contact."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        row = contacts.contact(s, owner, phone, default_country)
        row = contacts.update_contact(
            s,
            row,
            phone_text=new_phone,
            values=_values(first_name, last_name, birthday, gender, comments),
            fields_in=_pairs(field, "--field"),
            default_country=default_country,
        )
        data = contacts.contact_dict(s, row)
    emit(ctx, data, output=output)


@app.command("delete")
def delete(
    ctx: typer.Context,
    phones: Annotated[list[str], typer.Argument(help="Phone numbers or #ids.")],
    company: CompanyOpt,
    default_country: CountryOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete contacts (their stop-list blocks stay: they belong to the number)."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        rows = [contacts.contact(s, owner, p, default_country) for p in phones]
        confirm(ctx, f"Delete {len(rows)} contact(s)?", yes)
        shown = [r.phone for r in rows]
        n = contacts.delete_contacts(s, rows)
    emit(ctx, {"deleted": n, "phones": shown}, output=output)


@app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Output file (.csv, .xlsx or .jsonl).")],
    company: CompanyOpt,
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="Only contacts in these groups.")] = None,
    field: Annotated[list[str] | None, typer.Option("--field", "-f", help="Custom field filter.")] = None,
    stoplist: Annotated[StopState | None, typer.Option(help="blocked, clear or all.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, xlsx or jsonl (default: the file suffix).")] = None,
    force: ForceOpt = False,
    output: OutputOpt = None,
) -> None:
    """Export contacts to a CSV, XLSX or JSONL file (phone as +E.164, custom fields as one column each)."""
    out_target(ctx, file, force=force, option="file")
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        variables = [f.variable for f in contacts.fields(s, owner)]
        q = contacts.contacts_query(
            s, owner, groups=group, field_filters=field, stoplist=stoplist.value if stoplist else None
        )

        def rows():
            for d in contacts.iter_contact_dicts(s, owner, q):
                custom = d.pop("fields")
                d["phone"] = "+" + d["phone"]  # with the +, so the file imports back without a default country
                d.update({v: custom.get(v) for v in variables})
                yield d

        columns = [c for c in EXPORT_COLUMNS if c != "fields"] + variables
        n = write_rows(file, rows(), columns, fmt)
    say(ctx, f"exported {n} contacts to {file}")
    emit(ctx, {"file": file, "contacts": n}, output=output)


def _progress(ctx: typer.Context):
    """A rich progress bar on stderr when it is a terminal; None otherwise."""
    if state(ctx).quiet or not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, int] = {}

    def callback(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(
                {"validate": "reading", "stage": "staging", "write": "writing"}[phase], total=total
            )
        bar.update(tasks[phase], completed=done, total=total)

    return bar, callback


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="CSV (any delimiter/encoding), XLSX or JSONL file.")],
    company: CompanyOpt,
    group: Annotated[str, typer.Option("--group", "-g", help="Group the contacts go into.")],
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            "-m",
            help="TARGET=COLUMN: phone (required), first_name, last_name, birthday, gender, comments, or field:NAME.",
        ),
    ] = None,
    create_group: Annotated[
        bool, typer.Option("--create-group", help="Create the group if it does not exist.")
    ] = False,
    mode: Annotated[
        Mode, typer.Option(help="upsert, new-only (skip known phones) or update-only (skip new).")
    ] = Mode.upsert,
    stoplist: Annotated[
        str,
        typer.Option(
            help="Stop-listed numbers: exclude (default), unblock:SID[,SID] or add:SID[,SID]; SID may be ALL."
        ),
    ] = "exclude",
    default_country: CountryOpt = None,
    sheet: Annotated[str | None, typer.Option(help="XLSX sheet name (default the first).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count; write nothing.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows and leave the bad ones out.")
    ] = False,
    rejects: Annotated[str | None, typer.Option(help="Write each bad row with its reason to this CSV file.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --rejects file if it exists.")] = False,
    max_size: Annotated[
        float | None, typer.Option(help="Largest file accepted, in MB (default 100, config contacts.import_max_mb).")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Import contacts from a file into a group.

    The whole file is checked first; by default any bad row stops the import
    (exit 4, every bad row listed) and nothing is written. The write is one
    transaction. Every import is recorded (see `cpaas contacts import-history`).
    """
    maps = importer.parse_mapping(mapping or [])
    limit_mb = max_size if max_size is not None else state(ctx).settings.section("contacts").get("import_max_mb")
    max_bytes = int(float(limit_mb) * 1024 * 1024) if limit_mb is not None else DEFAULT_MAX_BYTES
    if rejects is not None:
        out_target(ctx, rejects, force=force, inputs=(file,), option="--rejects")
    bar, callback = _progress(ctx)
    with session(ctx) as s:
        if bar is not None:
            bar.start()
        try:
            result = importer.run(
                s,
                file,
                company=company,
                group=group,
                mapping=maps,
                mode=mode.value,
                stoplist=stoplist,
                create_group=create_group,
                default_country=default_country,
                dry_run=dry_run,
                skip_invalid=skip_invalid,
                rejects=rejects,
                sheet=sheet,
                max_bytes=max_bytes,
                progress=callback,
            )
        finally:
            if bar is not None:
                bar.stop()
        if dry_run:
            s.rollback()
    verb = "would import" if dry_run else "imported"
    say(
        ctx,
        f"{verb} {file}: {result.inserted} new, {result.updated} updated, {result.skipped} skipped, "
        f"{result.rejected} rejected, {result.duplicates} duplicates, {result.stop_listed} stop-listed",
    )
    emit(ctx, result.as_dict(), output=output)


@app.command("import-history")
def import_history(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    output: OutputOpt = None,
) -> None:
    """Past contact imports with their counts."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company) if company else None
        data = contacts.import_history(s, owner, limit=limit)
    emit(
        ctx,
        data,
        output=output,
        columns=[
            "id",
            "finished_at",
            "file",
            "group",
            "mode",
            "stoplist",
            "read",
            "inserted",
            "updated",
            "skipped",
            "rejected",
            "duplicates",
            "stop_listed",
        ],
    )


# ---------------------------------------------------------------- groups

GroupArg = Annotated[str, typer.Argument(help="Group id or name.")]


@group_app.command("add")
def group_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Group name (unique in the company).")],
    company: CompanyOpt,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    output: OutputOpt = None,
) -> None:
    """Create a group."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        data = contacts.group_dict(contacts.create_group(s, owner, name=name, description=description), 0)
    emit(ctx, data, output=output)


@group_app.command("list")
def group_list(ctx: typer.Context, company: CompanyOpt, output: OutputOpt = None) -> None:
    """List groups with their number of contacts."""
    with session(ctx) as s:
        data = contacts.list_groups(s, contacts.client_company(s, company))
    emit(ctx, data, output=output, columns=["id", "name", "contacts", "description"])


@group_app.command("rename")
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
        owner = contacts.client_company(s, company)
        g = contacts.rename_group(s, contacts.group(s, owner, group), name=name, description=description)
        data = contacts.group_dict(g)
    emit(ctx, data, output=output)


@group_app.command("delete")
def group_delete(
    ctx: typer.Context,
    group: GroupArg,
    company: CompanyOpt,
    delete_contacts: Annotated[
        bool, typer.Option("--delete-contacts", help="Also delete contacts that are in no other group.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a group (refused while it is the only group of some contact, unless --delete-contacts)."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        g = contacts.group(s, owner, group)
        confirm(ctx, f"Delete group {g.name!r}?", yes)
        name = g.name
        counts = contacts.delete_group(s, g, delete_orphans=delete_contacts)
    emit(ctx, {"deleted": name, **counts}, output=output)


def _members(ctx, group, company, phones, default_country, output, fn) -> None:
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        data = fn(s, contacts.group(s, owner, group), phones=phones, default_country=default_country)
    emit(ctx, data, output=output)


PhonesArg = Annotated[list[str], typer.Argument(help="Phone numbers of existing contacts.")]


@group_app.command("add-members")
def group_add_members(
    ctx: typer.Context,
    group: GroupArg,
    phones: PhonesArg,
    company: CompanyOpt,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Add existing contacts to a group."""
    _members(ctx, group, company, phones, default_country, output, contacts.add_members)


@group_app.command("remove-members")
def group_remove_members(
    ctx: typer.Context,
    group: GroupArg,
    phones: PhonesArg,
    company: CompanyOpt,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Take contacts out of a group (refused for a contact's last group)."""
    _members(ctx, group, company, phones, default_country, output, contacts.remove_members)


def _copy(ctx, source, target, company, output, move: bool) -> None:
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        data = contacts.copy_members(s, contacts.group(s, owner, source), contacts.group(s, owner, target), move=move)
    emit(ctx, data, output=output)


@group_app.command("copy")
def group_copy(
    ctx: typer.Context,
    source: GroupArg,
    target: Annotated[str, typer.Argument(help="Target group.")],
    company: CompanyOpt,
    output: OutputOpt = None,
) -> None:
    """Add every contact of one group to another."""
    _copy(ctx, source, target, company, output, False)


@group_app.command("move")
def group_move(
    ctx: typer.Context,
    source: GroupArg,
    target: Annotated[str, typer.Argument(help="Target group.")],
    company: CompanyOpt,
    output: OutputOpt = None,
) -> None:
    """Move every contact of one group to another (the source group is left empty)."""
    _copy(ctx, source, target, company, output, True)


# ---------------------------------------------------------------- fields


@field_app.command("add")
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
        owner = contacts.client_company(s, company)
        data = contacts.field_dict(
            contacts.create_field(s, owner, name=name, data_type=data_type.value, required=required)
        )
    emit(ctx, data, output=output)


@field_app.command("list")
def field_list(ctx: typer.Context, company: CompanyOpt, output: OutputOpt = None) -> None:
    """List custom fields."""
    with session(ctx) as s:
        data = [contacts.field_dict(f) for f in contacts.fields(s, contacts.client_company(s, company))]
    emit(ctx, data, output=output, columns=["id", "name", "macro", "type", "required"])


@field_app.command("update")
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
        owner = contacts.client_company(s, company)
        data = contacts.field_dict(
            contacts.update_field(s, contacts.field(s, owner, field), name=name, required=required)
        )
    emit(ctx, data, output=output)


@field_app.command("delete")
def field_delete(
    ctx: typer.Context,
    field: Annotated[str, typer.Argument(help="Field name, variable or id.")],
    company: CompanyOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a custom field and its values on every contact."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        f = contacts.field(s, owner, field)
        confirm(ctx, f"Delete field {f.name!r} and its values?", yes)
        var = f.variable
        n = contacts.delete_field(s, f)
    emit(ctx, {"deleted": var, "contacts_changed": n}, output=output)


# ---------------------------------------------------------------- stop list

SenderOpt = Annotated[list[str], typer.Option("--sender", "-s", help="Sender ID, or ALL (repeat or comma-separate).")]


def _phones(phones: list[str], default_country: str | None) -> list[str]:
    return list(dict.fromkeys(contacts.phone(p, default_country) for p in phones))


@stop_app.command("add")
def stop_add(
    ctx: typer.Context,
    phones: Annotated[list[str], typer.Argument(help="Phone numbers.")],
    company: CompanyOpt,
    sender: SenderOpt,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Block phone numbers for sender IDs (existing blocks are kept)."""
    _change_blocks(ctx, contacts.block, "added", phones, company, sender, default_country, output)


def _change_blocks(ctx, change, key, phones, company, sender, default_country, output) -> None:
    """stop-list add/remove: ``change`` is contacts.block or contacts.unblock."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        n = change(s, owner, phones=_phones(phones, default_country), sender_list=contacts.senders(sender))
    emit(ctx, {key: n}, output=output)


@stop_app.command("remove")
def stop_remove(
    ctx: typer.Context,
    phones: Annotated[list[str], typer.Argument(help="Phone numbers.")],
    company: CompanyOpt,
    sender: SenderOpt,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Unblock phone numbers for sender IDs (ALL removes every block of the number)."""
    _change_blocks(ctx, contacts.unblock, "removed", phones, company, sender, default_country, output)


@stop_app.command("list")
def stop_list(
    ctx: typer.Context,
    company: CompanyOpt,
    phone: Annotated[str | None, typer.Option(help="Only this number.")] = None,
    sender: Annotated[str | None, typer.Option(help="Only this sender ID (or ALL).")] = None,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """List stop-list blocks."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        data = contacts.stoplist_rows(s, owner, phone_text=phone, sender=sender, default_country=default_country)
    emit(ctx, data, output=output, columns=["phone", "sender", "created_at"])


@stop_app.command("import")
def stop_import(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="CSV, XLSX or JSONL with a phone column.")],
    company: CompanyOpt,
    sender: SenderOpt,
    column: Annotated[str, typer.Option("--column", help="The phone column.")] = "phone",
    default_country: CountryOpt = None,
    sheet: Annotated[str | None, typer.Option(help="XLSX sheet name.")] = None,
    output: OutputOpt = None,
) -> None:
    """Block every number of a file for sender IDs; all or nothing (any bad number: exit 4)."""
    from cpaas_cli.errors import Problem, require

    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        sids = contacts.senders(sender)
        numbers: list[str] = []
        problems: list[Problem] = []
        for row, data in read_rows(file, sheet=sheet, max_bytes=DEFAULT_MAX_BYTES):
            if column not in data:
                raise InvalidInput(f"{file}: no column {column!r} (columns: {', '.join(data)})")
            try:
                numbers.append(contacts.phone(data[column], default_country, row=row))
            except InvalidInput as exc:
                problems.append(Problem(column, exc.message.split(": ", 2)[-1], row))
        require(problems, file)
        if not numbers and not problems:
            raise InvalidInput(f"{file}: the file has no data rows")
        n = contacts.block(s, owner, phones=list(dict.fromkeys(numbers)), sender_list=sids)
    emit(ctx, {"numbers": len(set(numbers)), "added": n}, output=output)
