"""Racing commands in real OS processes (issue 23, item 3).

Every race starts N ``python -m cpaas_cli`` processes behind a file barrier:
each process imports the CLI and the command's modules, says it is ready,
and waits for the gate file; the test opens the gate once all are ready, so
the commands hit the database together. Exactly one of two racing state
changes wins; the loser exits 5 with one line; nothing ever shows a
traceback, a raw constraint or "database is locked".
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
import typer

from cpaas_cli.cli import app as app_module
from cpaas_cli.db.engine import dispose_all, get_engine
from tests.helpers import client, owner_le
from tests.test_campaigns import setup as campaign_setup
from tests.test_contacts import MAPS
from tests.test_edr_export import WINDOW, add_edrs
from tests.test_money_cli import edr_file
from tests.test_rerate import TIER_A, TIER_B, apply, french, tree
from tests.test_rerate import create as rerate_create
from tests.test_rerate import setup as rerate_setup

_LAUNCH = """
import os, runpy, sys, time
ready, gate, preload = sys.argv[1], sys.argv[2], sys.argv[3]
for name in filter(None, preload.split(",")):
    __import__(name)
open(ready, "w").close()
while not os.path.exists(gate):
    time.sleep(0.002)
sys.argv = ["cpaas", *sys.argv[4:]]
runpy.run_module("cpaas_cli", run_name="__main__", alter_sys=True)
"""
PRELOAD = "cpaas_cli.cli.app,sqlalchemy,sqlmodel,cpaas_cli.db.engine"
BAD = ("Traceback", "database is locked", "constraint", "UNIQUE", "duplicate key", "deadlock", "could not serialize")


def at_once(db_url: str, tmp_path: Path, commands: list[list[str]], *, preload: str = "") -> list[tuple[int, str, str]]:
    """Run each ``cpaas --db URL -o json ARGS`` in its own process, all released together;
    returns (exit code, stdout, stderr) per command, in order."""
    dispose_all()
    gate_dir = tmp_path / f"gate-{time.monotonic_ns()}"
    gate_dir.mkdir()
    gate = gate_dir / "go"
    mods = ",".join(filter(None, [PRELOAD, preload]))
    procs = []
    for i, args in enumerate(commands):
        argv = [sys.executable, "-c", _LAUNCH, str(gate_dir / f"ready-{i}"), str(gate), mods]
        argv += ["--db", db_url, "-o", "json", *args]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    end = time.monotonic() + 120
    while not all((gate_dir / f"ready-{i}").exists() for i in range(len(commands))):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        assert time.monotonic() < end, "the processes never got ready"
        time.sleep(0.01)
    gate.touch()
    outs = [p.communicate(timeout=600) for p in procs]
    results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]
    for code, _out, err in results:
        assert code in (0, 5), results
        assert not any(b in err for b in BAD), err
        assert code == 0 or (err.startswith("error: ") and err.count("\n") == 1), err
    return results


def codes(results) -> list[int]:
    return sorted(r[0] for r in results)


def query(db_url: str, sql: str, **params):
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.text(sql), params).all()


# ------------------------------------------------------------------ campaigns


def test_two_sends_of_one_campaign_queue_each_recipient_once(cli, db_url, tmp_path):
    campaign_setup(cli)
    phones = ",".join(f"+3462011{i:04d}" for i in range(120))
    ids = []
    for n in range(3):
        c = cli.json(
            "campaign", "create", "--company", "Client A", "--sender", "ACME", "--name", f"C{n}",
            "--to", phones, "--text", "Hello",
        )  # fmt: skip
        assert c["recipients"] == 120
        ids.append(c["id"])
    for cid in ids:
        res = at_once(db_url, tmp_path, [["campaign", "send", str(cid)]] * 2, preload="cpaas_cli.campaigns.lifecycle")
        assert codes(res) == [0, 5], res
        (loser,) = [r for r in res if r[0] == 5]
        assert f"campaign #{cid} is in_progress" in loser[2]
        (winner,) = [r for r in res if r[0] == 0]
        assert json.loads(winner[1])["state"] == "in_progress"
        queued = query(
            db_url, "SELECT COUNT(*), COUNT(DISTINCT phone) FROM outbound_message WHERE campaign_id = :c", c=cid
        )
        assert tuple(queued[0]) == (120, 120)


# ------------------------------------------------------------------ invoices


def _daily_drafts(cli, n: int) -> list[int]:
    owner_le(cli)
    client(cli)
    cli.json(
        "agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01",
        "--billing-period", "daily",
    )  # fmt: skip
    for day in range(1, n + 1):
        cli.json("fee", "add", "--agreement", "AG-1", "--amount", "1", "--at", f"2026-01-{day:02d}T10:00:00Z")
    drafts = cli.json("invoice", "run", "--as-of", "2026-02-01T00:00:00Z")
    assert len(drafts) == n
    return [d["id"] for d in drafts]


CONFIRM_AT = ["--at", "2026-02-02T00:00:00Z"]


def test_twelve_concurrent_confirms_number_gaplessly(cli, db_url, tmp_path):
    ids = _daily_drafts(cli, 14)
    pre = "cpaas_cli.invoices.service"
    res = at_once(db_url, tmp_path, [["invoice", "confirm", str(i), *CONFIRM_AT] for i in ids[:12]], preload=pre)
    assert codes(res) == [0] * 12, res
    numbers = [r[0] for r in query(db_url, "SELECT number FROM invoice WHERE number IS NOT NULL ORDER BY number")]
    assert numbers == list(range(1, 13))
    # two confirms of one draft: one wins, and no number is burnt by the loser
    for inv in ids[12:]:
        res = at_once(db_url, tmp_path, [["invoice", "confirm", str(inv), *CONFIRM_AT]] * 2, preload=pre)
        assert codes(res) == [0, 5], res
        assert "only a draft can be confirmed" in next(r[2] for r in res if r[0] == 5)
    numbers = [r[0] for r in query(db_url, "SELECT number FROM invoice WHERE number IS NOT NULL ORDER BY number")]
    assert numbers == list(range(1, 15))


def test_confirm_racing_void_never_ends_confirmed_after_void_said_ok(cli, db_url, tmp_path):
    ids = _daily_drafts(cli, 6)
    for inv in ids:
        res = at_once(
            db_url,
            tmp_path,
            [["invoice", "confirm", str(inv), *CONFIRM_AT], ["invoice", "void", str(inv), "--yes"]],
            preload="cpaas_cli.invoices.service",
        )
        (confirm, void) = res
        assert void[0] == 0, res  # a draft and a confirmed invoice can both be voided
        ((status, number),) = query(db_url, "SELECT status, number FROM invoice WHERE id = :i", i=inv)
        assert status == "void", res
        if confirm[0] == 0:  # confirmed first, then voided: it keeps its number
            assert number is not None
        else:
            assert "is void" in confirm[2] and number is None
        links = query(db_url, "SELECT COUNT(*) FROM invoice_charge WHERE invoice_id = :i", i=inv)
        assert links[0][0] == 0
    numbers = [r[0] for r in query(db_url, "SELECT number FROM invoice WHERE number IS NOT NULL ORDER BY number")]
    assert numbers == list(range(1, len(numbers) + 1))


def test_concurrent_invoice_runs_build_each_draft_once(cli, db_url, tmp_path):
    owner_le(cli)
    client(cli)
    for code in ("AG-1", "AG-2", "AG-3"):
        cli.json(
            "agreement", "create", code, "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01",
            "--billing-period", "daily",
        )  # fmt: skip
        for day in range(1, 21):
            cli.json("fee", "add", "--agreement", code, "--amount", "1", "--at", f"2026-01-{day:02d}T10:00:00Z")
    run = ["invoice", "run", "--as-of", "2026-02-01T00:00:00Z"]
    for _ in range(2):
        res = at_once(db_url, tmp_path, [run, run], preload="cpaas_cli.invoices.service")
        assert 0 in codes(res), res
    rows = query(db_url, "SELECT agreement_id, period_start, COUNT(*) FROM invoice GROUP BY 1, 2 HAVING COUNT(*) > 1")
    assert rows == []
    assert query(db_url, "SELECT COUNT(*) FROM invoice WHERE status = 'draft'")[0][0] == 60
    linked = query(db_url, "SELECT COUNT(*), COUNT(DISTINCT charge_id) FROM invoice_charge")
    assert tuple(linked[0]) == (60, 60)


# ------------------------------------------------------------------ tasks


def test_two_runs_of_one_rerate_task_one_wins(cli, db_url, tmp_path):
    rerate_setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    rows = [french(i, day=d, external_id=f"r-{d}-{i}") for d in range(1, 11) for i in range(30)]
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    apply(cli, tmp_path, tree(TIER_B))
    for _ in range(2):
        task = rerate_create(cli, frm="2026-03-01T00:00:00Z", till="2026-03-11T00:00:00Z")["id"]
        res = at_once(db_url, tmp_path, [["rerate", "run", str(task)]] * 2, preload="cpaas_cli.rerate.tasks")
        assert codes(res) == [0, 5], res
        (loser,) = [r for r in res if r[0] == 5]
        assert f"rerate task {task} is" in loser[2]
        assert cli.json("rerate", "show", str(task))["status"] == "completed"
        units = query(db_url, "SELECT COUNT(*) FROM rerate_unit WHERE task_id = :t", t=task)
        assert units[0][0] >= 1


def test_two_runs_of_one_export_task_one_wins(cli, db_url, tmp_path):
    add_edrs(db_url, 200)
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text(f'[export]\ndir = "{tmp_path / "exports"}"\n')
    for _ in range(3):
        task = cli.json("edr", "export", *WINDOW, "--background", "--fields", "external_id,status")["id"]
        run = ["--config", str(cfg), "edr", "export-task", "run", str(task)]
        res = at_once(db_url, tmp_path, [run, run], preload="cpaas_cli.edr.tasks")
        assert codes(res) == [0, 5], res
        (winner,) = [r for r in res if r[0] == 0]
        assert json.loads(winner[1])["ready"] == 1
        (loser,) = [r for r in res if r[0] == 5]
        assert f"export task {task}" in loser[2]
        assert cli.json("edr", "export-task", "show", str(task))["state"] == "ready"


# ------------------------------------------------------------------ contacts


def test_concurrent_imports_into_one_new_group(cli, db_url, tmp_path):
    owner_le(cli)
    client(cli, "Acme")
    cli.json("contacts", "field", "add", "City", "-c", "Acme")
    cli.json("contacts", "field", "add", "Age", "--type", "number", "-c", "Acme")
    files = []
    for k in range(2):
        lines = ["Mobile,Name,City,Age"] + [f"+3462{k}{i:06d},N{i},Madrid,{i % 90}" for i in range(400)]
        f = tmp_path / f"c{k}.csv"
        f.write_text("\n".join(lines) + "\n")
        files.append(f)
    for rnd in range(3):
        group = f"G{rnd}"
        common = ["-c", "Acme", "-g", group, "--create-group", *MAPS, "--default-country", "ES"]
        cmds = [["contacts", "import", str(f), *common] for f in files]
        res = at_once(db_url, tmp_path, cmds, preload="cpaas_cli.contacts.importer")
        ok = [i for i, r in enumerate(res) if r[0] == 0]
        assert ok, res
        members = query(
            db_url,
            "SELECT COUNT(*) FROM contact_group_member m JOIN contact_group g ON g.id = m.group_id WHERE g.name = :g",
            g=group,
        )
        assert members[0][0] == 400 * len(ok)


# ------------------------------------------------------------------ payments and sender IDs


def test_two_confirms_of_one_payment_one_wins(cli, db_url, tmp_path):
    campaign_setup(cli)
    for n in range(2):
        p = cli.json(
            "payment", "add", "--agreement", "AG-1", "--reference", f"W-{n}", "--amount", "7",
            "--confirm-before", "2030-01-01",
        )  # fmt: skip
        res = at_once(db_url, tmp_path, [["payment", "confirm", str(p["id"])]] * 2)
        assert codes(res) == [0, 5], res
        assert "is confirmed already" in next(r[2] for r in res if r[0] == 5)
        states = query(db_url, "SELECT COUNT(*) FROM payment_state WHERE payment_id = :p", p=p["id"])
        assert states[0][0] == 2  # added, confirmed once


def test_two_disables_of_one_sender_id_one_wins(cli, db_url, tmp_path):
    campaign_setup(cli)
    for n in range(8):  # a short window: several tries
        name = f"S{n}"
        cli.json("sender", "add", name, "--company", "Client A", "--agreement", "AG-1", "--active")
        res = at_once(db_url, tmp_path, [["sender", "disable", name]] * 2)
        assert codes(res) == [0, 5], res
        assert "is disabled" in next(r[2] for r in res if r[0] == 5)


# ------------------------------------------------------------------ lock waits that run out


def test_a_lock_wait_that_runs_out_is_a_conflict_in_one_line(db_url, capsys):
    """SQLite's busy timeout (another command kept the write lock over 30 s) or a
    PostgreSQL deadlock: exit 5 with one line, not "database is locked" or a driver text."""
    if get_engine(db_url).dialect.name == "postgresql":
        orig: Exception = psycopg.errors.DeadlockDetected("deadlock detected\nDETAIL: Process 1 waits for ShareLock")
    else:
        orig = sqlite3.OperationalError("database is locked")
    for raised in (sa.exc.OperationalError("UPDATE campaign SET state = ?", {}, orig), orig):
        with pytest.raises(typer.Exit) as got:
            app_module._db_error(raised)
        assert got.value.exit_code == 5
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "try again" in err
        assert not any(b in err for b in BAD), err
