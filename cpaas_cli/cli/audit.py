"""`cpaas audit …`."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.audit.service import list_entries
from cpaas_cli.cli.context import OutputOpt, emit, one_more, session, when
from cpaas_cli.cli.options import CompanyFilterOpt
from cpaas_cli.tenancy import service as tenancy
from cpaas_cli.timeutil import iso

app = typer.Typer(no_args_is_help=True)

COLUMNS = ["id", "at", "actor", "command", "action", "object_type", "object_id", "company_id", "old", "new"]


@app.command("list")
def list_(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    object_type: Annotated[
        str | None, typer.Option("--object", help="Only this object type (table), e.g. company.")
    ] = None,
    object_id: Annotated[str | None, typer.Option("--object-id", help="Only this object id.")] = None,
    action: Annotated[str | None, typer.Option(help="insert, update, delete, import, …")] = None,
    company: CompanyFilterOpt = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="At or after this time (ISO 8601, UTC unless an offset is given).")
    ] = None,
    till: Annotated[str | None, typer.Option("--till", help="Before this time.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows, newest first.")] = 1000,
    output: OutputOpt = None,
) -> None:
    """List audit rows, newest first."""
    with session(ctx) as s:
        company_id = tenancy.company(s, company).id if company else None
        rows = list_entries(
            s,
            actor=actor,
            object_type=object_type,
            object_id=object_id,
            action=action,
            company_id=company_id,
            since=when(from_, "--from"),
            until=when(till, "--till"),
            limit=one_more(limit),
        )
        data = [
            {
                "id": r.id,
                "at": iso(r.at),
                "actor": r.actor,
                "command": r.command,
                "action": r.action,
                "object_type": r.object_type,
                "object_id": r.object_id,
                "company_id": r.company_id,
                "old": r.old,
                "new": r.new,
            }
            for r in rows
        ]
    emit(ctx, data, output=output, columns=COLUMNS, limit=limit)
