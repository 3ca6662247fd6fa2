"""Export writers: CSV and XLSX files from rows of plain values."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def write_table(path: str | Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Write rows to .csv or .xlsx (chosen by the suffix)."""
    p = Path(path)
    if p.suffix.lower() == ".xlsx":
        import openpyxl

        book = openpyxl.Workbook(write_only=True)
        ws = book.create_sheet("data")
        ws.append(columns)
        for r in rows:
            ws.append([_cell(r.get(c)) for c in columns])
        book.save(p)
        return
    with p.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _cell(r.get(c)) for c in columns])
