"""Crash safety with real processes: `cpaas dev smsc` and `cpaas serve`
as subprocesses; serve is killed with SIGKILL in the middle of a 3,000-message
campaign (the 20,000 case runs in benchmarks/serve.py) and started again.

Every recipient ends with exactly one EDR in a final state, nothing is charged
twice, no receipt is lost, and the only messages the SMSC saw twice are those
that were in flight without a stored submit_sm_resp: at most one window (the
restart counts and reports them). With ``--after-crash hold`` those are held
as unknown for the operator instead. A receipt or MO is answered only once it
is stored: killed between the two, serve gets it again from the SMSC.
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

from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch.smsc import free_port
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.campaigns import OutboundMessage
from cpaas_cli.models.dispatch import InboundMessage
from cpaas_cli.models.edr import Edr
from tests.test_serve import campaign, setup

N = 3000
DEADLINE = 120.0


def cpaas(db_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "cpaas_cli", "--db", db_url, *args]


def fresh_serve_once(db_url: str, env: dict, *extra: str) -> dict:
    """``serve --once`` in a new process: its JSON summary (exit 0 asserted)."""
    got = subprocess.run(
        cpaas(db_url, "serve", "--once", *extra, "-o", "json"),
        env=env, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr[-3000:]
    return json.loads(got.stdout)


def wait_port(port: int) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"SMSC did not listen on {port}")


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def states(db_url: str) -> Counter:
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        return Counter(dict(conn.execute(sa.select(t.c.state, sa.func.count()).group_by(t.c.state)).all()))


def submitted_count(db_url: str) -> int:
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(t.c.state.in_(["submitted", "done"]))).scalar()


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
        # Killed when the SMSC has accepted a third (not when the database shows
        # progress, which would put the kill right after a commit).
        while len(lines(record)) < N // 3:
            assert first.poll() is None, "serve ended before it could be killed"
            assert time.monotonic() < end, "serve made no progress"
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        at_kill = submitted_count(db_url)
        assert at_kill < N, "the kill came too late to test anything"
        at = states(db_url)
        claimed_at_kill, sending_at_kill = at["claimed"], at["sending"]

        out = fresh_serve_once(db_url, env, "--receipt-timeout", "5", "--receipt-expiry", "0")
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(30)

    rec = out["recovery"]
    # The dead worker's claims (EDR made and charged, submit_sm_resp not stored) come back;
    # only the "sending" ones may have reached the SMSC: at most one window of them.
    assert rec["recovered"] == claimed_at_kill + sending_at_kill >= 1
    assert rec["unsent"] == claimed_at_kill and rec["held"] == 0
    assert out["possible_duplicates"] == rec["unacknowledged"] == sending_at_kill <= 50

    e, q, c = Edr.__table__, OutboundMessage.__table__, Charge.__table__
    with get_engine(db_url).connect() as conn:
        edrs = conn.execute(sa.select(e.c.id, e.c.destination, e.c.status, e.c.rating_state, e.c.cost)).all()
        queue = Counter(dict(conn.execute(sa.select(q.c.state, sa.func.count()).group_by(q.c.state)).all()))
        charges = conn.execute(sa.select(c.c.edr_id, c.c.amount).where(c.c.kind == "edr")).all()
        spent = conn.execute(sa.text("SELECT spent FROM agreement_balance")).scalar()
    # Exactly one EDR per recipient, every one final and rated.
    assert sorted(r.destination for r in edrs) == phones
    # Every receipt came (DELIVRD for all): those unanswered at the kill were sent again.
    assert {r.status for r in edrs} == {"delivered"}
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
    assert twice <= rec["unacknowledged"] <= 50  # the window
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


def test_kill_9_between_receiving_and_storing_an_mo_loses_no_opt_out(cli, db_url, tmp_path):
    """The SMSC is the crash point: it SIGKILLs serve the moment serve answers
    its first deliver_sm. Whatever serve answered was stored; whatever it did not
    answer the SMSC sends again after the next bind, so every STOP is applied."""
    port = free_port()
    setup(cli, port)
    numbers = [f"3460{i:07d}" for i in range(20)]
    acks, pidfile = tmp_path / "acks.txt", tmp_path / "serve.pid"
    mos = [a for n in numbers for a in ("--mo", f"{n}:ACME:STOP")]
    env = {**os.environ, "SIM_PW": "pw"}
    smsc = subprocess.Popen(
        cpaas(db_url, "dev", "smsc", "--port", str(port), "--lifetime", "120", "--record-acks", str(acks),
              "--kill-on-ack", str(pidfile), *mos),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port)
        first = subprocess.Popen(
            cpaas(db_url, "serve", "-o", "json"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        pidfile.write_text(str(first.pid))
        assert first.wait(DEADLINE) == -signal.SIGKILL
        time.sleep(0.5)  # answers written before the kill are in the SMSC's file
        answered = {line.split()[1] for line in lines(acks)}
        assert answered, "the SMSC killed serve without an answer"
        m = InboundMessage.__table__
        with get_engine(db_url).connect() as conn:
            stored = set(conn.execute(sa.select(m.c.source).where(m.c.kind == "mo")).scalars())
        # What the SMSC got an answer for had been stored (committed) first.
        assert answered <= stored

        log = tmp_path / "serve.log"
        with log.open("w") as err:
            second = subprocess.Popen(
                cpaas(db_url, "serve", "-o", "json"), env=env, stdout=subprocess.DEVNULL, stderr=err
            )
        end = time.monotonic() + DEADLINE
        while len({line.split()[1] for line in lines(acks)}) < len(numbers) or "bound to sim" not in log.read_text():
            assert second.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < end, "the SMSC did not get every MO answered"
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()[-2000:]
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(30)
    blocks = cli.json("contacts", "stoplist", "list", "--company", "Client A")
    assert sorted(b["phone"] for b in blocks) == numbers
    with get_engine(db_url).connect() as conn:
        stored = Counter(conn.execute(sa.select(m.c.source).where(m.c.kind == "mo")).scalars())
    # Each MO stored once, or twice when serve died after storing it and before answering
    # (at least once: a second STOP changes nothing).
    assert set(stored) == set(numbers) and max(stored.values()) <= 2


def _crash_with_held_messages(cli, db_url, tmp_path) -> tuple[int, Counter]:
    """A campaign on an --after-crash hold connection; the SMSC answers 30 submits
    and leaves the next ones unanswered; serve is killed with its window full of
    unanswered submits, then run again against an SMSC that answers everything."""
    port = free_port()
    setup(cli, port, window=10)
    cli.json("connection", "update", "sim", "--after-crash", "hold")
    assert cli.json("connection", "show", "sim")["after_crash"] == "hold"
    phones = [f"3460{i:07d}" for i in range(100)]
    cid = campaign(cli, tmp_path, phones, "Hold test", "hold")
    record = tmp_path / "smsc.txt"
    env = {**os.environ, "SIM_PW": "pw"}
    smsc_args = ["dev", "smsc", "--port", str(port), "--id-width", "10", "--record", str(record), "--lifetime", "120"]
    smsc = subprocess.Popen(
        cpaas(db_url, *smsc_args, "--hold-after", "30"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        first = subprocess.Popen(
            cpaas(db_url, "serve", "--once", "--batch", "40", "-o", "json"),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + DEADLINE
        while not (states(db_url)["done"] == 30 and states(db_url)["sending"] == 10):
            assert first.poll() is None, "serve ended before it could be killed"
            assert time.monotonic() < end, f"serve did not fill its window: {states(db_url)}"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(30)
    smsc = subprocess.Popen(cpaas(db_url, *smsc_args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        # up to 30 s of silence for receipts: it ends as soon as they are in (5 s once left one "submitted" on CI)
        out = fresh_serve_once(db_url, env, "--receipt-timeout", "30")
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(30)
    # The 10 in the window are held, nothing is sent twice, the rest went.
    assert out["recovery"]["held"] == 10 and out["recovery"]["unacknowledged"] == 0
    assert out["possible_duplicates"] == 0 and out["submitted"] == 60
    seen = Counter(line.split()[1] for line in lines(record))
    assert len(seen) == 90 and max(seen.values()) == 1
    shown = cli.json("campaign", "show", str(cid))
    assert shown["state"] == "in_progress" and shown["queue"]["unknown"] == 10  # waits for the operator
    return cid, seen


def test_after_crash_hold_then_fail_gives_the_charge_back(cli, db_url, tmp_path):
    cid, _seen = _crash_with_held_messages(cli, db_url, tmp_path)
    got = cli.json("campaign", "fail-unknown", str(cid))
    assert (got["failed"], got["refunded"], got["queue"]) == (10, 10, {"done": 90, "failed": 10})
    e, c = Edr.__table__, Charge.__table__
    with get_engine(db_url).connect() as conn:
        failed = conn.execute(sa.select(e.c.cost, e.c.vendor_error).where(e.c.status == "failed")).all()
        net = conn.execute(sa.select(sa.func.sum(c.c.amount))).scalar()
        spent = conn.execute(sa.text("SELECT spent FROM agreement_balance")).scalar()
    assert len(failed) == 10 and {f.cost for f in failed} == {0}
    assert net == spent == 90 * 40_000  # charged for the 90 sent only
    assert cli.json("campaign", "fail-unknown", str(cid))["failed"] == 0  # nothing left to fail
    cli.json("serve", "--once", env={"SIM_PW": "pw"})  # (no SMSC needed: nothing to send) completes it
    assert cli.json("campaign", "show", str(cid))["state"] == "completed"


def test_after_crash_hold_then_release_sends_them(cli, db_url, tmp_path):
    cid, seen = _crash_with_held_messages(cli, db_url, tmp_path)
    got = cli.json("campaign", "release-unknown", str(cid))
    assert got["released"] == 10 and got["queue"]["queued"] == 10
    port = cli.json("connection", "show", "sim")["port"]
    record = tmp_path / "smsc.txt"
    smsc = subprocess.Popen(
        cpaas(db_url, "dev", "smsc", "--port", str(port), "--id-width", "10", "--record", str(record)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port)
        # 30 s of silence at most: it ends as soon as the 10 receipts are in (a loaded machine took over 5 s)
        out = cli.json("serve", "--once", "--receipt-timeout", "30", env={"SIM_PW": "pw"})
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(30)
    assert out["submitted"] == 10 and out["charged"] == 0 and out["reused_edrs"] == 10
    assert len(Counter(line.split()[1] for line in lines(record))) == 100
    shown = cli.json("campaign", "show", str(cid))
    assert shown["state"] == "completed" and shown["queue"] == {"done": 100}
