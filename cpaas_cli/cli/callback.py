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
