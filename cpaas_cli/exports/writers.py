"""Writing rows to files: CSV, TSV, XLSX (our streaming writer, ``xlsx_stream``) and JSONL.

Rows are dicts (``write_rows``) or sequences in column order (``RowWriter``);
nested values are written as text in CSV and XLSX cells (a list as its items
joined by commas, a dict as JSON). Rows are streamed, so exports of millions of
rows stay small in memory. An XLSX file whose rows pass one sheet's limit
continues on a new sheet (with the header repeated); text formats can be
gzip-compressed.

A file is written through ``cpaas_cli.files``: to a temporary file next to
it, renamed over it when complete, so a failed export leaves the old file as
it was. CSV and TSV cells that a spreadsheet would run as formulas are
neutralised (``files.guard_cell``) unless the guard is off (``--raw-cells``);
XLSX cells are inline strings, which spreadsheets never run as formulas.
"""

from __future__ import annotations

import csv
import gzip as gz
import io
import json
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from cpaas_cli import files
from cpaas_cli.errors import InvalidInput
from cpaas_cli.exports.xlsx_stream import XlsxStreamWriter

FORMATS = ("csv", "tsv", "xlsx", "jsonl")
# Rows per XLSX sheet, header included (Excel's limit).
XLSX_MAX_ROWS = 1_048_576


def _flat(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _number(value: Any) -> Any:
    """A money or count text ("12.500000", "1,498") as a Decimal (exact), other values as they are."""
    if isinstance(value, str):
        try:
            number = Decimal(value.replace(",", ""))
        except InvalidOperation:
            return value
        return number if number.is_finite() else value
    return value


def _numbers(row: Sequence[Any], numeric: list[int]) -> list[Any]:
    out = list(row)
    for i in numeric:
        out[i] = _number(out[i])
    return out


_SHEET_BAD = str.maketrans({c: " " for c in "[]:*?/\\"})


def sheet_name(name: str) -> str:
    """A name Excel accepts for a sheet: no ``[]:*?/\\``, at most 31 characters, not blank."""
    return name.translate(_SHEET_BAD).strip()[:31] or "Sheet1"


# Excel number formats for the columns of exports (money in the currency's unit, exact micro-units, counts).
MONEY = "#,##0.00"
PRICE = "#,##0.00####"  # unit prices and exact amounts: 2 to 6 decimals
COUNT = "#,##0"
# The numeric columns of the invoice XLSX (lines, charges) and of the coverage export.
LINE_FORMATS = {
    "count": COUNT,
    "volume": COUNT,
    "unit_price": PRICE,
    "exact": PRICE,
    "net": MONEY,
    "rounding": PRICE,
    "tax": MONEY,
    "total": MONEY,
}
CHARGE_FORMATS = {"amount": PRICE, "unit_price": PRICE, "segments": COUNT}
COVERAGE_FORMATS = {"price": PRICE}


def format_for(path: Path, fmt: str | None) -> str:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        suffix = Path(path.stem).suffix.lower()
    chosen = (fmt or suffix.lstrip(".")).lower()
    if chosen == "xls":
        chosen = "xlsx"
    if chosen not in FORMATS:
        raise InvalidInput(f"{path.name}: choose a format with --format ({', '.join(FORMATS)})")
    return chosen


class RowWriter:
    """Streams rows (sequences in ``columns`` order) to a file or a binary stream.

    ``sheet_rows`` is the XLSX row limit per sheet (header included); past it
    the rows continue on ``<sheet>-2``, ``<sheet>-3``… Use as a context manager;
    ``rows`` counts the data rows written. A file target is replaced only when
    the writer closes without an error. ``guard`` neutralises formula cells in
    CSV/TSV (default: ``files.formula_guard()``, on unless ``--raw-cells``).
    """

    def __init__(
        self,
        target: str | Path | IO[bytes],
        columns: Sequence[str],
        fmt: str,
        *,
        gzip: bool = False,
        sheet: str = "rows",
        sheet_rows: int = XLSX_MAX_ROWS,
        guard: bool | None = None,
        formats: dict[str, str] | None = None,
    ):
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
        if fmt == "xlsx" and gzip:
            raise InvalidInput("XLSX files are compressed already; --gzip is for csv, tsv and jsonl")
        if sheet_rows < 2:
            raise InvalidInput("an XLSX sheet must hold at least the header and one row")
        self.columns = list(columns)
        self.fmt = fmt
        self.rows = 0
        self.sheets = 0
        self._target = target
        self._sheet_name = sheet
        self._sheet_rows = sheet_rows
        self._guard = files.formula_guard() if guard is None else guard
        self._own: files.AtomicFile | None = None
        self._raw: IO[bytes]
        self._numeric = [i for i, c in enumerate(self.columns) if formats and c in formats]
        if fmt == "xlsx":
            if not isinstance(target, str | Path):
                raise InvalidInput("XLSX needs a file (--out)")
            self._own = files.AtomicFile(target)
            self._book = XlsxStreamWriter(self._own.fh)
            self._styles = [self._book.style_for((formats or {}).get(c)) for c in self.columns]
            self._new_sheet()
            return
        if isinstance(target, str | Path):
            self._own = files.AtomicFile(target)
            self._raw = self._own.fh
        else:
            self._raw = target
        self._gz = gz.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6) if gzip else None
        binary = self._gz or self._raw
        self._text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=False)
        if fmt == "jsonl":
            self.write = self._write_jsonl  # type: ignore[method-assign]
        else:
            self._delimiter = "," if fmt == "csv" else "\t"
            self._hint = files.formula_hint(self._delimiter)
            w = csv.writer(self._text, delimiter=self._delimiter, lineterminator="\n")
            w.writerow(self.columns)
            self._csv = w
            self.write = self._write_csv  # type: ignore[method-assign]

    # -- xlsx
    def _new_sheet(self) -> None:
        self.sheets += 1
        name = self._sheet_name if self.sheets == 1 else f"{self._sheet_name}-{self.sheets}"
        self._book.new_sheet(sheet_name(name), header=True, width=len(self.columns), styles=self._styles)
        self._book.write_rows([self.columns])
        self._in_sheet = 1

    def write(self, row: Sequence[Any]) -> None:  # xlsx; text formats rebind this in __init__
        self._write_xlsx([row])

    def _write_xlsx(self, rows: list[Sequence[Any]]) -> None:
        """Rows onto the current sheet, rolling over to the next one at ``sheet_rows``."""
        if self._numeric:
            rows = [_numbers(row, self._numeric) for row in rows]
        done = 0
        while done < len(rows):
            if self._in_sheet >= self._sheet_rows:
                self._new_sheet()
            take = min(len(rows) - done, self._sheet_rows - self._in_sheet)
            self._book.write_rows(rows[done : done + take])  # nested values become text there
            self._in_sheet += take
            self.rows += take
            done += take

    # -- text
    def _write_csv(self, row: Sequence[Any]) -> None:
        cells = [_flat(v) for v in row]
        self._csv.writerow([files.guard_cell(v) for v in cells] if self._guard else cells)
        self.rows += 1

    def _write_jsonl(self, row: Sequence[Any]) -> None:
        self._text.write(json.dumps(dict(zip(self.columns, row, strict=True)), ensure_ascii=False, default=str))
        self._text.write("\n")
        self.rows += 1

    def _guarded(self, rows: list) -> list:
        """``rows`` with formula cells neutralised; a quick look at the chunk as
        CSV text first, so a chunk without any such cell is passed on as it is."""
        buf = io.StringIO()
        csv.writer(buf, delimiter=self._delimiter, lineterminator="\n").writerows(rows)
        if self._hint.search(buf.getvalue()) is None:
            return rows
        return files.guard_rows(rows)

    def write_many(self, rows: Iterable[Sequence[Any]], *, scalars: bool = False) -> None:
        """Write many rows at once. ``scalars``: the caller vouches that no value is
        a list or a dict (only str, numbers, None), so CSV rows go to the csv
        module as they are, without a look at every value."""
        if self.fmt in ("csv", "tsv"):
            if scalars:
                out = rows if isinstance(rows, list) else list(rows)
            else:
                flat = _flat
                out = [[flat(v) for v in row] for row in rows]
            if self._guard:
                out = self._guarded(out)
            self._csv.writerows(out)
            self.rows += len(out)
            return
        if self.fmt == "xlsx":
            self._write_xlsx(rows if isinstance(rows, list) else list(rows))
            return
        for row in rows:
            self.write(row)

    def close(self) -> None:
        """Finish the file; a file target replaces the old file only now."""
        try:
            if self.fmt == "xlsx":
                self._book.close()
            else:
                self._text.flush()
                self._text.detach()
                if self._gz is not None:
                    self._gz.close()
                if self._own is None:
                    self._raw.flush()
        except OSError as exc:
            self.abort()
            if self._own is None:
                raise
            raise files.write_error(self._own.path, exc) from exc
        except BaseException:
            self.abort()
            raise
        if self._own is not None:
            self._own.commit()

    def abort(self) -> None:
        """Drop a half-written file target (the old file stays as it was)."""
        if self.fmt == "xlsx":
            self._book.abandon()
        if self._own is not None:
            self._own.abort()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        elif self._own is not None:
            self.abort()
            if isinstance(exc, OSError):
                raise files.write_error(self._own.path, exc) from exc


def write_rows(
    path: str | Path,
    rows: Iterable[dict[str, Any]],
    columns: list[str],
    fmt: str | None = None,
    *,
    sheet: str = "rows",
    formats: dict[str, str] | None = None,
) -> int:
    """Write rows to ``path``; returns how many were written. XLSX: the sheet is
    named ``sheet``; the columns in ``formats`` are numeric cells with that
    number format (a money text such as "12.500000" written as the exact number)."""
    p = Path(path)
    kind = format_for(p, fmt)
    with RowWriter(p, columns, kind, sheet=sheet, formats=formats) as w:
        for row in rows:
            w.write([row.get(c) for c in columns])
    return w.rows


def write_table(
    path: str | Path,
    rows: Iterable[dict[str, Any]],
    columns: list[str],
    *,
    sheet: str = "rows",
    formats: dict[str, str] | None = None,
) -> int:
    """Write rows to .csv or .xlsx, chosen by the file's suffix."""
    return write_rows(path, rows, columns, sheet=sheet, formats=formats)
