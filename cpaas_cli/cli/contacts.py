"""`cpaas contacts …`: contacts, groups, custom fields, the stop list and imports."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cpaas_cli.cli import contacts_fields, contacts_groups, contacts_stoplist
from cpaas_cli.cli.context import (
    ForceOpt,
    OutputOpt,
    confirm,
    emit,
    one_more,
    out_target,
    progress_bar,
    say,
    session,
    state,
)
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt, DefaultCountryOpt
from cpaas_cli.contacts import importer
from cpaas_cli.contacts import service as contacts
from cpaas_cli.contacts.fields import fields as custom_fields
from cpaas_cli.errors import InvalidInput
from cpaas_cli.exports.writers import write_rows
from cpaas_cli.imports.readers import DEFAULT_MAX_BYTES

app = typer.Typer(no_args_is_help=True)
app.add_typer(contacts_groups.app, name="group", help="Contact groups (a contact is always in at least one).")
app.add_typer(contacts_fields.app, name="field", help="Custom contact fields (text, number, date, bool).")
app.add_typer(contacts_stoplist.app, name="stoplist", help="Stop list: (phone, sender ID or ALL) blocks.")

LIMIT_HINT = "use --limit N (0: no limit) to see more"
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
    default_country: DefaultCountryOpt = None,
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
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many rows (0: no limit).")] = 1000,
    output: OutputOpt = None,
) -> None:
    """List contacts, filtered by group, custom field values and stop-list state."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company)
        q = contacts.contacts_query(
            s, owner, groups=group, field_filters=field, stoplist=stoplist.value if stoplist else None, phone_like=phone
        )
        data = list(contacts.iter_contact_dicts(s, owner, q, limit=one_more(limit or None)))
    emit(ctx, data, output=output, columns=CONTACT_COLUMNS, limit=limit or None, limit_hint=LIMIT_HINT)


@app.command("show")
def show(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="Phone number or #id.")],
    company: CompanyOpt,
    default_country: DefaultCountryOpt = None,
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
    default_country: DefaultCountryOpt = None,
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
    default_country: DefaultCountryOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
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
        variables = [f.variable for f in custom_fields(s, owner)]
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
        n = write_rows(file, rows(), columns, fmt, sheet="Contacts")
    say(ctx, f"exported {n} contacts to {file}")
    emit(ctx, {"file": file, "contacts": n}, output=output)


def _progress(ctx: typer.Context):
    """A progress bar with one task per import phase, and its callback; (None, None) without a terminal."""
    bar = progress_bar(ctx)
    if bar is None:
        return None, None
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
    default_country: DefaultCountryOpt = None,
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
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 100,
    output: OutputOpt = None,
) -> None:
    """Past contact imports with their counts."""
    with session(ctx) as s:
        owner = contacts.client_company(s, company) if company else None
        data = contacts.import_history(s, owner, limit=one_more(limit))
    emit(
        ctx,
        data,
        output=output,
        limit=limit,
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
