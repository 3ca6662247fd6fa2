"""`cpaas agreement periods …`: the billing periods of an agreement.

Kept apart from `cli/agreement.py`, which adds the command to the `agreement`
group (explicitly, not as a side effect of importing this module).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli import clock
from cpaas_cli.agreements import service as agreements
from cpaas_cli.billing.periods import VersionTerms, closed_periods, periods
from cpaas_cli.cli.context import OutputOpt, emit, session, when
from cpaas_cli.cli.options import TzOpt
from cpaas_cli.errors import InvalidInput

COLUMNS = [
    "local_start_date",
    "local_end_date",
    "start",
    "end",
    "version_id",
    "billing_period",
    "billing_tz",
    "split",
    "clipped",
]


def periods_cmd(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="Agreement code (or id).")],
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Window start (ISO 8601; local time in --tz; with --closed: periods starting from it); default agreement start.",
        ),
    ] = None,
    till: Annotated[str | None, typer.Option("--till", help="Window end (exclusive); default now.")] = None,
    tz: TzOpt = "UTC",
    closed: Annotated[
        bool, typer.Option("--closed", help="Only whole periods that ended by --till (what an invoice run bills).")
    ] = False,
    seller: Annotated[
        str | None, typer.Option("--seller", help="Seller company, when the code is used by several sellers.")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """List the billing periods of an agreement in a window, from its versions.

    Boundaries fall at local midnight in each version's billing zone on the
    billing day; a version that changes the billing terms (period, day, zone,
    split, tax rate) starts a new period, other changes do not; split-by-month cuts
    daily/weekly periods at month starts. Periods cut by the window are marked
    clipped (--closed lists whole periods only).
    """
    with session(ctx) as s:
        row = agreements.get(s, code, seller=seller)
        rows = agreements.versions(s, row)
        start = when(from_, "--from", tz) or row.effective_from
        end = when(till, "--till", tz) or clock.now()
        terms = [VersionTerms.of(v) for v in rows]
        if closed:
            found = closed_periods(terms, end, since=start)
        else:
            if end <= start:
                raise InvalidInput("--till must be later than --from")
            found = periods(terms, start, end)
        data = []
        for p in found:
            v = rows[p.version]
            item = p.as_dict(v.billing_tz)
            item.update(billing_period=v.billing_period, billing_day=v.billing_day, billing_tz=v.billing_tz)
            data.append(item)
    emit(ctx, data, output=output, columns=COLUMNS)
