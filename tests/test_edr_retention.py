"""`cpaas edr retention` (issue 30, part 4): whole months older than --keep-months are
archived when asked and removed in batches; EDRs with charges no confirmed invoice
covers stay; the ledger, invoices and balances are never touched."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine, make_session
from tests.test_money_cli import edr_file, row
from tests.test_money_cli import setup as money_setup

NOW = {"CPAAS_NOW": "2026-06-15T12:00:00+00:00"}


def _at(day: str, i: int) -> dict:
    t = f"{day}T10:00:{i:02d}Z"
    return {"prepared_at": t, "submitted_at": t}


def _ledger(cli) -> tuple[int, int]:
    with make_session(get_engine(cli.url), actor="pytest") as s:
        n, total = s.execute(sa.text("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM charge")).one()
    return int(n), int(total)


def _edr_months(cli) -> dict[str, int]:
    with make_session(get_engine(cli.url), actor="pytest") as s:
        rows = s.execute(sa.text("SELECT external_id, event_at FROM edr")).all()
    out: dict[str, int] = {}
    for _x, at in rows:
        key = str(at)[:7]
        out[key] = out.get(key, 0) + 1
    return out


def _world(cli, tmp_path) -> dict:
    """AG-1 with EDRs in February (3 rated, 1 refused: no price), March (2) and June (1);
    February invoiced and confirmed, March on a draft invoice."""
    money_setup(cli)
    rows = [row(i, external_id=f"feb-{i}", **_at("2026-02-10", i)) for i in range(3)]
    rows.append(row(9, external_id="feb-refused", mccmnc="99999", **_at("2026-02-11", 0)))
    rows += [row(10 + i, external_id=f"mar-{i}", **_at("2026-03-05", i)) for i in range(2)]
    rows.append(row(20, external_id="jun-0", **_at("2026-06-01", 0)))
    got = cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert got["inserted"] == 7, got
    (feb,) = [i for i in cli.json("invoice", "run", "--as-of", "2026-03-01T00:00:00Z") if i["net"] != "0.00"]
    cli.json("invoice", "confirm", str(feb["id"]), "--at", "2026-03-02T00:00:00Z")
    (mar,) = [i for i in cli.json("invoice", "run", "--as-of", "2026-04-01T00:00:00Z") if i["net"] != "0.00"]
    return {"feb": feb, "mar": mar}


def test_dry_run_shows_the_months_and_removes_nothing(cli, tmp_path):
    _world(cli, tmp_path)
    before = _ledger(cli)
    got = cli.json("edr", "retention", "--keep-months", "2", "--dry-run", "--archive-dir", str(tmp_path), env=NOW)
    assert [(m["month"], m["edrs"], m["removable"], m["kept_uninvoiced"], m["removed"]) for m in got] == [
        ("2026-02", 4, 4, 0, 0),
        ("2026-03", 2, 0, 2, 0),
    ]
    assert got[0]["archive"] == str(tmp_path / "edr-2026-02.csv.gz")
    assert list(tmp_path.glob("*.gz")) == []
    assert _edr_months(cli) == {"2026-02": 4, "2026-03": 2, "2026-06": 1}
    assert _ledger(cli) == before


def test_months_go_once_their_charges_are_on_confirmed_invoices(cli, tmp_path):
    w = _world(cli, tmp_path)
    before = _ledger(cli)
    balance = cli.json("balance", "show", "AG-1")
    arch = tmp_path / "archive"
    arch.mkdir()
    got = cli.json("edr", "retention", "--keep-months", "2", "--archive-dir", str(arch), "--batch", "2", env=NOW)
    assert [(m["month"], m["removed"], m["kept_uninvoiced"]) for m in got] == [("2026-02", 4, 0), ("2026-03", 0, 2)]
    assert _edr_months(cli) == {"2026-03": 2, "2026-06": 1}
    # the archive holds the month's EDRs, every column; the ledger and balance did not move
    with gzip.open(arch / "edr-2026-02.csv.gz", "rt", newline="") as f:
        archived = list(csv.DictReader(f))
    assert sorted(r["external_id"] for r in archived) == ["feb-0", "feb-1", "feb-2", "feb-refused"]
    assert {r["event_at"][:7] for r in archived} == {"2026-02"} and "cost" in archived[0]
    assert (arch / "edr-level-2026-02.csv.gz").exists()
    assert _ledger(cli) == before
    assert cli.json("balance", "show", "AG-1") == balance
    assert cli.json("invoice", "show", str(w["feb"]["id"]))["net"] == w["feb"]["net"]
    # March goes once its invoice is confirmed; a second archive of a month never overwrites the first
    cli.json("invoice", "confirm", str(w["mar"]["id"]), "--at", "2026-04-02T00:00:00Z")
    (arch / "edr-2026-03.csv.gz").write_bytes(b"an older archive")
    got = cli.json("edr", "retention", "--keep-months", "2", "--archive-dir", str(arch), env=NOW)
    assert [(m["month"], m["removed"]) for m in got] == [("2026-03", 2)]
    assert got[0]["archive"] == str(arch / "edr-2026-03.1.csv.gz")
    assert (arch / "edr-2026-03.csv.gz").read_bytes() == b"an older archive"
    assert _edr_months(cli) == {"2026-06": 1}
    assert _ledger(cli) == before
    assert [p.name for p in arch.iterdir() if p.name.endswith(".part")] == []
    # nothing left to do: no month listed
    assert cli.json("edr", "retention", "--keep-months", "2", env=NOW) == []


def test_bad_input_is_refused_before_anything_goes(cli, tmp_path):
    _world(cli, tmp_path)
    r = cli("edr", "retention", "--keep-months", "0", "-o", "json", env=NOW, expect=4)
    assert "--keep-months" in r.stderr
    r = cli("edr", "retention", "--keep-months", "2", "--archive-dir", str(tmp_path / "nope"), env=NOW, expect=4)
    assert "--archive-dir" in r.stderr and "not a directory" in r.stderr
    r = cli("edr", "retention", "--keep-months", "2", "--batch", "0", env=NOW, expect=4)
    assert "--batch" in r.stderr
    assert _edr_months(cli) == {"2026-02": 4, "2026-03": 2, "2026-06": 1}


def test_retention_in_a_fresh_process(cli, tmp_path):
    """The command as an operator's cron runs it: its own process, JSON out, exit 0."""
    _world(cli, tmp_path)
    env = {**os.environ, **NOW}
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", cli.url, "edr", "retention", "--keep-months", "2", "-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert [(m["month"], m["removed"]) for m in got] == [("2026-02", 4), ("2026-03", 0)]
    assert "removed 4 EDRs in 2 months; 2 kept" in done.stderr
