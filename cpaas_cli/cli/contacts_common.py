"""Options shared by the `cpaas contacts …` command modules."""

from __future__ import annotations

from typing import Annotated

import typer

CountryOpt = Annotated[
    str | None, typer.Option("--default-country", help="ISO country for numbers written without a country code.")
]
