"""`cpaas payment …`: payments that replenish (or, outbound, reduce) a balance."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.billing import payments
from cpaas_cli.cli.context import OutputOpt, confirm, emit, session, when
from cpaas_cli.errors import InvalidInput
from cpaas_cli.timeutil import TimeError, parse_date

app = typer.Typer(no_args_is_help=True)
COLUMNS = [
    "id",
    "agreement",
    "direction",
    "reference",
    "paid_at",
    "amount",
    "currency",
    "replenishment",
    "agreement_currency",
    "exchange_rate",
    "state",
    "confirm_before",
]


@app.command("add")
def add(
    ctx: typer.Context,
    agreement: Annotated[str, typer.Option("--agreement", help="Agreement code or id.")],
    reference: Annotated[str, typer.Option("--reference", help="Reference code of the payment.")],
    amount: Annotated[str, typer.Option("--amount", help="Payment amount (decimal) in --currency.")],
    currency: Annotated[str | None, typer.Option("--currency", help="Payment currency (default: agreement's).")] = None,
    replenishment: Annotated[
        str | None,
        typer.Option(
            "--replenishment", help="Amount credited in the agreement currency (needed when the currencies differ)."
        ),
    ] = None,
    direction: Annotated[
        str, typer.Option("--direction", help="inbound (to us) or outbound (paid by us).")
    ] = "inbound",
    paid_at: Annotated[str | None, typer.Option("--date", help="Payment date/time (default now).")] = None,
    confirmed: Annotated[bool, typer.Option("--confirmed", help="The payment is confirmed.")] = False,
    confirm_before: Annotated[
        str | None, typer.Option("--confirm-before", help="Unconfirmed: counts on the balance until this time.")
    ] = None,
    rate_date: Annotated[str | None, typer.Option("--rate-date", help="Exchange rate date (YYYY-MM-DD).")] = None,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    output: OutputOpt = None,
) -> None:
    """Register a payment; the exchange rate is replenishment / amount."""
    try:
        rd = parse_date(rate_date) if rate_date else None
    except TimeError as exc:
        raise InvalidInput(f"--rate-date: {exc}") from exc
    with session(ctx) as s:
        p = payments.add(
            s,
            agreement_ref=agreement,
            reference=reference,
            amount=amount,
            currency=currency,
            replenishment=replenishment,
            direction=direction,
            paid_at=when(paid_at, "--date"),
            confirmed=confirmed,
            confirm_before=when(confirm_before, "--confirm-before"),
            exchange_rate_date=rd,
            description=description,
        )
        data = payments.payment_dict(s, p)
    emit(ctx, data, output=output)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    agreement: Annotated[str | None, typer.Option("--agreement", help="Agreement code or id.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="confirmed, unconfirmed or expired.")] = None,
    output: OutputOpt = None,
) -> None:
    """List payments with their derived state."""
    with session(ctx) as s:
        data = [
            payments.payment_dict(s, p) for p in payments.list_payments(s, agreement_ref=agreement, state_filter=state)
        ]
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("show")
def show(
    ctx: typer.Context, payment_id: Annotated[int, typer.Argument(help="Payment id.")], output: OutputOpt = None
) -> None:
    """Show one payment."""
    with session(ctx) as s:
        data = payments.payment_dict(s, payments.get(s, payment_id))
    emit(ctx, data, output=output)


@app.command("confirm")
def confirm_cmd(
    ctx: typer.Context, payment_id: Annotated[int, typer.Argument(help="Payment id.")], output: OutputOpt = None
) -> None:
    """Confirm a payment: it counts on the balance from now on."""
    with session(ctx) as s:
        data = payments.payment_dict(s, payments.confirm(s, payments.get(s, payment_id)))
    emit(ctx, data, output=output)


@app.command("unconfirm")
def unconfirm(
    ctx: typer.Context,
    payment_id: Annotated[int, typer.Argument(help="Payment id.")],
    confirm_before: Annotated[str, typer.Option("--confirm-before", help="It keeps counting until this time.")],
    output: OutputOpt = None,
) -> None:
    """Withdraw the confirmation of a payment."""
    with session(ctx) as s:
        p = payments.unconfirm(s, payments.get(s, payment_id), confirm_before=when(confirm_before, "--confirm-before"))
        data = payments.payment_dict(s, p)
    emit(ctx, data, output=output)


@app.command("delete")
def delete(
    ctx: typer.Context,
    payment_id: Annotated[int, typer.Argument(help="Payment id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    output: OutputOpt = None,
) -> None:
    """Delete a payment (it stops counting on the balance)."""
    with session(ctx) as s:
        p = payments.get(s, payment_id)
        data = payments.payment_dict(s, p)
        confirm(ctx, f"Delete payment #{payment_id}?", yes)
        payments.delete(s, p)
    emit(ctx, {**data, "deleted": True}, output=output)
