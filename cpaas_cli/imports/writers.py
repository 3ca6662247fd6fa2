"""Writing rows to files: CSV, XLSX (openpyxl, write-only mode) and JSONL.

Rows are dicts; nested values (lists, dicts) are written as JSON text in CSV
and XLSX cells. Rows are streamed, so exports of millions of rows stay small in
memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cpaas_cli.errors import InvalidInput

FORMATS = ("csv", "xlsx", "jsonl")


def _flat(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def format_for(path: Path, fmt: str | None) -> str:
    chosen = (fmt or path.suffix.lstrip(".")).lower()
    if chosen == "xls":
        chosen = "xlsx"
    if chosen not in FORMATS:
        raise InvalidInput(f"{path.name}: choose a format with --format ({', '.join(FORMATS)})")
    return chosen


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]], columns: list[str], fmt: str | None = None) -> int:
    """Write rows to ``path``; returns how many were written."""
    p = Path(path)
    kind = format_for(p, fmt)
    n = 0
    if kind == "jsonl":
        with p.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False, default=str) + "\n")
                n += 1
    elif kind == "csv":
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for row in rows:
                w.writerow([_flat(row.get(c)) for c in columns])
                n += 1
    else:
        import openpyxl

        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("contacts")
        sheet.append(columns)
        for row in rows:
            sheet.append([_flat(row.get(c)) for c in columns])
            n += 1
        book.save(p)
    return n


def write_table(path: str | Path, rows: Iterable[dict[str, Any]], columns: list[str]) -> int:
    """Write rows to .csv or .xlsx, chosen by the file's suffix."""
    return write_rows(path, rows, columns)
