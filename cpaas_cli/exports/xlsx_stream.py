"""A streaming XLSX writer: rows go straight into the sheet's XML inside the zip file.

Why hand-written: no well-kept library writes XLSX at the rate an EDR export
needs in constant memory. openpyxl's write-only mode took 160 s for the 20
million cells of a 1,000,000-row export, and xlsxwriter's constant_memory mode
8.4 s of CPU per 100,000 rows of 20 cells (about 84 s a million, before a row
is read from the database); both spend several Python calls on every cell.
This writer spends one ``str.format`` call per *row* (from a template per row
shape) plus a few C-speed checks per column of each chunk: about 1 s per
100,000 rows. Memory stays flat: each chunk is written to the open zip entry
and dropped.

What it writes is what a data export needs and no more: the parts every reader
requires (``[Content_Types].xml``, ``_rels/.rels``, ``xl/workbook.xml``, its
rels, a minimal ``xl/styles.xml`` and ``xl/worksheets/sheetN.xml``), strings
as inline strings (so text that looks like a number, a phone number or MNC
"01", stays text), numbers, booleans and empty cells. Every cell carries its
reference (``r="B7"``), as Excel writes them. A sheet may have a header row,
frozen and with an autofilter, and number formats per column for its numeric
cells (money, counts). No shared strings, formulas, fonts or column widths; a
text starting with "=" is text, not a formula.
Other values become text: a list its items joined by commas and a dict its
JSON (as ``RowWriter`` always wrote them), a date or time its ISO form (no
exporter passes one: they format times themselves). Files are read with
calamine (``imports/xlsx_read.py``); openpyxl is only a test dependency.

Text is escaped for XML; carriage returns are written as ``&#13;`` so they
survive XML's line-end normalisation; the control characters XML 1.0 cannot
carry at all are written with Excel's own ``_xHHHH_`` escape (Excel and
calamine read them back; openpyxl shows the escape as it is), text that
itself looks like such an escape has its underscore escaped (``_x005F_``), a
text with white space at either end is marked ``xml:space="preserve"``, and a
lone surrogate (not encodable) becomes U+FFFD.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# Rows per generated chunk: big enough that per-chunk work vanishes, small enough for flat memory.
CHUNK = 5000
# zlib level: 1 is several times faster than the default 6, and the file is about as small
# as openpyxl's at level 6 (cell references compress less well than the rest).
COMPRESSLEVEL = 1

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0 at all
_SURROGATE = re.compile("[\ud800-\udfff]")
_LOOKS_ESCAPED = re.compile("_(x[0-9A-Fa-f]{4}_)")
_NONE = type(None)


class _Preserve(str):
    """Escaped text with leading or trailing white space: its cell gets ``xml:space="preserve"``."""

    __slots__ = ()


def column_letter(i: int) -> str:
    """0 → A, 25 → Z, 26 → AA…"""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def escape_text(s: str) -> str:
    """XML text-node form of ``s`` (see the module docstring for what is escaped how)."""
    if "_x" in s:
        s = _LOOKS_ESCAPED.sub(r"_x005F_\1", s)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    s = _ILLEGAL.sub(lambda m: f"_x{ord(m.group()):04X}_", s)
    return _SURROGATE.sub("\ufffd", s)


def _text_cell(v: str | None) -> str | None:
    if v is None:
        return None
    e = escape_text(v)
    return _Preserve(e) if v[:1].isspace() or v[-1:].isspace() else e


def _plain(v: Any) -> Any:
    """Any value → str, int, bool, a finite float or Decimal, or None (the types a template writes).

    As RowWriter always did: a list is its items joined by commas, a dict its
    JSON text; dates and times become ISO text, anything else its str().
    (openpyxl wrote dates as date cells; no caller passes one.)
    """
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, str):
        return str.__str__(v)  # the text itself, also of a str-based enum
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, Decimal):
        return v if v.is_finite() else str(v)
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    return str(v)


def _any_cell(v: Any) -> Any:
    v = _plain(v)
    return _text_cell(v) if type(v) is str else v


def _text_is_plain(col: Sequence[str | None]) -> bool:
    """Whether every text of a column goes into XML as it is.

    Checked on the column's texts joined by "|", with C-speed string methods
    only: no character that is not printable (controls, CR, LF, tab, U+FFFE,
    lone surrogates), no ``&``, ``<``, ``>``, nothing that looks like an
    ``_xHHHH_`` escape, no space at either end of a text. A false alarm (a "| "
    inside a text) only sends the column through escaping, which is always right.
    """
    text = "|".join(filter(None, col))
    return not (
        not text.isprintable()
        or "&" in text
        or "<" in text
        or ">" in text
        or "_x" in text
        or "| " in text
        or " |" in text
        or text[:1] == " "
        or text[-1:] == " "
    )


def _prepare(chunk: list[Sequence[Any]]) -> tuple[list[Sequence[Any]], list[tuple[type, ...]]]:
    """The chunk's rows with every value of a type a template writes (text escaped), and their shapes.

    Work is done column by column and only where needed: a column of ints and
    None is left alone, a column of plain text is checked in one go (see
    _text_is_plain), and only columns that fail are converted value by value.
    """
    shapes = [tuple(map(type, r)) for r in chunk]
    distinct = set(shapes)
    if len({len(s) for s in distinct}) != 1:  # rows of different lengths: value by value
        rows = [[_any_cell(v) for v in r] for r in chunk]
        return rows, [tuple(map(type, r)) for r in rows]
    cols: list[Any] = []
    changed = False
    for i, col in enumerate(zip(*chunk, strict=True)):
        types = {s[i] for s in distinct}
        if types <= {int, _NONE}:
            pass
        elif types <= {str, _NONE}:
            if not _text_is_plain(col):
                col = tuple(map(_text_cell, col))
                changed = True
        else:
            col = tuple(map(_any_cell, col))
            changed = True
        cols.append(col)
    if not changed:
        return chunk, shapes
    rows = list(zip(*cols, strict=True))
    return rows, [tuple(map(type, r)) for r in rows]


class _Templates:
    """One str.format template per row *shape* (the tuple of its values' types).

    A template holds the whole row's XML with a placeholder per value; cells of
    None are left out. Exports have a handful of shapes, so the work per row is:
    a tuple of types, a dict lookup and one format call.
    """

    def __init__(self, width: int, styles: Sequence[int] = ()):
        self.refs = [column_letter(i) for i in range(width)]
        self.styles = list(styles)
        self.cache: dict[tuple[type, ...], str] = {}

    def build(self, shape: tuple[type, ...]) -> str:
        parts = ['<row r="{0}">']
        for i, t in enumerate(shape, start=1):
            style = self.styles[i - 1] if i - 1 < len(self.styles) else 0
            numeric = t in (int, float, Decimal)
            cell = f'<c r="{self.refs[i - 1]}{{0}}"' + (f' s="{style}"' if style and numeric else "")
            if t is _NONE:
                continue
            if t is str:
                parts.append(f'{cell} t="inlineStr"><is><t>{{{i}}}</t></is></c>')
            elif t is _Preserve:
                parts.append(f'{cell} t="inlineStr"><is><t xml:space="preserve">{{{i}}}</t></is></c>')
            elif t is bool:
                parts.append(f'{cell} t="b"><v>{{{i}:d}}</v></c>')
            elif t in (int, float, Decimal):
                parts.append(f"{cell}><v>{{{i}}}</v></c>")
            else:
                raise TypeError(f"no XLSX cell for {t.__name__} (not prepared)")
        parts.append("</row>")
        tmpl = self.cache[shape] = "".join(parts)
        return tmpl


class XlsxStreamWriter:
    """Writes sheets one after the other; rows are sequences of values in column order.

    ``new_sheet(name)`` closes the current sheet and starts the next;
    ``write_rows`` appends rows to the current one; ``close`` finishes the file.
    The caller counts rows per sheet (``RowWriter`` rolls over at Excel's limit).
    """

    def __init__(self, path: str | Path, *, compresslevel: int = COMPRESSLEVEL):
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel)
        self._sheets: list[str] = []
        self._out: Any = None
        self._row = 0
        self._templates = _Templates(0)
        self._formats: list[str] = []  # number format codes; style i + 1 uses _formats[i]
        self._header = False
        self._width = 0

    def style_for(self, number_format: str | None) -> int:
        """The cell style index of a number format code (e.g. ``#,##0.00``); 0 for none."""
        if not number_format:
            return 0
        if number_format not in self._formats:
            self._formats.append(number_format)
        return self._formats.index(number_format) + 1

    def new_sheet(self, name: str, *, header: bool = False, width: int = 0, styles: Sequence[int] = ()) -> None:
        """Start a sheet. ``header``: its first row is a header, frozen and with an
        autofilter over ``width`` columns. ``styles``: per column, the style of its
        numeric cells (see ``style_for``; text cells stay unstyled)."""
        self._end_sheet()
        self._sheets.append(name)
        self._out = self._zip.open(f"xl/worksheets/sheet{len(self._sheets)}.xml", "w", force_zip64=True)
        views = (
            '<sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
            if header
            else ""
        )
        self._out.write(f'{_DECL}<worksheet xmlns="{_NS}">{views}<sheetData>'.encode())
        self._row = 0
        self._header, self._width = header and width > 0, width
        if styles or self._templates.styles:
            self._templates = _Templates(max(width, len(styles)), styles)

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        rows = rows if isinstance(rows, list) else list(rows)
        for start in range(0, len(rows), CHUNK):
            self._write_chunk(rows[start : start + CHUNK])

    def _write_chunk(self, chunk: list[Sequence[Any]]) -> None:
        if not chunk:
            return
        if self._out is None:
            raise ValueError("new_sheet() first")
        rows, shapes = _prepare(chunk)
        width = max(map(len, shapes))
        if len(self._templates.refs) < width:
            self._templates = _Templates(width, self._templates.styles)
        cache = self._templates.cache
        for shape in set(shapes) - cache.keys():
            self._templates.build(shape)
        first = self._row + 1
        self._row += len(rows)
        xml = "".join(
            [cache[s].format(str(n), *r) for n, r, s in zip(range(first, first + len(rows)), rows, shapes, strict=True)]
        )
        self._out.write(xml.encode())

    def _end_sheet(self) -> None:
        if self._out is not None:
            self._out.write(b"</sheetData>")
            if self._header:
                self._out.write(f'<autoFilter ref="A1:{column_letter(self._width - 1)}{max(self._row, 1)}"/>'.encode())
            self._out.write(b"</worksheet>")
            self._out.close()
            self._out = None

    def abandon(self) -> None:
        """Give up a half-written file (after an error): close what is open, ignore errors."""
        for part in (self._out, self._zip):
            try:
                if part is not None:
                    part.close()
            except (OSError, ValueError):
                pass
        self._out = None

    def _styles_xml(self) -> tuple[str, str]:
        """numFmts and cellXfs: style 0 plain, style i + 1 the i-th number format (ids from 164, custom)."""
        fmts = "".join(
            f'<numFmt numFmtId="{164 + i}" formatCode={quoteattr(code)}/>' for i, code in enumerate(self._formats)
        )
        xfs = '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>' + "".join(
            f'<xf numFmtId="{164 + i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
            for i in range(len(self._formats))
        )
        head = f'<numFmts count="{len(self._formats)}">{fmts}</numFmts>' if self._formats else ""
        return head, f'<cellXfs count="{len(self._formats) + 1}">{xfs}</cellXfs>'

    def close(self) -> None:
        self._end_sheet()
        if not self._sheets:
            self.new_sheet("Sheet1")
            self._end_sheet()
        n = len(self._sheets)
        z = self._zip
        sheets = "".join(
            f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="rId{i}"/>' for i, name in enumerate(self._sheets, 1)
        )
        z.writestr(
            "xl/workbook.xml",
            f'{_DECL}<workbook xmlns="{_NS}" xmlns:r="{_REL_NS}"><sheets>{sheets}</sheets></workbook>',
        )
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        rels += f'<Relationship Id="rId{n + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
        z.writestr("xl/_rels/workbook.xml.rels", f'{_DECL}<Relationships xmlns="{_PKG_REL_NS}">{rels}</Relationships>')
        numfmts, cellxfs = self._styles_xml()  # the schema's order: numFmts first, cellXfs after the borders
        z.writestr(
            "xl/styles.xml",
            f'{_DECL}<styleSheet xmlns="{_NS}">{numfmts}'
            '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f"{cellxfs}"
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            "</styleSheet>",
        )
        z.writestr(
            "_rels/.rels",
            f'{_DECL}<Relationships xmlns="{_PKG_REL_NS}">'
            f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_CT}.worksheet+xml"/>'
            for i in range(1, n + 1)
        )
        z.writestr(
            "[Content_Types].xml",
            f'{_DECL}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
            f"{overrides}</Types>",
        )
        z.close()
