"""Crash safety with real processes: `cpaas dev smsc` and `cpaas serve --once`
as subprocesses; serve is killed with SIGKILL in the middle of a 3,000-message
campaign (the 20,000 case runs in benchmarks/serve.py) and started again.

Every recipient ends with exactly one EDR in a final state, nothing is charged
twice, and the only messages the SMSC saw twice are those that were in flight
without a stored submit_sm_resp (the restart counts and reports them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import sqlalchemy as sa

from cpaas_cli.billing.models import Charge
from cpaas_cli.campaigns.models import OutboundMessage
from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch.smsc import free_port
from cpaas_cli.edr.models import Edr
from tests.test_serve import campaign, setup

N = 3000
DEADLINE = 120.0


def cpaas(db_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cpaas_cli", "--db", db_url, *args]


def wait_port(port: int) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"SMSC did not listen on {port}")


def submitted_count(db_url: str) -> int:
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(t.c.state.in_(["submitted", "done"]))).scalar()


def claimed_count(db_url: str) -> int:
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(t.c.state == "claimed")).scalar()


def test_kill_9_mid_campaign_then_restart(cli, db_url, tmp_path):
    port = free_port()
    setup(cli, port, window=50)
    phones = [f"3460{i:07d}" for i in range(N)]
    cid = campaign(cli, tmp_path, phones, "Crash test", "crash")
    record = tmp_path / "smsc.txt"
    env = {**os.environ, "SIM_PW": "pw"}
    # A slow receipt path makes the kill land with receipts outstanding too.
    smsc = subprocess.Popen(
        cpaas(db_url, "dev", "smsc", "--port", str(port), "--id-width", "10", "--record", str(record),
              "--lifetime", "300", "--receipt-delay", "0.05"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port)
        first = subprocess.Popen(
            cpaas(db_url, "serve", "--once", "--receipt-timeout", "5", "--batch", "100", "-o", "json"),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + DEADLINE
        while submitted_count(db_url) < N // 3:
            assert first.poll() is None, "serve ended before it could be killed"
            assert time.monotonic() < end, "serve made no progress"
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        at_kill = submitted_count(db_url)
        assert at_kill < N, "the kill came too late to test anything"
        claimed_at_kill = claimed_count(db_url)

        second = subprocess.run(
            cpaas(db_url, "serve", "--once", "--receipt-timeout", "5", "--receipt-expiry", "0", "-o", "json"),
            env=env, capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr[-3000:]
        out = json.loads(second.stdout)
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(30)

    rec = out["recovery"]
    # The dead worker's claims (EDR made and charged, submit_sm_resp not stored) come back.
    assert rec["recovered"] == claimed_at_kill >= 1
    assert out["possible_duplicates"] == rec["unacknowledged"] <= claimed_at_kill

    e, q, c = Edr.__table__, OutboundMessage.__table__, Charge.__table__
    with get_engine(db_url).connect() as conn:
        edrs = conn.execute(sa.select(e.c.id, e.c.destination, e.c.status, e.c.rating_state, e.c.cost)).all()
        queue = Counter(dict(conn.execute(sa.select(q.c.state, sa.func.count()).group_by(q.c.state)).all()))
        charges = conn.execute(sa.select(c.c.edr_id, c.c.amount).where(c.c.kind == "edr")).all()
        spent = conn.execute(sa.text("SELECT spent FROM agreement_balance")).scalar()
    # Exactly one EDR per recipient, every one final and rated.
    assert sorted(r.destination for r in edrs) == phones
    assert {r.status for r in edrs} <= {"delivered", "undelivered"}
    assert {r.rating_state for r in edrs} == {"rated"}
    assert queue == {"done": N}
    # Charged once per EDR, and the balance agrees.
    per_edr = Counter(edr_id for edr_id, _ in charges)
    assert len(per_edr) == N and max(per_edr.values()) == 1
    # (Vodafone Spain's range, 21401: 0.04 a message in EXAMPLE1)
    assert sum(a for _, a in charges) == sum(r.cost for r in edrs) == spent == N * 40_000
    # The SMSC saw each number once, except the in-flight ones sent again.
    seen = Counter(line.split()[1] for line in record.read_text().splitlines())
    assert set(seen) == set(phones)
    twice = sum(n - 1 for n in seen.values())
    assert twice <= rec["unacknowledged"]
    assert cli.json("campaign", "show", str(cid))["state"] == "completed"


def test_serve_runs_until_sigterm_with_its_jobs_in_the_database(cli, db_url, tmp_path):
    port = free_port()
    setup(cli, port)
    cid = campaign(cli, tmp_path, [f"3460{i:07d}" for i in range(50)], "Hi", "long-running")
    env = {**os.environ, "SIM_PW": "pw"}
    smsc = subprocess.Popen(
        cpaas(db_url, "dev", "smsc", "--port", str(port), "--id-width", "10", "--lifetime", "120"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port)
        proc = subprocess.Popen(
            cpaas(db_url, "serve", "-o", "json"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        end = time.monotonic() + DEADLINE
        while cli.json("campaign", "show", str(cid))["state"] != "completed":  # the scheduler's job completes it
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < end, "the campaign did not complete"
            time.sleep(0.2)
        with get_engine(db_url).connect() as conn:
            jobs = set(conn.execute(sa.text("SELECT id FROM apscheduler_jobs")).scalars())
        assert {"start_due_campaigns", "complete_finished_campaigns", "expire_receipts"} <= jobs
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(30)
    assert proc.returncode == 0, stderr[-2000:]
    out = json.loads(stdout)
    assert out["mode"] == "serve" and out["submitted"] == 50 and out["receipts"] == 50
    assert "SIGTERM" in stderr
