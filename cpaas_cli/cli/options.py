"""Options that many commands share, each defined once (as pip-tools'
``scripts/options.py`` does), so a flag means the same thing and says so in
the same words wherever it appears.

Use them as annotations: ``tz: TzOpt = "UTC"``, ``company: CompanyOpt``
(required) or ``company: CompanyFilterOpt = None`` (optional: a filter).
"""

from __future__ import annotations

from typing import Annotated

import typer

_COMPANY = typer.Option(
    "--company",
    "-c",
    help="Company, by name or id (on a list or a report: only this company's rows).",
)

CompanyOpt = Annotated[str, _COMPANY]
CompanyFilterOpt = Annotated[str | None, _COMPANY]

_TZ = typer.Option(
    "--tz",
    help=(
        "IANA time zone, e.g. Europe/Madrid: times given without an offset are read in it, "
        "and the local days, periods and written times of the command follow it."
    ),
)

TzOpt = Annotated[str, _TZ]
# The same option where leaving it out means "a zone the command already knows"
# (the command's help says which).
TzOrKnownOpt = Annotated[str | None, _TZ]

# Numbers written without a country code (national format) are read in this country.
DefaultCountryOpt = Annotated[
    str | None, typer.Option("--default-country", help="ISO country for numbers written without a country code.")
]
