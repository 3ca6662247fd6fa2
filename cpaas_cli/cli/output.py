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
from collections.abc import Callable
from enum import Enum
from typing import Any


class Fmt(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    wide = "wide"

    @property
    def is_table(self) -> bool:
        """table or wide: drawn for a person, not parsed."""
        return self in (Fmt.table, Fmt.wide)


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


def select(data: dict[str, Any] | list[dict[str, Any]], wanted: list[str]) -> dict[str, Any] | list[dict[str, Any]]:
    """Only the ``wanted`` fields of every row (``--columns``), in that order.

    A name that no row has is InvalidInput naming the columns there are.
    """
    from cpaas_cli.errors import InvalidInput

    rows = data if isinstance(data, list) else [data]
    known = _columns(rows, None)
    unknown = [c for c in wanted if c not in known]
    if unknown and rows:
        raise InvalidInput(f"--columns: no column {', '.join(unknown)} (columns: {', '.join(known)})")
    picked = [{c: row.get(c) for c in wanted} for row in rows]
    return picked if isinstance(data, list) else picked[0]


def cut_notice(shown: int, hint: str | None = None) -> str:
    """The stderr line for a list that ``--limit`` cut: it had more rows than the
    ``shown`` ones (known from one row fetched past the limit; nothing is counted)."""
    return f"showing {shown:,} of more than {shown:,}; {hint or 'use --limit N to see more'}"


def render(
    data: dict[str, Any] | list[dict[str, Any]],
    fmt: Fmt,
    *,
    columns: list[str] | None = None,
    row_style: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    """``row_style``: a rich style per row of a list in table output (e.g. red for a
    negative margin); only a terminal shows it, the other formats carry the data."""
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
    _table(data, rows, columns, wide=fmt is Fmt.wide, row_style=row_style)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A show result with its nested objects that hold rows opened up: their
    fields as ``outer.field``, so the rows inside become sub-tables too
    (a rerate task's report: per agreement, per destination)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and any(_is_rows(v) for v in value.values()):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _table(
    data: dict[str, Any] | list[dict[str, Any]],
    rows: list[dict[str, Any]],
    columns,
    *,
    wide: bool,
    row_style: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    """A list as one table; an object as its fields, then each nested list of objects as a sub-table."""
    from rich.console import Console  # only tables need rich
    from rich.table import Table

    from cpaas_cli.cli.tables import build_table, table_width, terminal_width

    out = sys.stdout
    width = None if wide else terminal_width()
    hidden: list[str] = []

    def fitted(items: list[dict[str, Any]], cols: list[str]):
        table, cut = build_table(items, cols, width=width, scalar=_scalar, safe=terminal_safe)
        hidden.extend(c for c in cut if c not in hidden)
        return table

    def console_for(table) -> Console:
        need = max(table_width(table), 1) if width is None else width
        return Console(file=out, width=need, soft_wrap=False, highlight=False)

    if isinstance(data, dict):
        data = _flatten(data)
        nested = {k: v for k, v in data.items() if _is_rows(v)}
        fields = Table(show_header=False, box=None, pad_edge=False)
        fields.add_column("field", style="bold", no_wrap=True)
        fields.add_column("value", overflow="fold")
        for key, value in data.items():
            if key not in nested:
                fields.add_row(_cell(key), _cell(value))
        Console(file=out, width=width or 240, soft_wrap=False, highlight=False).print(fields)
        for key, items in nested.items():
            out.write(f"\n{terminal_safe(key)} ({len(items)}):\n")
            sub = fitted(items, _columns(items, None))
            console_for(sub).print(sub)
    else:
        table = fitted(rows, _columns(rows, columns))
        if row_style is not None:
            for item, row in zip(rows, table.rows, strict=True):
                row.style = row_style(item)
        console_for(table).print(table)
        if not rows:
            sys.stderr.write("(no rows)\n")
    if hidden:
        sys.stderr.write(
            f"(hidden to fit {width} columns: {', '.join(terminal_safe(h) for h in hidden)}; use -o wide or --columns)\n"
        )
