"""`cpaas otp stats`: a 2FA integration's figures over a period (SPEC EDR-08, issue 28 item 6).

The rules (what counts as sent, delivered, verified; the averages) are in ``otp/stats.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from cpaas_cli import clock
from cpaas_cli.cli.context import OutputOpt, emit, session, when
from cpaas_cli.cli.options import TzOpt


def stats(
    ctx: typer.Context,
    integration: Annotated[str, typer.Argument(help="Integration id or name.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="Requests at or after this time (read in --tz; default: 29 days ago).")
    ] = None,
    till: Annotated[
        str | None, typer.Option("--till", help="Requests before this time (read in --tz; default: now).")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="day (local days of --tz), operator or country; default: one total.")
    ] = None,
    tz: TzOpt = "UTC",
    output: OutputOpt = None,
) -> None:
    """Requests, sent, delivered, verified, conversion, average delivery time and time to verify.

    Example: cpaas otp stats Login --from 2026-12-01 --till 2026-12-08 --by day -o csv
    """
    from cpaas_cli.otp import integrations
    from cpaas_cli.otp import stats as otp_stats

    since = when(from_, "--from", tz)
    until = when(till, "--till", tz) or clock.now()
    if since is None:
        since = when("today", "--from", tz) - timedelta(days=29)  # type: ignore[operator]
    with session(ctx) as s:
        row = integrations.get(s, integration)
        rows = otp_stats.stats(s.connection(), row, since=since, till=until, by=by, tz=tz)
    emit(ctx, rows, output=output, columns=otp_stats.columns(by.strip().lower() if by else None))
