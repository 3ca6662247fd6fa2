"""`cpaas rerate …`: re-rate stored EDRs of a time window with today's rates.

A task's counters come in two groups (RR-04): EDRs (estimated, processed,
updated, unchanged, failed) and reseller CDRs (cdr_processed, cdr_created,
cdr_updated, cdr_unchanged, cdr_failed).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, say, session, when
from cpaas_cli.cli.options import CompanyOpt, TzOpt
from cpaas_cli.rerate import tasks as rerate
from cpaas_cli.timeutil import in_zone

app = typer.Typer(no_args_is_help=True)

COLUMNS = ["id", "status", "company", "from", "till", "scheduled_for", "estimated", "processed", "updated",
           "unchanged", "failed", "cdr_processed", "cdr_created", "cdr_updated", "cdr_unchanged", "cdr_failed",
           "run_by", "started_at", "finished_at"]  # fmt: skip
IdArg = Annotated[str, typer.Argument(help="Rerate task id.")]


@app.command("create")
def create(
    ctx: typer.Context,
    time_from: Annotated[
        str,
        typer.Option("--from", help="Window start (EDR event time), inclusive; local in --tz. E.g. 2026-03-01."),
    ],
    time_till: Annotated[
        str, typer.Option("--till", help="Window end (EDR event time), exclusive; local in --tz. E.g. 2026-04-01.")
    ],
    company: CompanyOpt,
    agreement: Annotated[
        list[str] | None, typer.Option("--agreement", help="Only these agreements (repeatable).")
    ] = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Only these channels (repeatable).")] = None,
    scheduled_for: Annotated[
        str | None, typer.Option("--scheduled-for", help="When `serve` runs it (default: at once).")
    ] = None,
    draft: Annotated[bool, typer.Option("--draft", help="Keep it as a draft: only `rerate run` starts it.")] = False,
    recalculate_sessions: Annotated[
        bool, typer.Option("--recalculate-sessions", help="Also recalculate session billing (recorded).")
    ] = False,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Record a rerate task with its estimated EDR count.

    Which EDRs are re-rated: --from and --till (read in --tz, default UTC) pick
    the billing periods of each agreement that overlap [from, till); every
    EDR of those periods is re-rated, whole periods from their first EDR
    (scale counters restart per period), so the re-rated window runs from the
    start of the period holding --from to the end of the period holding the
    last instant before --till, in each agreement's billing time zone. An EDR
    prepared just before a period but charged inside it (a late delivery)
    goes with the period of its charge. The JSON shows the window typed
    (from/till in UTC, from_local/till_local in --tz). A rerate re-prices the
    client side; the EDRs' vendor costs stay as they are (`cpaas edr cost`
    computes them again after a vendor price change).
    """
    with session(ctx) as s:
        t = rerate.create(
            s,
            time_from=when(time_from, "--from", tz),
            time_till=when(time_till, "--till", tz),
            company=company,
            agreement_refs=agreement or [],
            channels=channel or [],
            scheduled_for=when(scheduled_for, "--scheduled-for", tz),
            draft=draft,
            recalculate_sessions=recalculate_sessions,
        )
        data = rerate.as_dict(s, t)
    data["tz"] = tz
    data["from_local"], data["till_local"] = in_zone(t.time_from, tz), in_zone(t.time_till, tz)
    say(
        ctx,
        f"rerate task {data['id']} {data['status']}: about {data['estimated']} EDRs "
        f"(window {data['from_local']} to {data['till_local']} {tz}, widened to whole billing periods)",
    )
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("run")
def run(
    ctx: typer.Context,
    task: IdArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute the difference report; change no EDR, charge or balance.")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Run a task now (again after a crash: done units are skipped).

    The task's counters: EDRs (processed, updated, unchanged, failed) and
    reseller CDRs (cdr_processed, cdr_created, cdr_updated, cdr_unchanged,
    cdr_failed). A client's EDR the rerate turns rated is charged at every
    reseller level above it too: the missing reseller CDRs are created
    (cdr_created); a level that refuses it (no price, no reselling agreement in
    force) keeps it rejected, naming the level. No credit check, at any level.
    """
    with session(ctx) as s:
        res = rerate.run(s, task, dry_run=dry_run)
    _summary(ctx, res)
    emit(ctx, res, output=output, columns=COLUMNS)


@app.command("preview")
def preview(ctx: typer.Context, task: IdArg, output: OutputOpt = None) -> None:
    """Same as `rerate run ID --dry-run`: the difference report only."""
    with session(ctx) as s:
        res = rerate.run(s, task, dry_run=True)
    _summary(ctx, res)
    emit(ctx, res["report"], output=output)


def _summary(ctx: typer.Context, res: dict) -> None:
    r = res["report"]
    dry = r["dry_run"]
    n = r.get("updated", res["updated"])
    line = f"rerate task {res['id']}: {'would update' if dry else 'updated'} {n} EDRs in {r['units']} agreement periods"
    if r.get("cdr_processed", res["cdr_processed"]):
        made, upd = r.get("cdr_created", res["cdr_created"]), r.get("cdr_updated", res["cdr_updated"])
        line += f"; reseller CDRs: {'would create' if dry else 'created'} {made}, {'would update' if dry else 'updated'} {upd}"
    say(ctx, line)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only tasks in this state.")] = None,
    output: OutputOpt = None,
) -> None:
    """List rerate tasks with their EDR counters and reseller CDR counters (cdr_…)."""
    with session(ctx) as s:
        data = rerate.list_tasks(s, status=status)
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, task: IdArg, output: OutputOpt = None) -> None:
    """Show a task: filter, counters, who ran it when, and its last report.

    Counters in two groups: EDRs (estimated, processed = updated + unchanged +
    failed) and reseller CDRs (cdr_processed = cdr_created + cdr_updated +
    cdr_unchanged + cdr_failed)."""
    with session(ctx) as s:
        t = rerate.get(s, task)
        data = {**rerate.as_dict(s, t), "report": t.report}
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("cancel")
def cancel(ctx: typer.Context, task: IdArg, output: OutputOpt = None) -> None:
    """Cancel a draft, scheduled or failed task."""
    with session(ctx) as s:
        data = rerate.as_dict(s, rerate.cancel(s, task))
    emit(ctx, data, output=output, columns=COLUMNS)
