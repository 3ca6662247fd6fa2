"""`cpaas edr export` and `cpaas edr export-task …`: EDR files, now or in the background.

`cli/edr.py` adds ``export_cmd`` and ``tasks_app`` to the `edr` group."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cpaas_cli.agreements import service as agreements
from cpaas_cli.cli.context import ForceOpt, OutputOpt, emit, one_more, out_target, say, session, state, when
from cpaas_cli.cli.options import CompanyFilterOpt, TzOpt
from cpaas_cli.db.engine import get_engine
from cpaas_cli.edr import export
from cpaas_cli.edr import tasks as export_tasks
from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.tenancy import Company
from cpaas_cli.refs import by_ref

tasks_app = typer.Typer(no_args_is_help=True)

TASK_COLUMNS = ["id", "state", "from", "till", "format", "rows", "size_bytes", "emails", "created_at", "note"]


def export_cmd(
    ctx: typer.Context,
    from_: Annotated[str, typer.Option("--from", help="Events at or after this time (read in --tz).")],
    till: Annotated[str, typer.Option("--till", help="Events before this time (read in --tz).")],
    company: CompanyFilterOpt = None,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Agreement code or id.")] = None,
    campaign: Annotated[int | None, typer.Option("--campaign", help="Campaign id.")] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Message status; repeat for several (e.g. delivered).")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Channel, e.g. sms.")] = None,
    country: Annotated[str | None, typer.Option("--country", help="Destination country (ISO alpha-2).")] = None,
    sender: Annotated[str | None, typer.Option("--sender", "-s", help="Sender ID.")] = None,
    direction: Annotated[str | None, typer.Option("--direction", help="mt or mo.")] = None,
    fields: Annotated[
        str | None,
        typer.Option("--fields", help="Comma-separated EDR fields to export, in order ('all' for every field)."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, tsv, jsonl or xlsx (default: from --out, else csv).")
    ] = None,
    gzip: Annotated[bool, typer.Option("--gzip", help="Compress the file (csv, tsv, jsonl).")] = False,
    tz: TzOpt = "UTC",
    out: Annotated[str | None, typer.Option("--out", help="File to write (default: stdout for text formats).")] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Comma-separated addresses to e-mail the file to (size-limited).")
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", help="Record an export task for `cpaas serve` instead of writing now.")
    ] = False,
    force: ForceOpt = False,
    output: OutputOpt = None,
) -> None:
    """Export the chosen fields of the EDRs in a time window to CSV, TSV, JSONL or XLSX.

    Streams in constant memory, in time order. An XLSX file past one sheet's
    row limit continues on the next sheet. With --email the file is sent
    through the [smtp] server when it is within the size limit
    ([smtp] max_attachment_mb, 25 MB by default); otherwise it says why not.
    With --background the export becomes a task (see `cpaas edr export-task`).
    """
    st = state(ctx)
    flt_fields = export.parse_fields(fields)
    emails = export.parse_emails(email)
    if fmt is None:
        fmt = export_fmt_from(out)
    gzip = gzip or (out or "").lower().endswith(".gz")
    fmt = export.check_format(fmt)
    if out and not background:
        out_target(ctx, out, force=force)
    with session(ctx) as s:
        flt = export.EdrFilter(
            since=when(from_, "--from", tz),
            till=when(till, "--till", tz),
            company_id=by_ref(s, Company, company, what="company").id if company else None,
            agreement_id=agreements.get(s, agreement).id if agreement else None,
            campaign_id=campaign,
            statuses=list(status or []),
            channel=channel,
            country=country,
            sender=sender,
            direction=direction,
        ).check()
        if background:
            if out:
                raise InvalidInput("--out is not used with --background: fetch the file with `edr export-task fetch`")
            task = export_tasks.create(s, flt=flt, fields=flt_fields, fmt=fmt, tz=tz, gzip=gzip, emails=emails)
            say(ctx, f"export task {task['id']} recorded: `cpaas serve` (or `cpaas edr export-task run`) builds it")
            emit(ctx, task, output=output)
            return
        export.time_formatter(tz)
        conn = s.connection()
        rows = export.count(conn, flt)
        say(ctx, f"exporting {rows} EDRs")
        if out is None and not emails:
            if fmt == "xlsx":
                raise InvalidInput("XLSX needs a file: give --out")
            sys.stdout.flush()
            binary = sys.stdout.buffer
            export.write(conn, flt, binary, fields=flt_fields, fmt=fmt, tz=tz, gzip=gzip)
            binary.flush()
            return
        tmpdir = None
        if out is None:
            tmpdir = tempfile.mkdtemp(prefix="cpaas-export-")
            path = Path(tmpdir) / export.default_name(fmt, gzip)
        else:
            path = Path(out)
        try:
            result = export.write(
                conn,
                flt,
                path,
                fields=flt_fields,
                fmt=fmt,
                tz=tz,
                gzip=gzip,
                sheet_rows=export_tasks.sheet_rows(st.settings),
            )
            if emails:
                sent, note = export.email_file(
                    st.settings.section("smtp"),
                    emails,
                    path,
                    subject=f"EDR export {from_} – {till}",
                    body=f"{result['rows']} EDRs from {from_} till {till} (times in {tz}).",
                )
                result["emailed"] = sent
                result["email_note"] = note
                say(ctx, note)
        finally:
            if tmpdir is not None:
                Path(path).unlink(missing_ok=True)
                Path(tmpdir).rmdir()
        if tmpdir is not None:
            result.pop("file", None)
        say(ctx, f"{result['rows']} EDRs written" + (f" to {out}" if out else ""))
        emit(ctx, result, output=output)


def export_fmt_from(out: str | None) -> str:
    """The format a file name asks for (``x.csv.gz`` → csv); csv when it says nothing."""
    if not out:
        return "csv"
    suffixes = [x.lower().lstrip(".") for x in Path(out).suffixes]
    if suffixes and suffixes[-1] == "gz":
        suffixes.pop()
    ext = suffixes[-1] if suffixes else "csv"
    ext = {"xls": "xlsx", "ndjson": "jsonl", "txt": "csv"}.get(ext, ext)
    return ext if ext in export.EXPORT_FORMATS else "csv"


@tasks_app.command("list")
def task_list(
    ctx: typer.Context,
    state_: Annotated[str | None, typer.Option("--state", help="waiting, ready, sent, failed or canceled.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 150,
    output: OutputOpt = None,
) -> None:
    """List export tasks, newest first."""
    with session(ctx) as s:
        rows = export_tasks.list_tasks(s, state=state_, limit=one_more(limit))
    emit(ctx, rows, output=output, columns=TASK_COLUMNS, limit=limit)


@tasks_app.command("show")
def task_show(
    ctx: typer.Context, task_id: Annotated[int, typer.Argument(help="Task id.")], output: OutputOpt = None
) -> None:
    """Show one export task: filter, fields, state, file and what happened."""
    with session(ctx) as s:
        data = export_tasks.as_dict(export_tasks.get(s, task_id))
    emit(ctx, data, output=output)


@tasks_app.command("cancel")
def task_cancel(
    ctx: typer.Context, task_id: Annotated[int, typer.Argument(help="Task id.")], output: OutputOpt = None
) -> None:
    """Cancel a task that is still waiting (exit 5 otherwise)."""
    with session(ctx) as s:
        data = export_tasks.cancel(s, task_id)
    emit(ctx, data, output=output)


@tasks_app.command("restart")
def task_restart(
    ctx: typer.Context, task_id: Annotated[int, typer.Argument(help="Task id.")], output: OutputOpt = None
) -> None:
    """Put a canceled or failed task back to waiting."""
    with session(ctx) as s:
        data = export_tasks.restart(s, task_id)
    emit(ctx, data, output=output)


@tasks_app.command("fetch")
def task_fetch(
    ctx: typer.Context,
    task_id: Annotated[int, typer.Argument(help="Task id.")],
    out: Annotated[str, typer.Option("--out", help="Where to copy the task's file.")],
    force: ForceOpt = False,
    output: OutputOpt = None,
) -> None:
    """Copy a ready (or sent) task's file to --out."""
    out_target(ctx, out, force=force)
    with session(ctx) as s:
        data = export_tasks.fetch(s, task_id, out, state(ctx).settings)
    emit(ctx, data, output=output)


@tasks_app.command("run")
def task_run(
    ctx: typer.Context,
    task_id: Annotated[int | None, typer.Argument(help="Only this task (default: every waiting task).")] = None,
    output: OutputOpt = None,
) -> None:
    """Process waiting tasks now, as `cpaas serve` does; prints counts by final state."""
    st = state(ctx)
    engine = get_engine(st.settings.database_url)
    result = export_tasks.process_waiting(engine, task_id=task_id, settings=st.settings)
    emit(ctx, result, output=output)
