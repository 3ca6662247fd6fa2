"""`cpaas invoice …`: invoices per agreement and billing period."""

from __future__ import annotations

import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cpaas_cli.cli.context import ForceOpt, OutputOpt, confirm, emit, out_target, say, session, state, when
from cpaas_cli.cli.options import TzOpt
from cpaas_cli.config import invoice_line_decimals
from cpaas_cli.errors import InvalidInput
from cpaas_cli.invoices import charges as invoice_charges
from cpaas_cli.invoices import service as invoices

app = typer.Typer(no_args_is_help=True)

LIST_COLUMNS = [
    "id",
    "reference",
    "agreement",
    "status",
    "local_start_date",
    "local_end_date",
    "currency",
    "net",
    "tax",
    "total",
    "issue_date",
    "due_date",
]
LINE_COLUMNS = ["position", "description", "count", "volume", "unit_price", "exact", "net", "rounding", "tax", "total"]
RefArg = Annotated[str, typer.Argument(help="Invoice id or reference (INV-n).")]


class ExportFormat(str, Enum):
    pdf = "pdf"
    xlsx = "xlsx"
    csv = "csv"


@app.command("run")
def run(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Invoice periods closed by this time (default now).")
    ] = None,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Only this agreement (code or id).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be created; write nothing.")] = False,
    include_empty: Annotated[
        bool, typer.Option("--include-empty", help="Also make 0.00 drafts for periods without charges.")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Create one draft invoice per agreement and closed billing period that has
    charges, and recalculate drafts that got late charges. Safe to run again (cron)."""
    decimals = invoice_line_decimals(state(ctx).settings)
    with session(ctx) as s:
        res = invoices.run(
            s,
            as_of=when(as_of, "--as-of"),
            agreement_ref=agreement,
            dry_run=dry_run,
            include_empty=include_empty,
            line_decimals=decimals,
        )
    say(
        ctx,
        f"{'would create' if dry_run else 'created'} {res['created']}, recalculated {res['recalculated']}, "
        f"unchanged {res['unchanged']}",
    )
    emit(ctx, res["invoices"], output=output, columns=[*LIST_COLUMNS, "action"])


@app.command("list")
def list_(
    ctx: typer.Context,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Only this agreement.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="draft, confirmed or void.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Periods starting at or after this time.")] = None,
    output: OutputOpt = None,
) -> None:
    """List invoices, oldest period first."""
    with session(ctx) as s:
        data = invoices.list_invoices(s, agreement_ref=agreement, status=status, since=when(from_, "--from"))
    emit(ctx, data, output=output, columns=LIST_COLUMNS)


@app.command("show")
def show(ctx: typer.Context, ref: RefArg, output: OutputOpt = None) -> None:
    """Show an invoice: header, both parties and its lines."""
    with session(ctx) as s:
        data = invoices.show(s, ref)
    emit(ctx, data, output=output)


@app.command("recalculate")
def recalculate(ctx: typer.Context, ref: RefArg, output: OutputOpt = None) -> None:
    """Take in late or re-rated charges and rebuild the lines of a draft
    (with the configured [invoice] line_decimals)."""
    decimals = invoice_line_decimals(state(ctx).settings)
    with session(ctx) as s:
        invoices.recalculate(s, ref, line_decimals=decimals)
        data = invoices.show(s, ref)
    emit(ctx, data, output=output)


def _send(ctx: typer.Context, ref: str) -> dict:
    from cpaas_cli.invoices import pdf
    from cpaas_cli.mail import SmtpSettings, send

    settings = SmtpSettings.from_config(state(ctx).settings.section("smtp"))
    with session(ctx) as s:
        inv = invoices.get(s, ref)
        if inv.status != "confirmed":
            raise InvalidInput(f"invoice {inv.id} is {inv.status}; only a confirmed invoice is sent")
        to = invoices.invoice_emails(s, inv)
        if not to:
            raise InvalidInput(
                f"agreement of invoice {inv.reference} has no invoice e-mail (agreement --email invoice=…)"
            )
        data = invoices.show(s, ref)
        with tempfile.TemporaryDirectory() as tmp:
            path = pdf.render(data, Path(tmp) / f"{inv.reference}.pdf")
            send(
                settings,
                to=to,
                subject=f"Invoice {inv.reference} ({data['local_start_date']} - {data['local_end_date']})",
                body=(
                    f"Please find attached invoice {inv.reference} for agreement {data['agreement']}.\n"
                    f"Total due: {data['total']} {data['currency']}, due by {data['due_date']}.\n"
                ),
                attachments=[path],
            )
        invoices.mark_sent(s, inv, to)
        return invoices.show(s, ref)


@app.command("confirm")
def confirm_(
    ctx: typer.Context,
    ref: RefArg,
    send: Annotated[
        bool, typer.Option("--send", help="Then e-mail the PDF to the agreement's invoice e-mails.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Confirmation time (issue date), local in --tz; default now. E.g. 2026-04-02."),
    ] = None,
    tz: TzOpt = "UTC",
    ad_hoc: Annotated[
        bool,
        typer.Option(
            "--ad-hoc",
            help="Issue it before its period has closed (an explicit ad-hoc invoice: the charges so far; "
            "later charges of the period go to the next invoice).",
        ),
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Confirm a draft: it gets the next number of its own legal entity and never changes again.

    Only once its period has closed (exit 5 before that) unless --ad-hoc."""
    decimals = invoice_line_decimals(state(ctx).settings)
    with session(ctx) as s:
        inv = invoices.confirm(s, ref, at=when(at, "--at", tz), line_decimals=decimals, ad_hoc=ad_hoc)
        inv_id = inv.id
        data = invoices.show(s, inv_id)
    say(ctx, f"confirmed invoice #{inv_id} as {data['reference']}" + (" (ad hoc)" if ad_hoc else ""))
    if send:
        data = _send(ctx, str(inv_id))
        say(ctx, f"sent {data['reference']} to {', '.join(data['sent_to'])}")
    emit(ctx, data, output=output)


@app.command("send")
def send_(ctx: typer.Context, ref: RefArg, output: OutputOpt = None) -> None:
    """E-mail a confirmed invoice's PDF to the agreement's invoice e-mails (again)."""
    data = _send(ctx, ref)
    say(ctx, f"sent {data['reference']} to {', '.join(data['sent_to'])}")
    emit(ctx, data, output=output)


@app.command("void")
def void(
    ctx: typer.Context,
    ref: RefArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Cancel an invoice. Its number stays used; its charges are invoiced again by the next run."""
    with session(ctx) as s:
        inv = invoices.get(s, ref)
        confirm(ctx, f"Void invoice {inv.reference or inv.id}?", yes)
        invoices.void(s, ref)
        data = invoices.show(s, inv.id)
    emit(ctx, data, output=output)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: RefArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="pdf (the invoice), xlsx or csv (its lines).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write; default <reference or id>.<format>.")
    ] = None,
    with_charges: Annotated[
        bool,
        typer.Option("--with-charges", help="Also write every charge with its EDR fields (<file>-charges.csv/xlsx)."),
    ] = False,
    force: ForceOpt = False,
    output: OutputOpt = None,
) -> None:
    """Export an invoice as PDF, or its lines as XLSX/CSV, optionally with the charge details."""
    from cpaas_cli.exports.writers import CHARGE_FORMATS, LINE_FORMATS, write_rows
    from cpaas_cli.invoices import pdf

    with session(ctx) as s:
        inv = invoices.get(s, ref)
        data = invoices.show(s, inv.id)
        target = out_target(ctx, out or Path(f"{inv.reference or 'invoice-' + str(inv.id)}.{fmt.value}"), force=force)
        ctarget = None
        if with_charges:
            ext = "csv" if fmt is ExportFormat.pdf else fmt.value
            ctarget = out_target(ctx, target.with_name(f"{target.stem}-charges.{ext}"), force=force)
        files = []
        if fmt is ExportFormat.pdf:
            pdf.render(data, target)
        else:
            write_rows(
                target,
                data["lines"],
                [*LINE_COLUMNS, "kind", "correction", "resource", "country", "network"],
                fmt.value,
                sheet=f"{inv.reference or 'Invoice ' + str(inv.id)} lines",
                formats=LINE_FORMATS,
            )
        files.append({"file": str(target), "content": "invoice" if fmt is ExportFormat.pdf else "lines"})
        if ctarget is not None:
            n = write_rows(
                ctarget,
                invoice_charges.charge_rows(s, inv),
                invoice_charges.CHARGE_COLUMNS,
                ext,
                sheet="Charges",
                formats=CHARGE_FORMATS,
            )
            files.append({"file": str(ctarget), "content": "charges", "rows": n})
    emit(ctx, files, output=output, columns=["file", "content", "rows"])
