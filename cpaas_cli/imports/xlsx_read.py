"""Reading a workbook that may be hostile: checked as it unpacks, read in a child process unless plainly safe.

A workbook is a zip of XML parts, and its file size says little about what it
unpacks to: 4.7 KB with one cell at XFD1048576 made the XLSX reader
(python-calamine, which lays a sheet out as a dense grid) ask for 512 GB and
abort the whole process; 208 KB held a 200 MB cell; 716 KB held 2.7 million
rows and took 9 GB. So, before calamine sees the file:

1. the zip's directory is read: the unpacked size of all its parts together
   (``ZipInfo.file_size``) must stay within ``XlsxLimits.inflated_bytes``;
2. every worksheet part (``xl/worksheets/*.xml``) is unpacked as a stream
   (nothing kept) and its rows counted: no sheet may have more than
   ``max_rows`` rows. (This costs about half of calamine's own time.)

While unpacking, the cell references are read too: when every cell carries
one (``<c r="B7"``) and the grid calamine would lay out (last row × last
column) is small (``IN_PROCESS_CELLS``), the sheet is plainly safe and read
in-process (the scan is its only cost). Any other sheet (a far cell such as XFD1048576,
cells without references, an .xls) is read by calamine in a forked child
process that cannot take the command down with it: its address space is
capped (``memory_bytes`` more than the parent's), it writes no core file and
its stderr goes nowhere; a sheet whose used range is over ``max_rows`` ×
``max_columns`` or a cell over ``cell_chars`` characters is refused there (and
in-process alike), and the rows come back over a pipe in batches (marshalled
lists, cheaper to load than pickles). When the child dies (calamine aborts on
an allocation it cannot get, or crashes), the parent says so in one error
line (exit 4) instead of a core dump. Where ``fork`` does not
exist the sheet is read in-process, after the same checks.
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import re
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpaas_cli.errors import CpaasError, InvalidInput
from cpaas_cli.exports.xlsx_stream import column_letter
from cpaas_cli.imports.limits import XlsxLimits, current

Row = tuple[int, dict[str, str]]
BATCH = 5000  # rows per message from the child (fewer hand-overs between the processes)
PIPE_BYTES = 1 << 20  # pipe buffer: a few batches of read-ahead for the child
_SHEET_PART = re.compile(r"xl/worksheets/[^/]+\.xml", re.IGNORECASE)
# Cell references by the number of digits of their row, longest first: the highest
# row is among the longest numbers, so only those are collected (not every cell's).
_CELL_ROW_DIGITS = [re.compile(rb'<c r="[A-Z]{1,3}([1-9][0-9]{%d})"' % (d - 1)) for d in range(7, 0, -1)]
_CELL_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})[1-9]')
_WIDE = re.compile(rb'<c r="[A-Z]{2}')  # a column past Z
# a cell whose first attribute is not a plain reference (none, another first, or one past XFD9999999)
_UNREFERENCED = re.compile(rb'<c(?:>|/>| (?!r="[A-Z]{1,3}[1-9][0-9]{0,6}"))')
IN_PROCESS_CELLS = 32_000_000  # a grid calamine lays out in about 1 GB (32 bytes a cell): read in-process


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n < 1 << 30 else f"{n / (1 << 30):.1f} GB"


def inspect(path: Path, limits: XlsxLimits) -> bool:
    """Refuse a workbook whose parts unpack to too much or whose sheets are too large;
    True when it is plainly safe to read in-process (see ``_scan_sheet``).

    Only zip workbooks (.xlsx, .xlsm, .ods) are inspected; an old binary .xls (or
    a file that is no zip at all) goes to the reader in the child as it is."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        book = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: not a readable workbook (damaged or truncated?): {exc}") from exc
    with book:
        infos = book.infolist()
        inflated = sum(i.file_size for i in infos)
        if inflated > limits.inflated_bytes:
            raise InvalidInput(
                f"{path.name}: unpacks to {_mb(inflated)}, over the {_mb(limits.inflated_bytes)} limit "
                "for a workbook ([limits] xlsx_inflated_mb)"
            )
        sheets = [i for i in infos if _SHEET_PART.fullmatch(i.filename)]
        safe = [_scan_sheet(book, info, path, limits) for info in sheets]
    return bool(sheets) and all(safe)


def _column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _scan_sheet(book: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limits: XlsxLimits) -> bool:
    """Count the rows of a sheet part (unpacked as a stream, nothing kept) and find the
    extent of its cells from their references. True when every cell carries a plain
    reference (``<c r="B7"``) and the grid calamine would lay out is small
    (``IN_PROCESS_CELLS``): such a sheet is read in-process, any other in the child."""
    rows = top = 0
    plain = True
    letters: set[bytes] = {b"Z"}  # single letters: at most 26 columns, found without a per-cell look
    tail = b""
    try:
        with book.open(info) as part:
            while True:
                chunk = part.read(1 << 20)
                data = tail + chunk
                # whole tags only: a tag cut at the end goes on to the next round (the tags
                # looked for are under 32 bytes, so a "<" further back is complete here)
                cut = data.rfind(b"<")
                if not chunk or cut < 0 or len(data) - cut > 32:
                    cut = len(data)
                body, tail = data[:cut], data[cut:]
                rows += body.count(b"<row ") + body.count(b"<row>")
                if plain and _UNREFERENCED.search(body):
                    plain = False
                for pattern in _CELL_ROW_DIGITS:
                    if pattern.search(body):
                        top = max(top, int(max(pattern.findall(body))))  # equal lengths: bytes order is numeric
                        break
                if _WIDE.search(body):
                    letters.update(_CELL_COLUMN.findall(body))
                if rows > limits.max_rows:
                    raise InvalidInput(
                        f"{path.name}: a sheet has more than {limits.max_rows:,} rows ([limits] xlsx_max_rows)"
                    )
                if not chunk:
                    break
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: not a readable workbook (damaged or truncated?): {exc}") from exc
    width = max(map(_column_number, letters), default=0)
    return plain and top * width <= IN_PROCESS_CELLS


def read_sheet(path: Path, sheet: str | int, limits: XlsxLimits | None = None) -> Iterator[Row]:
    """Rows of one sheet as ``readers.read_rows`` yields them, read safely (see the module docstring)."""
    yield from read_sheet_cells(path, sheet, limits)


def read_sheet_cells(
    path: Path, sheet: str | int, limits: XlsxLimits | None = None, *, raw: bool = False
) -> Iterator[Any]:
    """Rows of one sheet, read safely: as dicts under the first row's names, or
    with ``raw`` as ``(row number, [cell texts])`` with no row taken as the
    header (for sheets with a title above their header)."""
    limits = limits or current()
    plainly_safe = inspect(path, limits)
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:  # pragma: no cover - no fork (not Linux/macOS)
        plainly_safe = True
    if plainly_safe:
        yield from _rows(_produce(path, sheet, limits, raw), raw)
        return
    import python_calamine  # noqa: F401 - loaded before the fork, not in the child

    receive, send = ctx.Pipe(duplex=False)
    with contextlib.suppress(OSError, AttributeError, ValueError):  # room for the child to read ahead (Linux)
        import fcntl

        fcntl.fcntl(send.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    child = ctx.Process(target=_child, args=(send, path, sheet, limits, raw), daemon=True)
    child.start()
    send.close()
    try:
        yield from _rows(_received(receive, child, path), raw)
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()


def _received(receive: Any, child: Any, path: Path) -> Iterator[tuple[str, Any]]:
    while True:
        try:
            message = marshal.loads(receive.recv_bytes())
        except (EOFError, OSError):
            child.join()
            code = child.exitcode
            if code is not None and code < 0:
                try:
                    why = f"signal {signal.Signals(-code).name}"
                except ValueError:
                    why = f"signal {-code}"
            else:
                why = f"exit {code}"
            raise InvalidInput(
                f"{path.name}: the workbook reader stopped ({why}): the sheet's used range is too large for "
                "memory or the file is damaged; nothing was imported"
            ) from None
        yield message
        if message[0] in ("end", "error"):
            return


def _rows(messages: Iterator[tuple[str, Any]], raw: bool = False) -> Iterator[Any]:
    header: list[str] = []
    for kind, payload in messages:
        if kind == "error":
            raise InvalidInput(payload)
        if kind == "header":
            header = payload
        elif kind == "rows" and raw:
            yield from payload
        elif kind == "rows":
            for number, cells in payload:
                yield number, {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(header) if name}


def _child(send: Any, path: Path, sheet: str | int, limits: XlsxLimits, raw: bool = False) -> None:
    """The child: limits on itself, then the messages of _produce down the pipe."""
    import faulthandler
    import resource

    faulthandler.disable()  # an abort is reported by the parent, in one line
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = used + limits.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)  # a Rust panic writes a backtrace there
    try:
        for message in _produce(path, sheet, limits, raw):
            send.send_bytes(marshal.dumps(message))
    except MemoryError:
        why = f"{path.name}: the sheet needs more memory than the reader may use ([limits] xlsx_memory_mb)"
        send.send_bytes(marshal.dumps(("error", why)))
    except BrokenPipeError:  # the parent stopped reading
        pass
    finally:
        with contextlib.suppress(OSError):
            send.close()


def _produce(path: Path, sheet: str | int, limits: XlsxLimits, raw: bool = False) -> Iterator[tuple[str, Any]]:
    """("header", names), ("rows", [(number, cells)…])…, then ("end", None) or ("error", message).
    With ``raw`` no header: the first row is a row like the others."""
    from python_calamine import CalamineWorkbook

    from cpaas_cli.imports.readers import cell_text, header_names

    try:
        book = CalamineWorkbook.from_path(str(path))
        names = list(book.sheet_names)
        if isinstance(sheet, int) and not 0 <= sheet < len(names) or isinstance(sheet, str) and sheet not in names:
            shown = ", ".join(repr(n) for n in names) or "none"
            yield "error", f"{path.name}: no sheet {sheet!r} (sheets: {shown})"
            return
        ws = book.get_sheet_by_index(sheet) if isinstance(sheet, int) else book.get_sheet_by_name(sheet)
    except Exception as exc:
        yield "error", f"{path.name}: not a readable workbook (damaged or truncated?): {_short(exc)}"
        return
    if ws.height > limits.max_rows or ws.width > limits.max_columns:
        yield (
            "error",
            (
                f"{path.name}: the sheet spans {ws.height:,} rows × {ws.width:,} columns, over the limit of "
                f"{limits.max_rows:,} × {limits.max_columns:,} ([limits] xlsx_max_rows, xlsx_max_columns)"
            ),
        )
        return
    rows = iter(ws.iter_rows())
    number = 1
    try:
        first = next(rows, None)
        if first is None:
            yield "end", None
            return
        if raw:
            rows = itertools.chain([first], rows)
        else:
            names = [_checked(cell_text(v), 1, i, path, limits) for i, v in enumerate(first)]
            yield "header", header_names(names, path)
        batch: list[tuple[int, list[str]]] = []
        for number, values in enumerate(rows, start=1 if raw else 2):
            cells = [cell_text(v) for v in values]
            if not any(cells):
                continue
            if max(map(len, cells)) > limits.cell_chars:
                for i, c in enumerate(cells):
                    _checked(c, number, i, path, limits)
            batch.append((number, cells))
            if len(batch) >= BATCH:
                yield "rows", batch
                batch = []
        if batch:
            yield "rows", batch
    except CpaasError as exc:
        yield "error", exc.message
        return
    except Exception as exc:
        yield "error", f"{path.name}: cannot read row {number} (damaged or truncated?): {_short(exc)}"
        return
    yield "end", None


def _checked(text: str, row: int, col: int, path: Path, limits: XlsxLimits) -> str:
    if len(text) > limits.cell_chars:
        raise InvalidInput(
            f"{path.name}: row {row}, column {column_letter(col)}: a cell of {len(text):,} characters, "
            f"over the {limits.cell_chars:,} a spreadsheet cell holds"
        )
    return text


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
