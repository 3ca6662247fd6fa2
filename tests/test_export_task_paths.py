"""`edr export-task fetch` finds the task's file from any directory: the
worker stores the absolute path (older relative paths are looked up in the
configured export folder)."""

from __future__ import annotations

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.edr import EdrExportTask
from tests.test_edr_export import WINDOW, add_edrs


def _task(cli):
    return cli.json("edr", "export", *WINDOW, "--background", "--fields", "external_id,status")


def test_fetch_from_another_directory(cli, db_url, tmp_path, monkeypatch):
    add_edrs(db_url, 3)
    worker, elsewhere = tmp_path / "worker", tmp_path / "elsewhere"
    worker.mkdir()
    elsewhere.mkdir()
    (worker / "cpaas.toml").write_text('[export]\ndir = "exports"\n')  # relative to the worker's directory
    t = _task(cli)
    monkeypatch.chdir(worker)
    assert cli.json("--config", "cpaas.toml", "edr", "export-task", "run")["ready"] == 1
    shown = cli.json("edr", "export-task", "show", str(t["id"]))
    assert shown["file"] == str(worker / "exports" / f"edr-export-{t['id']}.csv")
    monkeypatch.chdir(elsewhere)
    got = cli.json("edr", "export-task", "fetch", str(t["id"]), "--out", "copy.csv")
    assert got["rows"] == 3
    assert (elsewhere / "copy.csv").read_text().splitlines()[0] == "external_id,status"


def test_a_relative_path_stored_before_is_found_in_the_export_dir(cli, db_url, tmp_path, monkeypatch):
    add_edrs(db_url, 2)
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text(f'[export]\ndir = "{tmp_path / "exports"}"\n')
    t = _task(cli)
    cli.json("--config", str(cfg), "edr", "export-task", "run")
    T = EdrExportTask.__table__
    with get_engine(db_url).begin() as conn:  # as an older worker stored it
        conn.execute(sa.update(T).where(T.c.id == t["id"]).values(file=f"exports/edr-export-{t['id']}.csv"))
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert cli.json("--config", str(cfg), "edr", "export-task", "fetch", str(t["id"]), "--out", "x.csv")["rows"] == 2
    run = cli("edr", "export-task", "fetch", str(t["id"]), "--out", "y.csv", expect=3)
    assert "is gone" in run.stderr and str(other / "exports") in run.stderr
