"""Files the tool writes: never the database or the input file, an existing file
only with --force, atomically (a failed write leaves the old file), and CSV/TSV
cells that a spreadsheet would run as formulas neutralised (issue 23, items 4 and 5)."""

from __future__ import annotations

import csv
import errno
import io
import os
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from cpaas_cli import files
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.edr import Edr
from tests.test_contacts import acme, imp, write  # noqa: F401
from tests.test_edr_export import WINDOW, add_edrs
from tests.test_money_cli import edr_file, row
from tests.test_money_cli import setup as money_setup

HOSTILE = ["=cmd|' /C calc'!A0", "@SUM(1)", '=HYPERLINK("http://x.test","y")', "+1+cmd|x", "-2+3", "\tx", "\rx"]
GUARDED = ["'" + v for v in HOSTILE]
# Through the CLI: a CR in a cell is left out (Python's csv writer does not quote a
# bare CR, so no reader gets it back either way), and contact names are stripped.
EDR_HOSTILE = HOSTILE[:-1]
NAMES = HOSTILE[:-2]
G_EDR, G_NAMES = GUARDED[:-1], GUARDED[:-2]


def sqlite_file(db_url: str) -> Path | None:
    return Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite:///") else None


def one_line_error(run, code: int) -> str:
    assert run.exit_code == code, (run.exit_code, run.stdout, run.stderr)
    lines = [x for x in run.stderr.strip().splitlines() if not x.startswith("exporting ")]  # progress note
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


def confirmed_invoice(cli, tmp_path, external_ids=None) -> None:
    money_setup(cli)
    ids = external_ids or [f"x-{i}" for i in range(3)]
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(i, external_id=x) for i, x in enumerate(ids)])))
    (inv,) = [i for i in cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z") if i["net"] != "0.00"]
    cli.json("invoice", "confirm", str(inv["id"]), "--at", "2026-04-02T00:00:00Z")


def no_part_files(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if p.name.endswith(".part")] == []


# ---------------------------------------------------------------- item 4: targets


def test_out_to_the_database_is_refused_and_the_database_intact(cli, db_url, tmp_path):
    confirmed_invoice(cli, tmp_path)
    db = sqlite_file(db_url)
    if db is None:  # PostgreSQL: no database file to protect; the config file is protected the same way
        assert files.database_files(db_url) == []
        cfg = tmp_path / "cpaas.toml"
        cfg.write_text(f'database_url = "{db_url}"\n')
        run = cli("--config", str(cfg), "invoice", "export", "INV-1", "--format", "pdf", "--out", str(cfg), expect=None)
        assert "the config file" in one_line_error(run, 4)
        assert cfg.read_text() == f'database_url = "{db_url}"\n'
        return
    before = db.read_bytes()
    for target in (db, tmp_path / "sub" / ".." / db.name, Path(str(db) + "-wal")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        for force in ([], ["--force"]):
            run = cli("invoice", "export", "INV-1", "--format", "pdf", "--out", str(target), *force, expect=None)
            assert "the database file" in one_line_error(run, 4)
    os.link(db, tmp_path / "alias.db")  # the same file under another name
    run = cli(
        "invoice", "export", "INV-1", "--format", "pdf", "--out", str(tmp_path / "alias.db"), "--force", expect=None
    )
    assert "the database file" in one_line_error(run, 4)
    assert db.read_bytes() == before
    assert cli.json("invoice", "show", "INV-1")["reference"] == "INV-1"  # still a working database


def test_existing_file_needs_force(cli, tmp_path):
    confirmed_invoice(cli, tmp_path)
    pdf, charges = tmp_path / "i.pdf", tmp_path / "i-charges.csv"
    pdf.write_bytes(b"old pdf")
    run = cli("invoice", "export", "INV-1", "--format", "pdf", "--out", str(pdf), "--with-charges", expect=None)
    assert "--force" in one_line_error(run, 5)
    assert pdf.read_bytes() == b"old pdf" and not charges.exists()
    out = cli.json("invoice", "export", "INV-1", "--format", "pdf", "--out", str(pdf), "--with-charges", "--force")
    assert [f["file"] for f in out] == [str(pdf), str(charges)]
    assert pdf.read_bytes().startswith(b"%PDF")
    # the charges file alone existing is refused too, before anything is written
    pdf.unlink()
    run = cli("invoice", "export", "INV-1", "--format", "pdf", "--out", str(pdf), "--with-charges", expect=None)
    assert str(charges) in one_line_error(run, 5)
    assert not pdf.exists()
    no_part_files(tmp_path)


def test_existing_file_needs_force_in_every_export(acme, db_url, tmp_path, monkeypatch):  # noqa: F811
    cli = acme
    monkeypatch.chdir(tmp_path)  # background files go to ./exports
    imp(cli, write(tmp_path, "a.csv", "Mobile,Name,City,Age\n+34612345678,Ana,Madrid,30\n"))
    add_edrs(db_url, 3)
    task = cli.json("edr", "export", *WINDOW, "--background")
    cli.json("edr", "export-task", "run", str(task["id"]))
    cases = [
        ("contacts", "export", "{f}", "-c", "Acme"),
        ("edr", "export", *WINDOW, "--out", "{f}"),
        ("edr", "export-task", "fetch", str(task["id"]), "--out", "{f}"),
    ]
    for i, case in enumerate(cases):
        target = tmp_path / f"t{i}.csv"
        target.write_text("old")
        args = [a.replace("{f}", str(target)) for a in case]
        run = cli(*args, expect=None)
        assert "--force" in one_line_error(run, 5), args
        assert target.read_text() == "old"
        cli(*args, "--force")
        assert target.read_text() != "old"
        assert target.read_text().startswith(("phone", "id")), args
    no_part_files(tmp_path)


def test_rejects_equal_to_the_input_is_refused(acme, tmp_path):  # noqa: F811
    cli = acme
    text = "Mobile,Name,City,Age\n+34612345678,Ana,Madrid,30\nbad,Bob,Sevilla,31\n"
    src = write(tmp_path, "a.csv", text)
    (tmp_path / "d").mkdir()
    for rejects in (src, tmp_path / "d" / ".." / "a.csv"):
        for force in ([], ["--force"]):
            run = imp(cli, src, "--skip-invalid", "--rejects", str(rejects), *force, expect=4)
            assert "the input file" in one_line_error(run, 4)
    assert src.read_text() == text
    rej = tmp_path / "rej.csv"
    rej.write_text("old")
    run = imp(cli, src, "--skip-invalid", "--rejects", str(rej), expect=5)
    assert "--force" in one_line_error(run, 5) and rej.read_text() == "old"
    out = imp(cli, src, "--skip-invalid", "--rejects", str(rej), "--force")
    assert out["rejects_file"] == str(rej)
    assert rej.read_text().splitlines()[0].startswith("row,field,reason")


def test_bad_places_are_one_line_exit_4(acme, tmp_path):  # noqa: F811
    cli = acme
    imp(cli, write(tmp_path, "a.csv", "Mobile,Name,City,Age\n+34612345678,Ana,Madrid,30\n"))
    run = cli("contacts", "export", str(tmp_path / "missing" / "x.csv"), "-c", "Acme", expect=None)
    assert "does not exist" in one_line_error(run, 4)
    run = cli("contacts", "export", str(tmp_path), "-c", "Acme", "--force", expect=None)
    assert "is a directory" in one_line_error(run, 4)


def test_permission_denied_is_exit_4_and_keeps_the_old_file(acme, tmp_path, monkeypatch):  # noqa: F811
    cli = acme
    imp(cli, write(tmp_path, "a.csv", "Mobile,Name,City,Age\n+34612345678,Ana,Madrid,30\n"))
    target = tmp_path / "x.csv"
    target.write_text("old")

    real_open = os.open

    def denied(path, *a, **kw):  # the tests run as root, where a read-only directory does not stop a write
        if str(path).endswith(".part"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", denied)
    run = cli("contacts", "export", str(target), "-c", "Acme", "--force", expect=None)
    line = one_line_error(run, 4)
    assert str(target) in line and "Permission denied" in line and "unchanged" in line
    assert target.read_text() == "old"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_disk_full_keeps_the_old_file(acme, tmp_path, monkeypatch, fmt):  # noqa: F811
    cli = acme
    imp(cli, write(tmp_path, "a.csv", "Mobile,Name,City,Age\n+34612345678,Ana,Madrid,30\n"))
    target = tmp_path / f"x.{fmt}"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    run = cli("contacts", "export", str(target), "-c", "Acme", "--force", expect=None)
    assert "No space left on device" in one_line_error(run, 1)
    assert target.read_bytes() == b"old"
    no_part_files(tmp_path)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_real_dev_full_is_one_line_exit_1(cli, db_url, fmt):
    add_edrs(db_url, 3)
    run = cli("edr", "export", *WINDOW, "--format", fmt, "--out", "/dev/full", expect=None)
    assert "No space left on device" in one_line_error(run, 1)


def test_pdf_and_chart_write_atomically(cli, tmp_path, monkeypatch):
    confirmed_invoice(cli, tmp_path)
    pdf = tmp_path / "i.pdf"
    pdf.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    run = cli("invoice", "export", "INV-1", "--format", "pdf", "--out", str(pdf), "--force", expect=None)
    assert "No space left on device" in one_line_error(run, 1)
    assert pdf.read_bytes() == b"old"
    png = tmp_path / "c.png"
    png.write_bytes(b"old")
    run = cli("report", "chart", "--from", "2026-03-01", "--till", "2026-03-02", "--out", str(png), expect=None)
    assert "--force" in one_line_error(run, 5)
    run = cli(
        "report", "chart", "--from", "2026-03-01", "--till", "2026-03-02", "--out", str(png), "--force", expect=None
    )
    assert "No space left on device" in one_line_error(run, 1)
    assert png.read_bytes() == b"old"
    no_part_files(tmp_path)


# ---------------------------------------------------------------- item 5: formulas


def test_guard_cell_rules():
    for v, g in zip(HOSTILE, GUARDED, strict=True):
        assert files.guard_cell(v) == g
    for v in ["-0.01", "+34612345678", "1e3", "-5", "", "abc", "'=x", 7, -3, None]:
        assert files.guard_cell(v) == v
    rows = [["a", "-0.04", 1], ["=1+1", "b", None]]
    assert files.guard_rows(rows) == [["a", "-0.04", 1], ["'=1+1", "b", None]]
    for delim in (",", "\t"):
        hint = files.formula_hint(delim)
        for v in HOSTILE:
            buf = io.StringIO()
            csv.writer(buf, delimiter=delim, lineterminator="\n").writerows([["a", v], [v]])
            assert hint.search(buf.getvalue()), (delim, v)


def _contacts_with_formulas(cli, tmp_path):
    rows = "".join(f"+3461234567{i},{_q(v)},{_q(v)},{i}\n" for i, v in enumerate(NAMES))
    imp(cli, write(tmp_path, "a.csv", "Mobile,Name,City,Age\n" + rows))


def _q(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def _read(path: Path, delim=",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter=delim))


def test_contacts_export_and_list_neutralise_formulas(acme, tmp_path):  # noqa: F811
    cli = acme
    _contacts_with_formulas(cli, tmp_path)
    out = tmp_path / "c.csv"
    cli("contacts", "export", str(out), "-c", "Acme")
    rows = _read(out)
    head = rows[0]
    by_phone = {r[head.index("phone")]: r for r in rows[1:]}
    names = [by_phone[f"+3461234567{i}"][head.index("first_name")] for i in range(len(NAMES))]
    cities = [by_phone[f"+3461234567{i}"][head.index("city")] for i in range(len(NAMES))]
    assert names == G_NAMES and cities == G_NAMES  # the phone (+…, a number) is left as it is
    cli("--raw-cells", "contacts", "export", str(out), "-c", "Acme", "--force")
    rows = _read(out)
    assert sorted(r[head.index("first_name")] for r in rows[1:]) == sorted(NAMES)
    for fmt in ("csv", "tsv"):
        text = cli("contacts", "list", "-c", "Acme", "-o", fmt).stdout
        got = list(csv.reader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t"))
        col = got[0].index("first_name")
        assert sorted(r[col] for r in got[1:]) == sorted(G_NAMES)
        text = cli("--raw-cells", "contacts", "list", "-c", "Acme", "-o", fmt).stdout
        got = list(csv.reader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t"))
        assert sorted(r[col] for r in got[1:]) == sorted(NAMES)
    # XLSX: inline strings, never formulas, so they stay as they are
    x = tmp_path / "c.xlsx"
    cli("contacts", "export", str(x), "-c", "Acme")
    sheet = openpyxl.load_workbook(x).active
    col = [c.value for c in sheet[1]].index("first_name")
    cells = [r[col] for r in sheet.iter_rows(min_row=2)]
    assert sorted(c.value for c in cells) == sorted(NAMES) and {c.data_type for c in cells} == {"s"}


def test_rejects_file_neutralises_formulas(acme, tmp_path):  # noqa: F811
    cli = acme
    src = write(tmp_path, "a.csv", 'Mobile,Name,City,Age\nbad,"=cmd|x",Madrid,30\n+34612345678,Ana,Madrid,30\n')
    rej = tmp_path / "rej.csv"
    imp(cli, src, "--skip-invalid", "--rejects", str(rej))
    rows = _read(rej)
    assert rows[1][rows[0].index("Name")] == "'=cmd|x"


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_edr_export_neutralises_formulas(cli, db_url, tmp_path, fmt, monkeypatch):
    monkeypatch.chdir(tmp_path)  # background files go to ./exports
    add_edrs(db_url, len(EDR_HOSTILE))
    with get_engine(db_url).begin() as conn:
        for i, v in enumerate(EDR_HOSTILE):
            conn.execute(sa.update(Edr.__table__).where(Edr.__table__.c.external_id == f"e-{i}").values(sender=v))
        conn.execute(sa.update(Edr.__table__).values(cost=-40_000))
    delim = "," if fmt == "csv" else "\t"
    fields = ["--fields", "external_id,sender,cost", "--format", fmt]
    out = tmp_path / f"e.{fmt}"
    cli("edr", "export", *WINDOW, *fields, "--out", str(out))
    rows = _read(out, delim)
    assert [r[1] for r in rows[1:]] == G_EDR
    assert {r[2] for r in rows[1:]} == {"-0.04"}  # money stays a number
    text = cli("edr", "export", *WINDOW, *fields).stdout  # to stdout
    assert [r[1] for r in csv.reader(io.StringIO(text), delimiter=delim)][1:] == G_EDR
    cli("--raw-cells", "edr", "export", *WINDOW, *fields, "--out", str(out), "--force")
    assert [r[1] for r in _read(out, delim)[1:]] == EDR_HOSTILE
    task = cli.json("edr", "export", *WINDOW, *fields, "--background")  # written by the worker
    cli.json("edr", "export-task", "run", str(task["id"]))
    fetched = tmp_path / f"t.{fmt}"
    cli("edr", "export-task", "fetch", str(task["id"]), "--out", str(fetched))
    assert [r[1] for r in _read(fetched, delim)[1:]] == G_EDR


def test_invoice_charges_csv_neutralises_formulas(cli, tmp_path):
    confirmed_invoice(cli, tmp_path, external_ids=['=HYPERLINK("http://x.test")', "@SUM(1)", "ok"])
    cli.json("invoice", "export", "INV-1", "--format", "csv", "--out", str(tmp_path / "i.csv"), "--with-charges")
    rows = _read(tmp_path / "i-charges.csv")
    ids = sorted(r[rows[0].index("external_id")] for r in rows[1:])
    assert ids == sorted(['\'=HYPERLINK("http://x.test")', "'@SUM(1)", "ok"])


def test_rates_and_tree_exports_need_force(cli, tmp_path):
    money_setup(cli)
    cases = [
        ("rates", "export", "--agreement", "AG-1", "--out"),
        ("service", "tree", "export", "SMS service", "--out"),
    ]
    for i, case in enumerate(cases):
        target = tmp_path / f"t{i}.{'csv' if i == 0 else 'yaml'}"
        target.write_text("old")
        run = cli(*case, str(target), expect=None)
        assert "--force" in one_line_error(run, 5), case
        assert target.read_text() == "old"
        cli(*case, str(target), "--force")
        assert target.read_text() != "old"
    no_part_files(tmp_path)


def test_raw_cells_from_the_environment(acme, tmp_path):  # noqa: F811
    cli = acme
    _contacts_with_formulas(cli, tmp_path)
    text = cli("contacts", "list", "-c", "Acme", "-o", "csv", env={"CPAAS_RAW_CELLS": "1"}).stdout
    got = list(csv.reader(io.StringIO(text)))
    col = got[0].index("first_name")
    assert sorted(r[col] for r in got[1:]) == sorted(NAMES)
    text = cli("contacts", "list", "-c", "Acme", "-o", "csv").stdout  # the next command guards again
    assert sorted(r[col] for r in list(csv.reader(io.StringIO(text)))[1:]) == sorted(G_NAMES)


def test_interrupted_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("old")
    target.chmod(0o640)
    with pytest.raises(KeyboardInterrupt), files.AtomicFile(target) as fh:
        fh.write(b"new, half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), files.atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    no_part_files(tmp_path)
    files.atomic_write_text(target, "new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o640
    no_part_files(tmp_path)
