"""The streaming XLSX writer: files open in openpyxl and calamine and hold what was written."""

from __future__ import annotations

import zipfile
from datetime import date
from decimal import Decimal
from enum import Enum

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from cpaas_cli.exports import xlsx_stream
from cpaas_cli.exports.writers import RowWriter
from cpaas_cli.exports.xlsx_stream import XlsxStreamWriter, column_letter

TRICKY = [
    "a & b < c > d \" ' ]]> e",
    "tab\there, new\nline, cr\r\nlf",
    "  spaces at both ends  ",
    "trailing ",
    "emoji 😀 🇪🇸 and ñ, 中文",
    "_x0041_ looks like an escape",
    "=1+1",
    "0034600000001",
    "01",
    "1e5",
    "",
]
CONTROL = "bell\x07 vt\x0b us\x1f"  # characters XML 1.0 cannot carry


def _openpyxl(path, sheet=0):
    return list(openpyxl.load_workbook(path, read_only=True).worksheets[sheet].iter_rows(values_only=True))


def _calamine(path, sheet=0):
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_index(sheet).to_python()


def _write(path, rows, name="s"):
    w = XlsxStreamWriter(path)
    w.new_sheet(name)
    w.write_rows(rows)
    w.close()


def test_text_round_trips_in_both_readers(tmp_path):
    f = tmp_path / "t.xlsx"
    _write(f, [[i, t] for i, t in enumerate(TRICKY)] + [[99, CONTROL]])
    a, b = _openpyxl(f), _calamine(f)
    assert [r[1] for r in b[:-1]] == TRICKY
    assert b[-1][1] == CONTROL  # calamine (and Excel) undo Excel's _xHHHH_ escape
    # openpyxl does not undo _xHHHH_ escapes: it shows them as written
    escaped = {"_x0041_ looks like an escape": "_x005F_x0041_ looks like an escape"}
    assert [r[1] for r in a[:-1]] == [escaped.get(t, t) for t in TRICKY]
    assert a[-1][1] == "bell_x0007_ vt_x000B_ us_x001F_"
    assert [r[0] for r in a] == [*range(len(TRICKY)), 99] and all(isinstance(r[0], int) for r in a)


def test_one_odd_text_among_thousands_is_still_escaped(tmp_path):
    """The plain-text check works on whole columns of a chunk: one value must be enough to trip it."""
    rows = [[f"n{i}", "ok"] for i in range(2 * xlsx_stream.CHUNK + 10)]
    rows[xlsx_stream.CHUNK + 7][1] = "<b>&"
    rows[17][1] = " lead"
    rows[-1][0] = "tail\r"
    f = tmp_path / "t.xlsx"
    _write(f, rows)
    for got in (_openpyxl(f), _calamine(f)):
        assert [list(r) for r in got] == rows


def test_empty_cells_numbers_and_other_types(tmp_path):
    class Colour(str, Enum):
        red = "red"

    f = tmp_path / "t.xlsx"
    row = [None, 7, -2.5, Decimal("1.10"), True, False, ["a", 2], {"b": 1, "a": [1]}, date(2026, 3, 1), Colour.red]
    _write(f, [["h"] * len(row), row, [None, None, "last"], [float("nan"), Decimal("Infinity")]])
    a, b = _openpyxl(f), _calamine(f)
    assert a[1] == (None, 7, -2.5, 1.1, True, False, "a,2", '{"a": [1], "b": 1}', "2026-03-01", "red")
    assert b[1] == ["", 7.0, -2.5, 1.1, True, False, "a,2", '{"a": [1], "b": 1}', "2026-03-01", "red"]
    assert a[2][:3] == (None, None, "last")
    assert a[3][:2] == ("nan", "Infinity")  # not numbers Excel knows: written as text


def test_rows_of_different_lengths(tmp_path):
    f = tmp_path / "t.xlsx"
    _write(f, [["a", "b", "c"], ["x"], ["y", 2, "z & w"]])
    assert _openpyxl(f) == [("a", "b", "c"), ("x",), ("y", 2, "z & w")]
    assert _calamine(f) == [["a", "b", "c"], ["x", "", ""], ["y", 2.0, "z & w"]]


def test_the_package_parts(tmp_path):
    f = tmp_path / "t.xlsx"
    w = XlsxStreamWriter(f)
    for name in ("edr", "edr & co"):
        w.new_sheet(name)
        w.write_rows([["h"], ["v"]])
    w.close()
    names = set(zipfile.ZipFile(f).namelist())
    assert {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels"} <= names
    assert {"xl/styles.xml", "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"} <= names
    book = openpyxl.load_workbook(f)  # the full (not read-only) loader checks more
    assert book.sheetnames == ["edr", "edr & co"]
    assert book.worksheets[1]["A2"].value == "v"
    assert CalamineWorkbook.from_path(str(f)).sheet_names == ["edr", "edr & co"]


def test_column_letters():
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702)] == ["A", "Z", "AA", "AZ", "BA", "ZZ", "AAA"]


@pytest.mark.parametrize("many", [True, False])
def test_row_writer_rolls_over_inside_one_batch(tmp_path, many):
    f = tmp_path / "r.xlsx"
    rows = [[i, f"r{i}"] for i in range(10)]
    with RowWriter(f, ["n", "text"], "xlsx", sheet="edr", sheet_rows=4) as w:
        if many:
            w.write_many(rows, scalars=True)
        else:
            for r in rows:
                w.write(r)
    assert (w.rows, w.sheets) == (10, 4)
    assert openpyxl.load_workbook(f, read_only=True).sheetnames == ["edr", "edr-2", "edr-3", "edr-4"]
    seen = []
    for i in range(4):
        got = _calamine(f, i)
        assert got[0] == ["n", "text"]
        seen += [(int(n), t) for n, t in got[1:]]
    assert seen == [(i, f"r{i}") for i in range(10)]
