"""`cpaas balance …`: the balance of an agreement and its movements."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing import ledger
from cpaas_cli.cli.context import OutputOpt, emit, one_more, session, when
from cpaas_cli.money import format_micros
from cpaas_cli.timeutil import iso

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    agreement: Annotated[str, typer.Argument(help="Agreement code or id.")],
    at: Annotated[str | None, typer.Option("--at", help="Balance at this time (default now).")] = None,
    output: OutputOpt = None,
) -> None:
    """Balance = counted payments − charges; available = balance + credit limit.

    Confirmed payments count; unconfirmed ones count until their
    confirm-before time. A blank credit limit is unlimited.
    """
    with session(ctx) as s:
        ag = agreements.get(s, agreement)
        t = when(at, "--at")
        b = ledger.balance(s, ag, at=t)
    data = {"agreement": ag.code, "currency": ag.currency, "at": iso(t) if t else None}
    for k, v in b.items():
        data[k] = format_micros(v) if v is not None else ("unlimited" if k in ("credit_limit", "available") else None)
    emit(ctx, data, output=output)


@app.command("history")
def history(
    ctx: typer.Context,
    agreement: Annotated[str, typer.Argument(help="Agreement code or id.")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the last N movements.")] = None,
    output: OutputOpt = None,
) -> None:
    """Charges and payments in time order with the running balance."""
    with session(ctx) as s:
        ag = agreements.get(s, agreement)
        rows = ledger.history(s, ag, limit=one_more(limit))
    data = [
        {**r, "at": iso(r["at"]), "amount": format_micros(r["amount"]), "balance": format_micros(r["balance"])}
        for r in rows
    ]
    emit(ctx, data, output=output, columns=["at", "kind", "ref", "amount", "balance"], limit=limit, keep_last=True)
