"""`cpaas serve --once` when the SMSC refuses the password (issue 23, item 9):
exit 6 with exactly one error line, and no traceback in the log."""

from __future__ import annotations

import os
import subprocess
import sys

from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from tests.test_serve import campaign, queue_states, setup


def test_serve_once_with_a_refused_password_is_one_line_exit_6(cli, db_url, tmp_path):
    port = free_port()
    setup(cli, port)
    campaign(cli, tmp_path, ["34600000001", "34600000002"], "Hello", "refused")
    env = {**os.environ, "SIM_PW": "wrong"}
    env.pop("CPAAS_DATABASE_URL", None)
    with SimSmsc(SmscOptions(port=port, password="right")) as sim:
        runs = [
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cpaas_cli",
                    "--db",
                    db_url,
                    *quiet,
                    "serve",
                    "--once",
                    "--receipt-timeout",
                    "1",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )  # fmt: skip
            for quiet in (["-q"], [])
        ]
        assert sim.counters.binds_refused >= 2
    for run in runs:
        assert run.returncode == 6, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        assert "password" in run.stderr.lower()
    quiet = runs[0].stderr.strip().splitlines()
    assert len(quiet) == 1, runs[0].stderr
    assert quiet[0].startswith("error: ") and "sim" in quiet[0]
    assert queue_states(db_url) == {"queued": 2}  # nothing claimed or charged


def test_long_running_serve_alerts_once_per_refused_bind(cli, db_url, tmp_path):
    """Without --once the worker keeps waiting for the link: the refusal is one
    ERROR line (the operator's alert), no traceback, nothing claimed."""
    port = free_port()
    setup(cli, port)
    campaign(cli, tmp_path, ["34600000001"], "Hello", "waiting")
    env = {**os.environ, "SIM_PW": "wrong"}
    env.pop("CPAAS_DATABASE_URL", None)
    with SimSmsc(SmscOptions(port=port, password="right")) as sim:
        run = subprocess.run(
            [sys.executable, "-m", "cpaas_cli", "--db", db_url, "-q", "serve", "--max-seconds", "2"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert sim.counters.binds_refused == 1
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1 and "Invalid Password" in errors[0] and "'sim'" in errors[0], run.stderr
    assert queue_states(db_url) == {"queued": 1}
