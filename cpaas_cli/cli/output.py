"""Rendering of command results: table, json, jsonl, csv, tsv.

stdout carries data only; everything else goes to stderr. CSV/TSV cells a
spreadsheet would run as formulas get a leading quote unless ``--raw-cells``.
"""

from __future__ import annotations

import csv
import json
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
                table.add_row(key, f"{len(value)} rows (see -o json)")
            else:
                table.add_row(key, _scalar(value))
        console.print(table)
        return
    cols = _columns(rows, columns)
    table = Table(show_lines=False)
    for c in cols:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*[_scalar(row.get(c)) for c in cols])
    console.print(table)
    if not rows:
        sys.stderr.write("(no rows)\n")
