"""`cpaas edr …`: ingest EDRs from a gateway, rate them, browse them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cpaas_cli.agreements import service as agreements
from cpaas_cli.charging import stored as charging
from cpaas_cli.charging import vendor
from cpaas_cli.cli import edr_export
from cpaas_cli.cli.context import OutputOpt, emit, one_more, progress_bar, say, session, when
from cpaas_cli.cli.options import CompanyFilterOpt, TzOpt
from cpaas_cli.edr import ingest as edr_ingest
from cpaas_cli.edr import queries as edrs
from cpaas_cli.edr import retention as edr_retention
from cpaas_cli.edr.interrupt import HARD_STOP, StopRequest, hard_interrupt
from cpaas_cli.errors import Interrupted, InvalidInput
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.models.tenancy import Company
from cpaas_cli.refs import by_ref

app = typer.Typer(no_args_is_help=True)

LIST_COLUMNS = [
    "id",
    "external_id",
    "event_at",
    "agreement_id",
    "sender",
    "destination",
    "mcc",
    "mnc",
    "segments",
    "status",
    "rating_state",
    "rating_reason",
    "cost",
    "currency",
]


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="CSV, XLSX or JSONL file of EDRs (one row per message attempt).")],
    rate: Annotated[bool, typer.Option("--rate/--no-rate", help="Rate the new EDRs while ingesting.")] = True,
    chunk: Annotated[int, typer.Option("--chunk", min=100, help="Rows per committed chunk.")] = edr_ingest.INGEST_CHUNK,
    check_first: Annotated[
        bool, typer.Option("--check-first", help="Validate the whole file before writing anything (reads it twice).")
    ] = False,
    connection: Annotated[
        str | None,
        typer.Option(
            "--connection",
            help="Vendor connection (name or id) of rows that name none: their vendor cost comes from its vendor plan.",
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Load EDRs from an external gateway, validated, rated and stored.

    Columns: external_id (required, idempotency key), agreement (code) and/or
    company, vendor_message_id, campaign_id, sender, channel, direction (mt/mo),
    source, destination, mccmnc or mcc+mnc, country, network, encoding,
    segments (1-255), status, prepared_at, billed_at, submitted_at, delivered_at,
    undelivered_at, failed_at, seen_at (ISO 8601, UTC unless an offset is
    given), vendor_error, connection (vendor connection name or id; default
    --connection). A rated row of a connection gets its vendor cost. Text longer than its column (destination 32
    characters, country 2, ...) is refused. Each chunk is validated whole
    before it is written and commits on its own; a bad row stops the run at
    its chunk (use --check-first to validate the whole file before any write).
    A re-run skips what is stored already. Ctrl-C stops before the next chunk
    (again: at once) and says how many rows are stored (exit 130).
    """
    try:
        with StopRequest(lambda text: say(ctx, text)) as stop, session(ctx) as s:
            conn_id = by_ref(s, VendorConnection, connection, what="connection").id if connection else None
            result = edr_ingest.ingest(
                s, file, rate=rate, chunk=chunk, check_first=check_first, stop=stop, connection_id=conn_id
            )
    except Exception as exc:
        if hard_interrupt(exc):  # an error raised while a second Ctrl-C unwound
            raise Interrupted(HARD_STOP) from None
        raise
    except KeyboardInterrupt:
        raise Interrupted(HARD_STOP) from None
    say(ctx, f"{result['inserted']} EDRs stored, {result['skipped']} already present")
    partial = rejected_line(result["rejected"], result["rejected_reasons"])
    if partial:
        say(ctx, partial)
    if result["pending"] and rate:
        say(ctx, f"{result['pending']:,} not rated yet (their billing event has not happened; `cpaas edr rate` later)")
    emit(ctx, result, output=output)


def rejected_line(rejected: int, reasons: dict[str, int]) -> str | None:
    """ "1,498 rejected: insufficient_credit 1,498" (every reason with its count), or None."""
    if not rejected:
        return None
    parts = ", ".join(f"{reason or 'unknown'} {n:,}" for reason, n in reasons.items())
    return f"{rejected:,} rejected: {parts}" if parts else f"{rejected:,} rejected"


@app.command("rate")
def rate(
    ctx: typer.Context,
    pending: Annotated[bool, typer.Option("--pending", help="Rate every unrated EDR (the default).")] = True,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Only this agreement (code or id).")] = None,
    chunk: Annotated[int, typer.Option("--chunk", min=1, help="EDRs per committed chunk.")] = charging.CHUNK,
    output: OutputOpt = None,
) -> None:
    """Rate unrated EDRs: charge packs or the balance, or reject with a reason.

    Safe to run from several processes at once: each chunk locks the
    agreements it charges. EDRs whose billing event has not happened yet
    (e.g. billed by delivered, no receipt yet) stay unrated.
    """
    with session(ctx) as s:
        ag_id = agreements.get(s, agreement).id if agreement else None
        result = charging.rate_pending(s, agreement_id=ag_id, chunk=chunk)
    emit(ctx, result, output=output)


@app.command("cost")
def cost(
    ctx: typer.Context,
    from_: Annotated[str, typer.Option("--from", help="EDRs at or after this time (read in --tz).")],
    till: Annotated[str, typer.Option("--till", help="EDRs before this time (read in --tz).")],
    connection: Annotated[
        str | None, typer.Option("--connection", help="Only EDRs of this vendor connection (name or id).")
    ] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Compute the vendor cost again for EDRs sent through a connection, with the
    vendor plans as they are now (after a vendor price change, or a plan attached
    later). `rerate` re-prices the client side only and leaves vendor costs as they are.

    Example: cpaas edr cost --from 2026-03-01 --till 2026-04-01 --connection sim
    """
    since, until = when(from_, "--from", tz), when(till, "--till", tz)
    if since is None or until is None or until <= since:
        raise InvalidInput("--till must be later than --from")
    with session(ctx) as s:
        conn_id = by_ref(s, VendorConnection, connection, what="connection").id if connection else None
        result = vendor.recost(s, since=since, till=until, connection_id=conn_id)
    say(ctx, f"{result['edrs']:,} EDRs, {result['changed']:,} changed; cost unknown for {result['unknown']:,}")
    emit(ctx, result, output=output)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Agreement code or id.")] = None,
    company: CompanyFilterOpt = None,
    from_: Annotated[str | None, typer.Option("--from", help="Events at or after this time.")] = None,
    till: Annotated[str | None, typer.Option("--till", help="Events before this time.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="unrated, rated or rejected.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Rejection reason, e.g. no_rate.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Message status, e.g. delivered.")] = None,
    destination: Annotated[str | None, typer.Option("--destination", help="Destination number.")] = None,
    campaign: Annotated[int | None, typer.Option("--campaign", help="Campaign id.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 150,
    output: OutputOpt = None,
) -> None:
    """List EDRs, newest first (150 by default), with filters."""
    with session(ctx) as s:
        filters = dict(
            agreement_id=agreements.get(s, agreement).id if agreement else None,
            company_id=by_ref(s, Company, company, what="company").id if company else None,
            since=when(from_, "--from"),
            till=when(till, "--till"),
            state=state,
            reason=reason,
            status=status,
            destination=destination,
            campaign_id=campaign,
        )
        rows = edrs.list_edrs(s, **filters, limit=one_more(limit))
    emit(ctx, rows, output=output, columns=LIST_COLUMNS, limit=limit)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="EDR id or external id.")],
    output: OutputOpt = None,
) -> None:
    """Show one EDR with its charges and how it was rated."""
    with session(ctx) as s:
        data = edrs.show(s, ref)
    emit(ctx, data, output=output)


# `edr export` and `edr export-task …` live in cli/edr_export.py
app.add_typer(
    edr_export.tasks_app, name="export-task", help="Background EDR exports: list, show, cancel, restart, fetch, run."
)
app.command("export")(edr_export.export_cmd)


@app.command("retention")
def retention(
    ctx: typer.Context,
    keep_months: Annotated[
        int, typer.Option("--keep-months", help="Months kept before the current one (UTC); earlier months go.")
    ],
    archive_dir: Annotated[
        Path | None,
        typer.Option("--archive-dir", help="Write each month to edr-YYYY-MM.csv.gz (+ edr-level-…) here first."),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="EDRs removed per transaction.")] = 50_000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the months and counts; remove nothing.")] = False,
    output: OutputOpt = None,
) -> None:
    """Remove whole months of EDRs older than --keep-months, after archiving them when asked.

    EDRs with a charge no confirmed invoice covers stay (kept_uninvoiced); the ledger,
    invoices, balances and the audit log are never removed. One row per month.

    Example: cpaas edr retention --keep-months 24 --archive-dir /srv/archive --dry-run
    """
    with session(ctx) as s:
        bar = None if dry_run else progress_bar(ctx)
        task = None

        def progress(done: int, total: int) -> None:
            nonlocal task
            if bar is None:
                return
            if task is None:
                bar.start()
                task = bar.add_task("removing EDRs", total=total)
            bar.update(task, completed=done)

        try:
            got = edr_retention.run(
                s, keep_months=keep_months, archive_dir=archive_dir, batch=batch, dry_run=dry_run, progress=progress
            )
        finally:
            if bar is not None and task is not None:
                bar.stop()
    verb = "would remove" if dry_run else "removed"
    say(
        ctx,
        f"kept from {got['kept_from']}: {verb} {got['removable'] if dry_run else got['removed']} EDRs in "
        f"{len(got['months'])} month{'s' if len(got['months']) != 1 else ''}; {got['kept_uninvoiced']} kept (charges no confirmed invoice covers)",
    )
    emit(ctx, got["months"], output=output, columns=edr_retention.COLUMNS)
