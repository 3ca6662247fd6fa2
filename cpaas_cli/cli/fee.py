"""`cpaas fee …`: additional fees charged to an agreement."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.billing import fees
from cpaas_cli.cli.context import OutputOpt, emit, session, when

app = typer.Typer(no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    agreement: Annotated[str, typer.Option("--agreement", help="Agreement code or id.")],
    amount: Annotated[str | None, typer.Option("--amount", help="Fixed price (pre-rated amount).")] = None,
    volume: Annotated[int | None, typer.Option("--volume", help="By tariff: quantity to price.")] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="By tariff: the additional-services service.")
    ] = None,
    resource: Annotated[
        str | None, typer.Option("--resource", help="By tariff: resource in the additional tree.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Time of the fee (default now).")] = None,
    output: OutputOpt = None,
) -> None:
    """Add a fee: --amount for a fixed price, or --volume priced by an enabled
    additional-services tree. Either way it becomes a charge."""
    with session(ctx) as s:
        data = fees.add(
            s,
            agreement_ref=agreement,
            description=description,
            amount=amount,
            service_ref=service,
            resource=resource,
            volume=volume,
            at=when(at, "--at"),
        )
    emit(ctx, data, output=output)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Agreement code or id.")] = None,
    output: OutputOpt = None,
) -> None:
    """List additional fees."""
    with session(ctx) as s:
        data = fees.list_fees(s, agreement_ref=agreement)
    emit(
        ctx, data, output=output, columns=["id", "agreement_id", "at", "amount", "currency", "fee_type", "description"]
    )
