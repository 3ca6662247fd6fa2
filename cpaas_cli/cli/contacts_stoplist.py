"""`cpaas contacts stoplist …`: (phone, sender ID or ALL) blocks."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.context import ForceOpt, OutputOpt, emit, out_target, say, session
from cpaas_cli.cli.options import CompanyOpt, DefaultCountryOpt
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
    default_country: DefaultCountryOpt = None,
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
    default_country: DefaultCountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """Unblock phone numbers for sender IDs (ALL removes every block of the number)."""
    _change_blocks(ctx, stoplist.unblock, "removed", phones, company, sender, default_country, output)


@app.command("list")
def stop_list(
    ctx: typer.Context,
    company: CompanyOpt,
    phone: Annotated[str | None, typer.Option(help="Only this number.")] = None,
    sender: Annotated[str | None, typer.Option("--sender", "-s", help="Only this sender ID (or ALL).")] = None,
    default_country: DefaultCountryOpt = None,
    output: OutputOpt = None,
) -> None:
    """List stop-list blocks."""
    with session(ctx) as s:
        owner = client_company(s, company)
        data = stoplist.stoplist_rows(s, owner, phone_text=phone, sender=sender, default_country=default_country)
    emit(ctx, data, output=output, columns=["phone", "sender", "created_at"])


@app.command("export")
def stop_export(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Output file (.csv, .xlsx or .jsonl).")],
    company: CompanyOpt,
    sender: Annotated[str | None, typer.Option("--sender", "-s", help="Only this sender ID (or ALL).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, xlsx or jsonl (default: the file suffix).")] = None,
    force: ForceOpt = False,
    output: OutputOpt = None,
) -> None:
    """Export stop-list blocks (phone as +E.164, sender, created_at); `stoplist import` reads the file back as it is."""
    from cpaas_cli.exports.writers import write_rows

    out_target(ctx, file, force=force, option="file")
    with session(ctx) as s:
        owner = client_company(s, company)
        rows = stoplist.stoplist_rows(s, owner, sender=sender)
    for r in rows:
        r["phone"] = "+" + r["phone"]  # with the +: the file imports back without a default country
    n = write_rows(file, rows, ["phone", "sender", "created_at"], fmt, sheet="Stop list")
    say(ctx, f"exported {n} stop-list blocks to {file}")
    emit(ctx, {"file": file, "blocks": n}, output=output)


@app.command("import")
def stop_import(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="CSV, XLSX or JSONL with a phone column (and a sender column).")],
    company: CompanyOpt,
    sender: Annotated[
        list[str] | None,
        typer.Option(
            "--sender",
            "-s",
            help="Sender ID, or ALL (repeat or comma-separate); without it, each row's sender column.",
        ),
    ] = None,
    column: Annotated[str, typer.Option("--column", help="The phone column.")] = "phone",
    default_country: DefaultCountryOpt = None,
    sheet: Annotated[str | None, typer.Option(help="XLSX sheet name.")] = None,
    output: OutputOpt = None,
) -> None:
    """Block every number of a file for sender IDs; all or nothing (any bad number: exit 4).

    The senders are --sender's, or, without it, each row's ``sender`` column
    (the form `stoplist export` writes, so an export imports back as it was).
    """
    from cpaas_cli.errors import Problem, require

    with session(ctx) as s:
        owner = client_company(s, company)
        sids = senders(sender) if sender else None
        by_sender: dict[tuple[str, ...], list[str]] = {}
        problems: list[Problem] = []
        for row, data in read_rows(file, sheet=sheet, max_bytes=DEFAULT_MAX_BYTES):
            if column not in data:
                raise InvalidInput(f"{file}: no column {column!r} (columns: {', '.join(data)})")
            if sids is None and "sender" not in data:
                raise InvalidInput(f"{file}: give --sender, or a sender column (columns: {', '.join(data)})")
            try:
                number = phone_number(data[column], default_country, row=row)
            except InvalidInput as exc:
                problems.append(Problem(column, exc.message.split(": ", 2)[-1], row))
                continue
            try:
                key = tuple(sids if sids is not None else senders([str(data["sender"] or "")]))
            except InvalidInput as exc:
                problems.append(Problem("sender", exc.message, row))
                continue
            by_sender.setdefault(key, []).append(number)
        require(problems, file)
        if not by_sender and not problems:
            raise InvalidInput(f"{file}: the file has no data rows")
        n = 0
        for key, numbers in by_sender.items():
            n += stoplist.block(s, owner, phones=list(dict.fromkeys(numbers)), sender_list=list(key))
    distinct = {p for numbers in by_sender.values() for p in numbers}
    emit(ctx, {"numbers": len(distinct), "added": n}, output=output)
