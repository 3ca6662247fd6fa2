"""`cpaas sender …`: sender IDs per company, channel and agreement."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cpaas_cli.agreements import service as agreements
from cpaas_cli.campaigns import sender_fees, senders
from cpaas_cli.cli.context import OutputOpt, emit, say, session, when
from cpaas_cli.cli.options import CompanyFilterOpt, CompanyOpt, TzOpt
from cpaas_cli.recurring import service as fees
from cpaas_cli.tenancy.service import company as company_by_ref

app = typer.Typer(no_args_is_help=True)

COLUMNS = ["id", "company", "channel", "sender", "name", "type", "status", "agreement", "connection"]


class Kind(str, Enum):
    alphanumeric = "alphanumeric"
    short_code = "short_code"
    long_code = "long_code"


SenderArg = Annotated[str, typer.Argument(help="Sender ID (id, or the sender text).")]


@app.command("add")
def add(
    ctx: typer.Context,
    sender: Annotated[str, typer.Argument(help="The sender text: 1-11 characters, a short code or a number.")],
    company: CompanyOpt,
    agreement: Annotated[str, typer.Option("--agreement", help="The company's agreement its traffic is charged to.")],
    channel: Annotated[str, typer.Option("--channel", help="sms, viber, whatsapp, rcs, …")] = "sms",
    kind: Annotated[Kind, typer.Option("--type", help="alphanumeric, short_code or long_code.")] = Kind.alphanumeric,
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the sender text).")] = None,
    connection: Annotated[
        str | None, typer.Option("--connection", help="Vendor connection it routes through (optional).")
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Create it active instead of draft.")] = False,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    output: OutputOpt = None,
) -> None:
    """Add a sender ID (draft unless --active)."""
    with session(ctx) as s:
        row = senders.add(
            s,
            company=company,
            agreement=agreement,
            sender=sender,
            channel=channel,
            kind=kind.value,
            name=name,
            connection=connection,
            active=active,
            description=description,
        )
        data = senders.sender_dict(s, row)
    say(ctx, f"added {data['channel']} sender ID {data['sender']!r} (#{data['id']}), {data['status']}")
    emit(ctx, data, output=output)


@app.command("delegate")
def delegate(
    ctx: typer.Context,
    sender: Annotated[str, typer.Argument(help="The sender text the reseller may give its clients.")],
    reseller: Annotated[str, typer.Option("--reseller", help="Reseller company (name or id).")],
    agreement: Annotated[str, typer.Option("--agreement", help="The reseller's purchase agreement.")],
    channel: Annotated[str, typer.Option("--channel", help="sms, viber, whatsapp, rcs, …")] = "sms",
    kind: Annotated[Kind, typer.Option("--type", help="alphanumeric, short_code or long_code.")] = Kind.alphanumeric,
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the sender text).")] = None,
    active: Annotated[bool, typer.Option("--active", help="Create it active instead of draft.")] = False,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    output: OutputOpt = None,
) -> None:
    """Delegate a sender ID to a reseller (SID-15): its clients may then be given it with
    `sender add`. The reseller's row never sends (a reseller sends no traffic of its own);
    disabling it stops new `sender add` of that text for the reseller's clients."""
    with session(ctx) as s:
        row = senders.delegate(
            s,
            reseller=company_by_ref(s, reseller),
            agreement=agreements.get(s, agreement),
            sender=sender,
            channel=channel,
            kind=kind.value,
            name=name,
            active=active,
            description=description,
        )
        data = senders.sender_dict(s, row)
    say(ctx, f"delegated {data['channel']} sender ID {data['sender']!r} to {data['company']} (#{data['id']})")
    emit(ctx, data, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    company: CompanyFilterOpt = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="draft, active or disabled.")] = None,
    output: OutputOpt = None,
) -> None:
    """List sender IDs."""
    with session(ctx) as s:
        data = [
            senders.sender_dict(s, r) for r in senders.list_senders(s, company=company, channel=channel, status=status)
        ]
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, sender: SenderArg, output: OutputOpt = None) -> None:
    """Show one sender ID."""
    with session(ctx) as s:
        data = senders.sender_dict(s, senders.get(s, sender))
    emit(ctx, data, output=output)


def _status(ctx: typer.Context, sender: str, action: str, output) -> None:
    with session(ctx) as s:
        row = senders.set_status(s, senders.get(s, sender), action)
        data = senders.sender_dict(s, row)
    say(ctx, f"sender ID {data['sender']!r} is {data['status']}")
    emit(ctx, data, output=output)


@app.command("activate")
def activate(ctx: typer.Context, sender: SenderArg, output: OutputOpt = None) -> None:
    """Make a draft or disabled sender ID active (usable by campaigns)."""
    _status(ctx, sender, "activate", output)


@app.command("disable")
def disable(ctx: typer.Context, sender: SenderArg, output: OutputOpt = None) -> None:
    """Disable a sender ID: campaigns can no longer use it."""
    _status(ctx, sender, "disable", output)


# ------------------------------------------------------------------ fees

fee_rule_app = typer.Typer(no_args_is_help=True)
app.add_typer(
    fee_rule_app,
    name="fee-rule",
    help="Periodic usage fee rules of a sender ID, priced from the agreement's pay-as-you-go tree.",
)
FEE_RULE_COLUMNS = ["id", "kind", "every", "start_day", "days_before", "retry_hours", "max_retries", "mno",
                    "priced_by", "effective_from", "effective_till"]  # fmt: skip


class Every(str, Enum):
    month = "month"
    week = "week"


@fee_rule_app.command("add")
def fee_rule_add(
    ctx: typer.Context,
    sender: SenderArg,
    every: Annotated[Every, typer.Option("--every", help="Charge every month or week.")] = Every.month,
    start_day: Annotated[int, typer.Option("--start-day", help="Month day 1-31, or weekday 1-7 (Monday = 1).")] = 1,
    days_before: Annotated[int, typer.Option("--days-before", help="Charge N days before the period starts.")] = 0,
    retry_hours: Annotated[int, typer.Option("--retry-hours", help="On failure, retry every H hours.")] = 1,
    max_retries: Annotated[int, typer.Option("--max-retries", help="At most M retries, then the period fails.")] = 0,
    mno: Annotated[str | None, typer.Option("--mno", help="MCCMNC the fee is priced for.")] = None,
    effective_from: Annotated[str | None, typer.Option("--from", help="Effective from (default now).")] = None,
    effective_till: Annotated[str | None, typer.Option("--till", help="Effective till (default indefinitely).")] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Add a usage fee rule; the amount comes from the tree (sender_id_usage_fee) at each charge."""
    with session(ctx) as s:
        row = sender_fees.add_usage_rule(
            s,
            senders.get(s, sender),
            every=every.value,
            start_day=start_day,
            days_before=days_before,
            retry_hours=retry_hours,
            max_retries=max_retries,
            mno=mno,
            effective_from=when(effective_from, "--from", tz),
            effective_till=when(effective_till, "--till", tz),
            tz=tz,
        )
        data = fees.rule_dict(row)
    say(ctx, f"added usage fee rule #{data['id']}")
    emit(ctx, data, output=output)


@fee_rule_app.command("list")
def fee_rule_list(ctx: typer.Context, sender: SenderArg, output: OutputOpt = None) -> None:
    """List a sender ID's fee rules (usage and setup)."""
    with session(ctx) as s:
        data = sender_fees.list_rules(s, senders.get(s, sender))
    emit(ctx, data, output=output, columns=FEE_RULE_COLUMNS)


@fee_rule_app.command("end")
def fee_rule_end(
    ctx: typer.Context,
    rule_id: Annotated[int, typer.Argument(help="Fee rule id.")],
    at: Annotated[str | None, typer.Option("--at", help="End time (default now).")] = None,
    output: OutputOpt = None,
) -> None:
    """End a fee rule: no period starting at or after the end is charged."""
    with session(ctx) as s:
        data = fees.rule_dict(fees.end_rule(s, rule_id, at=when(at, "--at")))
    emit(ctx, data, output=output)


@app.command("setup-fee")
def setup_fee(
    ctx: typer.Context,
    sender: SenderArg,
    mno: Annotated[str | None, typer.Option("--mno", help="MCCMNC the fee is priced for.")] = None,
    retry_hours: Annotated[int, typer.Option("--retry-hours", help="On failure, retry every H hours.")] = 1,
    max_retries: Annotated[int, typer.Option("--max-retries", help="At most M retries, then it fails.")] = 0,
    output: OutputOpt = None,
) -> None:
    """Charge the one-time setup fee (priced from the tree); a second call charges nothing."""
    with session(ctx) as s:
        data = sender_fees.setup_fee(
            s, senders.get(s, sender), mno=mno, retry_hours=retry_hours, max_retries=max_retries
        )
    say(ctx, f"setup fee: {data['status']}" + ("" if data["created"] else " (already set up; nothing new charged)"))
    emit(ctx, data, output=output)
