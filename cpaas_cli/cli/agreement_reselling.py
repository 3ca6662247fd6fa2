"""`cpaas agreement reselling …`: reselling agreements of a reseller's legal entity (TEN-06)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cpaas_cli.cli.context import OutputOpt, emit, say, session, when
from cpaas_cli.cli.options import CompanyFilterOpt, TzOpt
from cpaas_cli.timeutil import iso

app = typer.Typer(no_args_is_help=True)

COLUMNS = ["id", "reseller", "legal_entity", "agreement", "currency", "effective_from", "effective_till"]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if k in ("effective_from", "effective_till") else v for k, v in row.items()}


def _one(s: Any, link_id: int, company_id: int) -> dict[str, Any]:
    from cpaas_cli.agreements import reselling

    return next(_plain(r) for r in reselling.rows(s, company_id=company_id) if r["id"] == link_id)


@app.command("add")
def add(
    ctx: typer.Context,
    legal_entity: Annotated[str, typer.Argument(help="The reseller's legal entity (name or id).")],
    agreement: Annotated[
        str, typer.Argument(help="The reseller's purchase agreement (code or id): the reseller buys, its parent sells.")
    ],
    effective_from: Annotated[
        str | None, typer.Option("--from", help="Start (ISO 8601; local time in --tz); default now.")
    ] = None,
    effective_till: Annotated[str | None, typer.Option("--till", help="End; default indefinitely.")] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Attach a purchase agreement to a reseller's legal entity for a period.

    Client agreements sold from that legal entity are charged one level up on it.
    Refused: a legal entity that is not a reseller's, an agreement where another
    company buys, a period overlapping another reselling agreement of the legal
    entity (exit 5), a client agreement sold from it in another currency (exit 5)."""
    from cpaas_cli.agreements import reselling
    from cpaas_cli.agreements import service as agreements
    from cpaas_cli.tenancy import service as tenancy

    with session(ctx) as s:
        le = tenancy.legal_entity(s, legal_entity)
        row = reselling.add(
            s,
            le,
            agreements.get(s, agreement),
            effective_from=when(effective_from, "--from", tz),
            effective_till=when(effective_till, "--till", tz),
        )
        data = _one(s, row.id, le.company_id)  # type: ignore[arg-type]
    say(ctx, f"reselling agreement #{data['id']}: {data['legal_entity']!r} buys on {data['agreement']!r}")
    emit(ctx, data, output=output)


@app.command("list")
def list_(ctx: typer.Context, company: CompanyFilterOpt = None, output: OutputOpt = None) -> None:
    """List reselling agreements (of one reseller with --company)."""
    from cpaas_cli.agreements import reselling
    from cpaas_cli.tenancy import service as tenancy

    with session(ctx) as s:
        company_id = tenancy.company(s, company).id if company is not None else None
        data = [_plain(r) for r in reselling.rows(s, company_id=company_id)]
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("end")
def end(
    ctx: typer.Context,
    link_id: Annotated[int, typer.Argument(metavar="ID", help="Reselling agreement id (see `list`).")],
    at: Annotated[str | None, typer.Option("--at", help="End time (default now).")] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """End a reselling agreement (one that has not started yet is removed)."""
    from cpaas_cli.agreements import reselling

    with session(ctx) as s:
        row, what = reselling.end(s, link_id, at=when(at, "--at", tz))
        data = {
            "id": row.id,
            "legal_entity_id": row.legal_entity_id,
            "agreement_id": row.agreement_id,
            "effective_from": iso(row.effective_from),
            "effective_till": iso(row.effective_till),
            "result": what,
        }
    emit(ctx, data, output=output)
