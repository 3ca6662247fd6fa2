"""`cpaas callback …`: the outbox of API callbacks (SPEC CMP-25): list, dead letters, retry."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.callbacks import service as callbacks
from cpaas_cli.cli.context import OutputOpt, emit, one_more, session
from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.callbacks import OUTBOX_STATES

app = typer.Typer(no_args_is_help=True, help="Callbacks of API messages: the outbox, dead letters, retry.")

COLUMNS = [
    "id",
    "api_key_id",
    "transaction_id",
    "dnis",
    "status",
    "event_at",
    "channel",
    "mo",
    "state",
    "attempts",
    "next_at",
    "last_error",
    "created_at",
    "delivered_at",
]


@app.command("list")
def list_(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Only dead-lettered callbacks (retries gave up).")] = False,
    state: Annotated[str | None, typer.Option("--state", help="pending, delivered or dead.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many, newest first.")] = 100,
    output: OutputOpt = None,
) -> None:
    """Callbacks, newest first."""
    if state is not None and state not in OUTBOX_STATES:
        raise InvalidInput(f"--state: one of {', '.join(OUTBOX_STATES)}")
    with session(ctx) as s:
        rows = callbacks.list_outbox(s, failed=failed, state=state, limit=one_more(limit))
    emit(ctx, rows, output=output, columns=COLUMNS, limit=limit)


@app.command("retry")
def retry(
    ctx: typer.Context,
    callback_id: Annotated[int, typer.Argument(help="The dead-lettered callback's id.", min=1)],
    output: OutputOpt = None,
) -> None:
    """Send a dead-lettered callback again (a fresh 24-hour retry window); exit 5 unless it is dead."""
    with session(ctx) as s:
        row = callbacks.retry(s, callback_id)
    emit(ctx, row, output=output)


@app.command("purge")
def purge(
    ctx: typer.Context,
    older_than: Annotated[
        int,
        typer.Option(
            "--older-than", min=0, metavar="DAYS", help="Delivered more than DAYS days ago (0: every delivered one)."
        ),
    ],
    dead: Annotated[
        bool, typer.Option("--dead", help="Also dead-lettered callbacks given up more than DAYS days ago.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete delivered (and with --dead, dead-lettered) callbacks older than DAYS; pending ones stay.

    `serve` does this every hour with [callbacks] keep_delivered_days (7) and keep_dead_days (30).
    Deletes in chunks of 5,000, one transaction each.

    Example: cpaas callback purge --older-than 3 --dead --dry-run
    """
    from datetime import timedelta

    from cpaas_cli import clock
    from cpaas_cli.audit.service import record
    from cpaas_cli.callbacks import retention
    from cpaas_cli.cli.context import command_path, confirm, state
    from cpaas_cli.db.engine import get_engine, session_scope

    st = state(ctx)
    engine = get_engine(st.settings.database_url)
    before = clock.now() - timedelta(days=older_than)
    cuts = {"delivered_before": before, "dead_before": before if dead else None}
    kw = {"actor": st.settings.actor, "command": command_path(ctx)}
    counted = retention.purge(engine, **cuts, dry_run=True, **kw)
    data: dict = {"older_than_days": older_than, "before": before.isoformat(), "dry_run": dry_run}
    if not dry_run and (counted.delivered or counted.dead):
        confirm(ctx, f"Delete {counted.delivered} delivered and {counted.dead} dead-lettered callback(s)?", yes)
        counted = retention.purge(engine, **cuts, **kw)
        with session_scope(engine, **kw) as s:
            record(s, action="purge", object_type="callback_outbox", new={**counted.as_dict(), **data})
    emit(ctx, {**counted.as_dict(), **data}, output=output)
