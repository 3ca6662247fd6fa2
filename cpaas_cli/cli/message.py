"""`cpaas message …`: check a text's encoding and segments (no database)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit
from cpaas_cli.messaging import gsm, lookalike
from cpaas_cli.messaging.segments import DEFAULT_CONCAT, Concat, analyse

app = typer.Typer(no_args_is_help=True)


@app.command("count")
def count(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The message text; '-' reads it from standard input.")],
    replace_lookalikes: Annotated[
        bool,
        typer.Option(
            "--replace-lookalikes",
            help="Replace typographic quotes, dashes, ellipsis and special spaces by GSM-7 look-alikes "
            "when that makes the text GSM-7.",
        ),
    ] = False,
    ucs2: Annotated[bool, typer.Option("--ucs2", help="Count as UCS-2 even when GSM-7 would do.")] = False,
    concat: Annotated[
        Concat,
        typer.Option(
            "--concat",
            help="How parts are tied: udh8 (153/67 per part), udh16 (152/66) or sar (TLVs, 153/67).",
        ),
    ] = DEFAULT_CONCAT,
    output: OutputOpt = None,
) -> None:
    """Encoding, characters, segments and per-segment sizes of a text."""
    if text == "-":
        text = sys.stdin.read()
        if text.endswith("\n"):
            text = text[:-1]
    original = text
    if replace_lookalikes:
        text = lookalike.prefer_gsm(text)
    a = analyse(text, encoding="UCS2" if ucs2 else None, concat=concat)
    data = a.as_dict()
    data["non_gsm_characters"] = gsm.non_gsm_chars(text)
    data["replaced"] = text != original
    if replace_lookalikes:
        data["text"] = text
    emit(ctx, data, output=output)
