"""Rendering of command results: table, json, jsonl, csv, tsv.

stdout carries data only; everything else goes to stderr. Table output shows
stored text with its control characters escaped (see ``terminal_safe``);
json and jsonl keep every value exact, and so do csv and tsv but for the cells a
spreadsheet would run as formulas, which get a leading quote unless ``--raw-cells``.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from enum import Enum
from typing import Any


class Fmt(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


# C0 controls (ESC starts terminal escape sequences), DEL, C1 controls (0x9b is
# a one-byte CSI), the line/paragraph separators and the bidirectional
# overrides and isolates that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def terminal_safe(text: str) -> str:
    """``text`` with every control character written as a visible escape
    (ESC → ``\\x1b``, newline → ``\\n``), so stored text cannot move the
    cursor, recolour, retitle or rewrite what a terminal shows."""
    return _UNSAFE.sub(_escape_char, text)


def _cell(value: Any) -> Any:
    """A table cell: escaped, and a rich ``Text`` so that brackets in the
    value are shown as typed, never read as rich markup."""
    from rich.text import Text

    return Text(terminal_safe(_scalar(value)))


def _columns(rows: list[dict[str, Any]], columns: list[str] | None) -> list[str]:
    if columns:
        return columns
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def render(data: dict[str, Any] | list[dict[str, Any]], fmt: Fmt, *, columns: list[str] | None = None) -> None:
    out = sys.stdout
    if fmt is Fmt.json:
        out.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    rows = data if isinstance(data, list) else [data]
    if fmt is Fmt.jsonl:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return
    if fmt in (Fmt.csv, Fmt.tsv):
        cols = _columns(rows, columns)
        writer = csv.writer(out, delimiter="," if fmt is Fmt.csv else "\t", lineterminator="\n")
        writer.writerow(cols)
        from cpaas_cli.files import formula_guard, guard_cell

        guard = guard_cell if formula_guard() else str
        for row in rows:
            writer.writerow([guard(_scalar(row.get(c))) for c in cols])
        return
    from rich.console import Console  # only tables need rich
    from rich.table import Table

    console = Console(file=out, width=None if out.isatty() else 240, soft_wrap=False)
    if isinstance(data, dict):
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in data.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                table.add_row(_cell(key), f"{len(value)} rows (see -o json)")
            else:
                table.add_row(_cell(key), _cell(value))
        console.print(table)
        return
    cols = _columns(rows, columns)
    table = Table(show_lines=False)
    for c in cols:
        table.add_column(_cell(c), overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in cols])
    console.print(table)
    if not rows:
        sys.stderr.write("(no rows)\n")
