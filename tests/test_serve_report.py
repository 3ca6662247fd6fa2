"""What `serve` tells the operator: a failed `--once` is one line (no traceback,
also with -q), a lost link names its reason, and the summary counts the
messages that still wait for their receipts."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import smpplib.exceptions

from cpaas_cli.db.engine import dispose_all
from cpaas_cli.dispatch.gateway import LinkChanged, SubmitAccepted
from cpaas_cli.dispatch.smpp import SmppGateway, link_reason
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from tests.test_dispatch_smpp import _dev_smsc, count, drive, message, settings
from tests.test_serve import campaign, queue_states, serve_once, setup


def _serve_fresh(db_url: str, *args: str) -> subprocess.CompletedProcess:
    dispose_all()
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, *args]
    env = {**os.environ, "SIM_PW": "pw"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_a_failed_once_run_is_one_line_without_traceback(cli, db_url, tmp_path):
    port = free_port()  # nothing listens there
    setup(cli, port)
    campaign(cli, tmp_path, ["34600000001"], "Hi", "c")
    done = _serve_fresh(db_url, "-q", "-o", "json", "serve", "--once", "--receipt-timeout", "1")
    assert (done.returncode, done.stdout) == (6, "")
    assert done.stderr == f"error: connection 'sim': cannot bind to 127.0.0.1:{port}: connection refused\n"
    loud = _serve_fresh(db_url, "-o", "json", "serve", "--once", "--receipt-timeout", "1")
    assert loud.returncode == 6 and "Traceback" not in loud.stderr
    assert loud.stderr.splitlines()[-1] == done.stderr.strip()
    assert queue_states(db_url) == {"queued": 1}


def test_a_lost_link_names_its_reason():
    port = free_port()
    smsc = _dev_smsc(port, "--hold-after", "5", "--no-receipts")
    try:
        gw = SmppGateway(settings(port, window=10))
        gw.open()
        for i in range(12):
            gw.submit(message(i))
        events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 5 and gw.inflight() == 7)
        smsc.kill()
        smsc.wait(10)
        events += drive(gw, lambda ev: any(isinstance(e, LinkChanged) and not e.up for e in ev), deadline=10)
        gw.close()
    finally:
        if smsc.poll() is None:
            smsc.kill()
            smsc.wait(10)
    drop = next(e for e in events if isinstance(e, LinkChanged) and not e.up)
    assert drop.requeued == 7
    assert drop.detail in ("link lost: connection closed by the SMSC", "link lost: connection reset by the SMSC")


def _raised_in(error: OSError) -> smpplib.exceptions.ConnectionError:
    """smpplib's empty ConnectionError, raised while handling ``error`` (as its socket calls do)."""
    try:
        try:
            raise error
        except OSError:
            raise smpplib.exceptions.ConnectionError()  # noqa: B904
    except smpplib.exceptions.ConnectionError as exc:
        return exc


def test_link_reason_of_smpplib_errors():
    assert link_reason(smpplib.exceptions.ConnectionError()) == "connection closed by the SMSC"  # recv gave b""
    assert link_reason(_raised_in(ConnectionResetError(errno.ECONNRESET, "reset"))) == "connection reset by the SMSC"
    assert link_reason(_raised_in(TimeoutError("timed out"))) == "read timed out"
    assert link_reason(_raised_in(OSError(errno.EIO, "Input/output error"))) == "input/output error"
    assert link_reason(smpplib.exceptions.ConnectionError("Connection refused")) == "Connection refused"
    assert link_reason(BrokenPipeError(errno.EPIPE, "Broken pipe")) == "connection closed by the SMSC (broken pipe)"


def test_the_summary_counts_messages_still_waiting_for_receipts(cli, db_url, tmp_path):
    with SimSmsc(SmscOptions(port=free_port(), receipts=False, lifetime=60)) as smsc:
        setup(cli, smsc.port)
        campaign(cli, tmp_path, [f"3460000{i:04d}" for i in range(3)], "Hi", "c")
        out = serve_once(cli, "--receipt-timeout", "0.5")
        assert (out["submitted"], out["receipts"], out["awaiting_receipts"]) == (3, 0, 3)
        assert out["completed_campaigns"] == 0 and queue_states(db_url) == {"submitted": 3}
        # closed as undelivered once --receipt-expiry has passed: nothing waits any more
        out = serve_once(cli, "--receipt-timeout", "0.5", "--receipt-expiry", "0")
        assert (out["expired_without_receipt"], out["awaiting_receipts"], out["completed_campaigns"]) == (3, 0, 1)
