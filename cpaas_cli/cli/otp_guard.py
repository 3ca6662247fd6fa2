"""`cpaas otp guard …`: the fraud guard of 2FA integrations (issue 28, item 4).

Settings per integration (`set`, `show`), the prefixes its conversion alarm
blocked with the cost they saved (`list`), and lifting a block (`unblock`).
The rules are in ``otp/guard.py``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, one_more, session

app = typer.Typer(
    no_args_is_help=True,
    help="Fraud guard (SMS pumping): limits per number, prefix and country, allowed countries, blocked prefixes.",
)

IntegrationArg = Annotated[str, typer.Argument(help="Integration id or name.")]
LIST_COLUMNS = [
    "integration", "prefix", "country", "state", "sends", "verified", "conversion", "blocked_at", "refused",
    "unit_cost", "saved", "currency", "notice",
]  # fmt: skip


def _integration(s, ref: str):
    from cpaas_cli.otp import integrations

    return integrations.get(s, ref)


@app.command("set")
def set_(
    ctx: typer.Context,
    integration: IntegrationArg,
    per_number_hour: Annotated[
        int | None, typer.Option("--per-number-hour", min=0, help="Codes to one number per hour (10; 0: off).")
    ] = None,
    per_prefix_hour: Annotated[
        int | None, typer.Option("--per-prefix-hour", min=0, help="Codes to one number prefix per hour (200; 0: off).")
    ] = None,
    per_country_hour: Annotated[
        int | None, typer.Option("--per-country-hour", min=0, help="Codes to one country per hour (0: off).")
    ] = None,
    countries: Annotated[
        str | None,
        typer.Option("--countries", metavar="CC,CC", help="Only these countries (ISO codes); '' allows every one."),
    ] = None,
    prefix_digits: Annotated[
        int | None,
        typer.Option("--prefix-digits", help="National digits after the country code that make a prefix (6)."),
    ] = None,
    min_sends: Annotated[
        int | None, typer.Option("--min-sends", help="Sends of a prefix in the alarm window before it can block (20).")
    ] = None,
    min_conversion: Annotated[
        str | None,
        typer.Option(
            "--min-conversion", metavar="SHARE", help="Block a prefix verified below this share: 0.2 or 20% (0: off)."
        ),
    ] = None,
    alarm_window: Annotated[
        int | None, typer.Option("--alarm-window", metavar="SECONDS", help="The alarm's sliding window (3600).")
    ] = None,
    grace: Annotated[
        int | None,
        typer.Option("--grace", metavar="SECONDS", help="A pending code counts in the alarm after this long (60)."),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Change an integration's guard settings (those given); prints all of them.

    Example: cpaas otp guard set Login --per-prefix-hour 100 --countries ES,FR --min-conversion 0.2
    """
    from cpaas_cli.otp import guard

    changes = {
        "per_number_hour": per_number_hour,
        "per_prefix_hour": per_prefix_hour,
        "per_country_hour": per_country_hour,
        "countries": guard.parse_countries(countries) if countries is not None else None,
        "prefix_digits": prefix_digits,
        "min_sends": min_sends,
        "min_conversion_bp": guard.parse_conversion(min_conversion) if min_conversion is not None else None,
        "window_s": alarm_window,
        "grace_s": grace,
    }
    with session(ctx) as s:
        row = _integration(s, integration)
        lim = guard.configure(s, row, **changes)
        data = guard.limits_dict(row, lim)
    emit(ctx, data, output=output)


@app.command("show")
def show(ctx: typer.Context, integration: IntegrationArg, output: OutputOpt = None) -> None:
    """An integration's guard settings (the defaults until `set` changed them)."""
    from cpaas_cli.otp import guard

    with session(ctx) as s:
        row = _integration(s, integration)
        data = guard.limits_dict(row, guard.limits_of(s, row.id))
    emit(ctx, data, output=output)


@app.command("list")
def list_(
    ctx: typer.Context,
    integration: Annotated[str | None, typer.Argument(help="Integration id or name (default: every one).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Lifted blocks too, not only the open ones.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many, newest first.")] = 100,
    output: OutputOpt = None,
) -> None:
    """Blocked prefixes, newest first: the figures that blocked them, sends refused since and the cost saved.

    saved = refused sends × unit_cost, the price the rate tree gives one code to the prefix.
    """
    from cpaas_cli.otp import guard

    with session(ctx) as s:
        integration_id = _integration(s, integration).id if integration is not None else None
        rows = guard.blocks(s, integration_id, all_=all_, limit=one_more(limit))
        data = [guard.block_dict(s, r) for r in rows]
    emit(ctx, data, output=output, columns=LIST_COLUMNS, limit=limit)


@app.command("unblock")
def unblock(
    ctx: typer.Context,
    integration: IntegrationArg,
    prefix: Annotated[str, typer.Argument(help="The blocked prefix, as `otp guard list` shows it.")],
    output: OutputOpt = None,
) -> None:
    """Lift a block: codes to the prefix are sent again (the block stays on record, audited)."""
    from cpaas_cli.otp import guard

    with session(ctx) as s:
        row = guard.unblock(s, _integration(s, integration), prefix)
        data = guard.block_dict(s, row)
    emit(ctx, data, output=output)
