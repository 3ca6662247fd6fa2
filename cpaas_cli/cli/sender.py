"""`cpaas sender …`: sender IDs per company, channel and agreement."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cpaas_cli.campaigns import senders
from cpaas_cli.cli.context import OutputOpt, emit, say, session

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
    company: Annotated[str, typer.Option("--company", help="Client company that owns it.")],
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


@app.command("list")
def list_(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", help="Only this company's.")] = None,
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
