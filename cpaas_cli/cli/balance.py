"""`cpaas balance …`: the balance of an agreement and its movements."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing import ledger
from cpaas_cli.cli.context import OutputOpt, emit, one_more, say, session, state, when
from cpaas_cli.cli.output import Fmt
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


TREE_COLUMNS = ["tree", "agreement", "currency", "balance", "credit_limit", "available", "at_risk"]
FLAT_COLUMNS = [
    "depth",
    "company_id",
    "company",
    "type",
    "parent_id",
    "parent",
    "agreement_id",
    "agreement",
    "currency",
    "balance",
    "credit_limit",
    "available",
    "at_risk",
    "at",
]


@app.command("tree")
def tree(
    ctx: typer.Context,
    reseller: Annotated[str, typer.Argument(help="Reseller company id or name (or the system owner).")],
    at: Annotated[str | None, typer.Option("--at", help="Balances at this time (default now).")] = None,
    output: OutputOpt = None,
) -> None:
    """The reseller's purchase agreement(s) and every company below it, depth first
    (sub-resellers too): each agreement's balance, credit limit, available and at risk.

    at_risk = the negative part of the balance: what the company owes its seller. Below
    the reseller, money it has not collected from its clients while the same traffic is
    charged to it one level up. Table: indented names; json/jsonl/csv/tsv: flat rows with
    depth and parent.
    """
    from cpaas_cli.billing import balance_tree

    with session(ctx) as s:
        t = when(at, "--at")
        items = balance_tree.rows(s, reseller, at=t)
    fmt = output or state(ctx).output or Fmt.table
    indented = fmt in (Fmt.table, Fmt.wide)
    data = []
    for item in items:
        row = {"tree": "  " * item["depth"] + item["company"]} if indented else {}
        row.update(item)
        for k in ("balance", "credit_limit", "available", "at_risk"):
            v = item[k]
            if v is not None:
                row[k] = format_micros(v)
            elif k in ("credit_limit", "available") and item["agreement_id"] is not None:
                row[k] = "unlimited"
        row["at"] = iso(t) if t else None
        data.append(row)
    risk = balance_tree.risk_below(items)
    if risk:
        text = ", ".join(f"{format_micros(v)} {c}" for c, v in sorted(risk.items()))
        say(ctx, f"owed by the companies below {items[0]['company']!r} to their sellers: {text}")
    emit(ctx, data, output=output, columns=TREE_COLUMNS if indented else FLAT_COLUMNS)
