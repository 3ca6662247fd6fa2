"""Reading tabular input files: CSV (delimiter sniffed; UTF-8 with or without
BOM, UTF-16, Latin-1), XLSX (python-calamine, after the checks of
``imports.xlsx_read``, in a child process unless the sheet is plainly safe) and
JSONL.

Every reader yields ``(row_number, {column: text})`` where the row number is the
one a person sees in a spreadsheet: the header is row 1, the first data row 2
(JSONL: the line number). Values are stripped strings; empty cells are "".
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO

from cpaas_cli.errors import InvalidInput, Problem

Row = tuple[int, dict[str, str]]
Grid = tuple[int, list[str]]

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
XLSX_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}

MAX_FIELD_CHARS = 131_072
"""The longest CSV cell an import accepts (Python's own default field limit)."""
CSV_READ_LIMIT = 8 * MAX_FIELD_CHARS
"""The csv module's field limit: a longer cell is read (bounded) and refused
naming its column; a cell past this is refused naming its row only."""
csv.field_size_limit(CSV_READ_LIMIT)


def detect_encoding(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def header_names(names: list[str], path: Path) -> list[str]:
    cleaned = [str(n or "").strip() for n in names]
    seen: set[str] = set()
    for n in cleaned:
        if n and n in seen:
            raise InvalidInput(f"{path.name}: column {n!r} appears twice in the header")
        seen.add(n)
    if not any(cleaned):
        raise InvalidInput(f"{path.name}: the first row holds no column names")
    return cleaned


def read_csv_lists(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and the rows of a CSV file as lists: ``(names, rows)``.

    Every row is a list of ``len(names)`` stripped strings (a short row padded
    with "", cells past the header dropped); empty rows are skipped; numbers as
    in :func:`read_csv`, which is this with each list turned into a dict. For
    bulk readers that map the header once and read cells by position. The
    header is read (and checked) before this returns."""
    encoding = detect_encoding(path)
    fh = path.open("r", encoding=encoding, newline="")
    try:
        sample = fh.read(64 * 1024)
        fh.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(sample)
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            first = next(reader)
        except StopIteration:
            fh.close()
            return [], iter(())
        except csv.Error as exc:
            raise _csv_error(path, 1, exc) from exc
        _check_lengths(path, 1, first, [])
        names = header_names(first, path)
    except BaseException:
        fh.close()
        raise
    return names, _csv_lists(path, fh, reader, names)


def _csv_error(path: Path, row: int, exc: csv.Error) -> InvalidInput:
    """A row the csv module cannot read (a cell past ``CSV_READ_LIMIT``) as one line."""
    text = str(exc)
    if "field limit" in text:
        text = f"longer than {CSV_READ_LIMIT:,} characters (at most {MAX_FIELD_CHARS:,} are allowed)"
    problem = Problem("a cell", text, row)
    return InvalidInput(f"{path.name}: {problem}", problems=[problem])


def _check_lengths(path: Path, row: int, values: list[str], names: list[str]) -> None:
    """InvalidInput naming the row and column of a cell over ``MAX_FIELD_CHARS``."""
    for i, v in enumerate(values):
        if len(v) > MAX_FIELD_CHARS:
            name = (names[i] if i < len(names) else "") or f"column {i + 1}"
            problem = Problem(name, f"{len(v):,} characters, over the {MAX_FIELD_CHARS:,} allowed", row)
            raise InvalidInput(f"{path.name}: {problem}", problems=[problem])


def _csv_lists(
    path: Path, fh: IO[str], reader: Iterator[list[str]], names: list[str]
) -> Iterator[tuple[int, list[str]]]:
    strip, join = str.strip, "".join
    width = len(names)
    with fh:
        number = 1
        while True:
            number += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _csv_error(path, number, exc) from exc
            joined = join(values)
            if not joined.strip():
                continue
            if len(joined) > MAX_FIELD_CHARS:  # a cell may be over the limit (a row this long is rare)
                _check_lengths(path, number, values, names)
            values = list(map(strip, values))
            if len(values) != width:
                if len(values) > width:
                    del values[width:]
                else:
                    values.extend([""] * (width - len(values)))
            yield number, values


def read_csv(path: Path) -> Iterator[Row]:
    names, rows = read_csv_lists(path)
    if all(names):  # every column named: a row is a plain zip
        for number, values in rows:
            yield number, dict(zip(names, values, strict=True))
    else:
        named = [(i, n) for i, n in enumerate(names) if n]
        for number, values in rows:
            yield number, {n: values[i] for i, n in named}


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # A spreadsheet stores 34600000001 as 3.4600000001e10: print it whole.
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def read_xlsx(path: Path, sheet: str | int = 0) -> Iterator[Row]:
    """Rows of one sheet (a name, or a 0-based index; default the first), read
    after the workbook's unpacked size, rows and cell extent are checked, in a
    child process unless plainly safe (see ``imports.xlsx_read``)."""
    from cpaas_cli.imports.xlsx_read import read_sheet

    yield from read_sheet(path, sheet)


def read_jsonl(path: Path) -> Iterator[Row]:
    encoding = detect_encoding(path)
    with path.open("r", encoding=encoding) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path.name}: line {number} is not JSON: {exc.msg}") from exc
            except RecursionError:
                raise InvalidInput(f"{path.name}: line {number} is nested too deeply") from None
            if not isinstance(obj, dict):
                raise InvalidInput(f"{path.name}: line {number} is not a JSON object")
            yield number, {str(k): cell_text(v) for k, v in obj.items()}


DEFAULT_MAX_BYTES = 100 * 1024 * 1024


def check_size(path: Path, max_bytes: int | None) -> int:
    """The file's size, or InvalidInput when it is over the limit."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise InvalidInput(
            f"{path.name} is {size / 1048576:.1f} MB, over the {max_bytes / 1048576:g} MB limit "
            "(raise it with --max-size or the config)"
        )
    return size


def read_rows(path: str | Path, *, sheet: str | int | None = None, max_bytes: int | None = None) -> Iterator[Row]:
    """Rows of a CSV, XLSX or JSONL file, chosen by the file's suffix.

    ``sheet`` picks an XLSX sheet by name or 0-based index (default the first);
    ``max_bytes`` refuses larger files before reading a byte of them.
    """
    p = _existing(path, max_bytes)
    suffix = p.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        return read_xlsx(p, 0 if sheet is None else sheet)
    if sheet is not None:
        raise InvalidInput(f"{p.name}: a sheet can only be chosen in a workbook (.xlsx)")
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(p)
    if suffix in CSV_SUFFIXES or suffix == "":
        return read_csv(p)
    raise InvalidInput(f"{p.name}: unsupported file type {suffix!r} (use .csv, .tsv, .xlsx or .jsonl)")


def _existing(path: str | Path, max_bytes: int | None) -> Path:
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"file {str(path)!r} does not exist")
    if p.is_dir():
        raise InvalidInput(f"{str(path)!r} is a directory, not a file")
    check_size(p, max_bytes)
    return p


def read_grid(path: str | Path, *, sheet: str | int | None = None, max_bytes: int | None = None) -> Iterator[Grid]:
    """Every non-empty row of a CSV or XLSX file as ``(row number, [cell texts])``,
    no row taken as the header: for sheets whose header is not on row 1 (a title
    and blank rows above it). Row numbers are the ones a person sees."""
    p = _existing(path, max_bytes)
    suffix = p.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        from cpaas_cli.imports.xlsx_read import read_sheet_cells

        return read_sheet_cells(p, 0 if sheet is None else sheet, raw=True)
    if sheet is not None:
        raise InvalidInput(f"{p.name}: a sheet can only be chosen in a workbook (.xlsx)")
    if suffix in CSV_SUFFIXES or suffix == "":
        return _csv_grid(p)
    raise InvalidInput(f"{p.name}: unsupported file type {suffix!r} (use .csv, .tsv or .xlsx)")


def _csv_grid(path: Path) -> Iterator[Grid]:
    encoding = detect_encoding(path)
    with path.open("r", encoding=encoding, newline="") as fh:
        sample = fh.read(64 * 1024)
        fh.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(sample)
        reader = csv.reader(fh, delimiter=delimiter)
        number = 0
        while True:
            number += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _csv_error(path, number, exc) from exc
            if not "".join(values).strip():
                continue
            _check_lengths(path, number, values, [])
            yield number, [v.strip() for v in values]


def read_lists(
    path: str | Path, *, max_bytes: int | None = None
) -> tuple[list[str], Iterator[tuple[int, list[str]]]] | None:
    """A CSV file (as :func:`read_rows` picks readers) as ``read_csv_lists`` gives
    it; None for a workbook or JSONL file (read those with :func:`read_rows`)."""
    p = _existing(path, max_bytes)
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES or suffix == "":
        return read_csv_lists(p)
    return None
