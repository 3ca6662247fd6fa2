"""Ctrl-C during `cpaas edr ingest` (issue 23, item 9): the chunks committed
stay, the message says how many rows are stored and that a rerun continues,
exit 130 (the shell's code for SIGINT), never a traceback or a "closed
database" error. Real processes, real SIGINTs."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.edr import Edr
from tests.test_money_cli import row, setup

ROWS = 200_000
CHUNK = 2000


def stored(db_url) -> int:
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(Edr.__table__)).scalar_one()


def edr_csv(path):
    first = row(0, segments=1)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(first))
        w.writeheader()
        for i in range(ROWS):
            w.writerow({**first, "external_id": f"x-{i}", "destination": f"346{i:08d}"})
    return path


def interrupt(db_url, path, *global_opts: str, signals: int = 1) -> tuple[subprocess.CompletedProcess, int]:
    """Start `edr ingest`, wait until its first chunk is stored, send SIGINT(s)."""
    env = {k: v for k, v in os.environ.items() if k != "CPAAS_DATABASE_URL"}
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, *global_opts, "edr", "ingest", str(path)]
    proc = subprocess.Popen(
        [*cmd, "--chunk", str(CHUNK)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        while stored(db_url) < CHUNK:  # the run has started and committed a chunk
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), stored(db_url)


def rerun_finishes(cli, path, n: int) -> None:
    done = cli.json("edr", "ingest", str(path), "--chunk", "50000")
    assert done["skipped"] == n and done["inserted"] == ROWS - n
    assert stored(cli.url) == ROWS


@pytest.mark.parametrize("quiet", [True, False])
def test_ctrl_c_stops_between_chunks_and_says_how_many_rows_are_stored(cli, db_url, tmp_path, quiet):
    setup(cli)
    path = edr_csv(tmp_path / "edrs.csv")
    run, n = interrupt(db_url, path, *(["-q"] if quiet else []))
    assert CHUNK <= n < ROWS and n % CHUNK == 0  # whole chunks only
    assert run.returncode == 130, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    if not quiet:
        assert lines.pop(0) == "stopping after the chunk under way (Ctrl-C again to stop now)"
    assert lines == [f"error: interrupted: {n:,} rows stored, rerun to continue"]
    rerun_finishes(cli, path, n)


def test_a_second_ctrl_c_stops_at_once_in_one_line(cli, db_url, tmp_path):
    setup(cli)
    path = edr_csv(tmp_path / "edrs.csv")
    run, n = interrupt(db_url, path, "-q", signals=2)
    assert run.returncode == 130, run.stderr
    assert "Traceback" not in run.stderr and "closed database" not in run.stderr
    lines = run.stderr.strip().splitlines()
    # the second signal usually lands in the chunk under way; if the run stopped first, the count is given
    assert lines in (
        ["error: interrupted: the chunk under way was not stored; rerun to continue"],
        [f"error: interrupted: {n:,} rows stored, rerun to continue"],
    ), run.stderr
    assert n % CHUNK == 0
    rerun_finishes(cli, path, n)
