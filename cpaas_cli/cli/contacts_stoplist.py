"""`cpaas contacts stoplist …`: (phone, sender ID or ALL) blocks."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.contacts_common import CountryOpt
from cpaas_cli.cli.context import OutputOpt, emit, session
from cpaas_cli.cli.options import CompanyOpt
from cpaas_cli.contacts import stoplist
from cpaas_cli.contacts.service import client_company
from cpaas_cli.contacts.values import phone as phone_number
from cpaas_cli.contacts.values import senders
from cpaas_cli.errors import InvalidInput
from cpaas_cli.imports.readers import DEFAULT_MAX_BYTES, read_rows

app = typer.Typer(no_args_is_help=True)

SenderOpt = Annotated[list[str], typer.Option("--sender", "-s", help="Sender ID, or ALL (repeat or comma-separate).")]


def _phones(phones: list[str], default_country: str | None) -> list[str]:
    return list(dict.fromkeys(phone_number(p, default_country) for p in phones))


@app.command("add")
def stop_add(
    ctx: typer.Context,
    phones: Annotated[list[str], typer.Argument(help="Phone numbers.")],
    company: CompanyOpt,
    sender: SenderOpt,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Block phone numbers for sender IDs (existing blocks are kept)."""
    _change_blocks(ctx, stoplist.block, "added", phones, company, sender, default_country, output)


def _change_blocks(ctx, change, key, phones, company, sender, default_country, output) -> None:
    """stop-list add/remove: ``change`` is stoplist.block or stoplist.unblock."""
    with session(ctx) as s:
        owner = client_company(s, company)
        n = change(s, owner, phones=_phones(phones, default_country), sender_list=senders(sender))
    emit(ctx, {key: n}, output=output)


@app.command("remove")
def stop_remove(
    ctx: typer.Context,
    phones: Annotated[list[str], typer.Argument(help="Phone numbers.")],
    company: CompanyOpt,
    sender: SenderOpt,
    default_country: CountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Unblock phone numbers for sender IDs (ALL removes every block of the number)."""
    _change_blocks(ctx, stoplist.unblock, "removed", phones, company, sender, default_country, output)


@app.command("list")
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
        owner = client_company(s, company)
        data = stoplist.stoplist_rows(s, owner, phone_text=phone, sender=sender, default_country=default_country)
    emit(ctx, data, output=output, columns=["phone", "sender", "created_at"])


@app.command("import")
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
        owner = client_company(s, company)
        sids = senders(sender)
        numbers: list[str] = []
        problems: list[Problem] = []
        for row, data in read_rows(file, sheet=sheet, max_bytes=DEFAULT_MAX_BYTES):
            if column not in data:
                raise InvalidInput(f"{file}: no column {column!r} (columns: {', '.join(data)})")
            try:
                numbers.append(phone_number(data[column], default_country, row=row))
            except InvalidInput as exc:
                problems.append(Problem(column, exc.message.split(": ", 2)[-1], row))
        require(problems, file)
        if not numbers and not problems:
            raise InvalidInput(f"{file}: the file has no data rows")
        n = stoplist.block(s, owner, phones=list(dict.fromkeys(numbers)), sender_list=sids)
    emit(ctx, {"numbers": len(set(numbers)), "added": n}, output=output)
