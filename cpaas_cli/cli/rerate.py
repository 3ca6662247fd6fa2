"""`cpaas rerate …`: re-rate stored EDRs of a time window with today's rates."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, say, session, when
from cpaas_cli.cli.options import CompanyOpt
from cpaas_cli.rerate import tasks as rerate

app = typer.Typer(no_args_is_help=True)

COLUMNS = ["id", "status", "company", "from", "till", "scheduled_for", "estimated", "processed", "updated",
           "unchanged", "failed", "run_by", "started_at", "finished_at"]  # fmt: skip
IdArg = Annotated[str, typer.Argument(help="Rerate task id.")]


@app.command("create")
def create(
    ctx: typer.Context,
    time_from: Annotated[str, typer.Option("--from", help="Window start (EDR event time), inclusive.")],
    time_till: Annotated[str, typer.Option("--till", help="Window end, exclusive.")],
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
    output: OutputOpt = None,
) -> None:
    """Record a rerate task with its estimated EDR count (whole billing periods)."""
    with session(ctx) as s:
        t = rerate.create(
            s,
            time_from=when(time_from, "--from"),
            time_till=when(time_till, "--till"),
            company=company,
            agreement_refs=agreement or [],
            channels=channel or [],
            scheduled_for=when(scheduled_for, "--scheduled-for"),
            draft=draft,
            recalculate_sessions=recalculate_sessions,
        )
        data = rerate.as_dict(s, t)
    say(ctx, f"rerate task {data['id']} {data['status']}: about {data['estimated']} EDRs")
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
    """Run a task now (again after a crash: done units are skipped)."""
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
    verb = "would update" if r["dry_run"] else "updated"
    n = r.get("updated", res["updated"])
    say(ctx, f"rerate task {res['id']}: {verb} {n} EDRs in {r['units']} agreement periods")


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only tasks in this state.")] = None,
    output: OutputOpt = None,
) -> None:
    """List rerate tasks."""
    with session(ctx) as s:
        data = rerate.list_tasks(s, status=status)
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, task: IdArg, output: OutputOpt = None) -> None:
    """Show a task: filter, counters (estimated, processed = updated + unchanged + failed), who ran it when, and its last report."""
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
