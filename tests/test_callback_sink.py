"""`cpaas dev callback-sink` (the demo's receiver) as its own process: the
callbacks `serve`'s sender posts arrive as JSON lines with a valid signature;
a forged or stale signature shows as invalid, a repeated callback id as a
repeat, an oversized body is refused; the secret is never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from cpaas_cli.callbacks import signing
from cpaas_cli.dispatch.smsc import free_port
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_callbacks import _key, _rows, _sender


def _start(port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cpaas_cli", "dev", "callback-sink", "--port", str(port), "--secret-env", "CB_SECRET",
         "--lifetime", "60"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the sink did not come up")


def test_the_sink_prints_each_callback_with_its_signature_check(cli, db_url):
    port = free_port()
    url = f"http://127.0.0.1:{port}/cb"
    key = _key(cli, url)
    proc = _start(port, {**os.environ, "CB_SECRET": key["secret"]})
    try:
        _rows(db_url, key["id"], [("41", "PREPARED"), ("41", "SENT"), ("42", "DELIVERED")])
        sender = _sender(db_url, poll_s=0.01)
        sender.drain(10)
        assert sender.stats.delivered == 3 and sender.stats.retried == 0  # the sink answered 2xx
        body = signing.body(
            transaction_id="43", dnis="447900000001", status="SENT", event_at=_now(), channel="SMS", message=None
        )
        now = int(time.time())
        forged = {signing.SIGNATURE_HEADER: signing.signature("whsec_other", now, body), signing.ID_HEADER: "900"}
        stale = {signing.SIGNATURE_HEADER: signing.signature(key["secret"], now - 3600, body), signing.ID_HEADER: "901"}
        good = {signing.SIGNATURE_HEADER: signing.signature(key["secret"], now, body), signing.ID_HEADER: "902"}
        with httpx.Client(timeout=10) as http:
            assert http.post(url, content=body, headers=forged).status_code == 204
            assert http.post(url, content=body, headers=stale).status_code == 204
            assert http.post(url, content=body, headers=good).status_code == 204
            assert http.post(url, content=body, headers=good).status_code == 204  # sent again
            assert http.post(url, content=b"x" * (64 * 1024 + 1), headers=good).status_code == 413
            assert http.post(url, content=b"[1, 2]", headers=good).status_code == 400
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    lines = [json.loads(line) for line in out.splitlines()]
    posted = sorted(lines[:3], key=lambda r: r["transactionID"])  # stable: one message's events keep their order
    assert [(r["transactionID"], r["status"], r["signature"]) for r in posted] == [
        ("41", "PREPARED", "valid"),
        ("41", "SENT", "valid"),
        ("42", "DELIVERED", "valid"),
    ]
    assert [(r["callback_id"], r["signature"], r["repeat"]) for r in lines[3:7]] == [
        ("900", "invalid", False),
        ("901", "invalid", False),
        ("902", "valid", False),
        ("902", "valid", True),
    ]
    assert lines[7]["error"] == "not a JSON object" and len(lines) == 8
    assert "listening on http://127.0.0.1" in err
    assert key["secret"] not in out and key["secret"] not in err


def test_the_sink_needs_its_secret_variable(cli):
    got = cli("dev", "callback-sink", "--secret-env", "CPAAS_TEST_UNSET_VARIABLE", "--lifetime", "1", expect=4)
    assert "CPAAS_TEST_UNSET_VARIABLE" in got.stderr


def _now():
    from cpaas_cli import clock

    return clock.now()
