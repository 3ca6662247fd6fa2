"""End to end: a real `cpaas serve --http` process sends API messages through the
smpp34 SMSC (async and sync), and a sync send without workers times out (504)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from cpaas_cli.dispatch.smsc import free_port
from tests.api_helpers import api, assert_problem, auth, key_for  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_serve import setup, smsc  # noqa: F401

ES = "34620000001"


def start_serve(db_url: str, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "SIM_PW": "pw"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cpaas_cli", "--db", db_url, "serve", "--http", f"127.0.0.1:{port}", *extra, "-o", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"serve --http did not come up: {proc.communicate()[1][-3000:]}")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return err


def test_serve_http_sends_async_and_sync_through_the_smsc(cli, db_url, smsc):  # noqa: F811
    setup(cli, smsc.port)
    key = key_for(cli, "alice", "Client A")
    proc, base = start_serve(db_url)
    try:
        with httpx.Client(base_url=base, headers=auth(key), timeout=30) as http:
            sync = http.post("/v1/messages", json={"from": "ACME", "to": ES, "text": "OTP 1234", "mode": "sync"})
            assert sync.status_code == 200, sync.text
            (m,) = sync.json()["messages"]
            assert m["status"] == "submitted" and m["vendor_message_id"]
            (sent,) = smsc.submitted  # the id as stored: normalised (the connection's ids are hex)
            assert int(sent[0], 16) == int(m["vendor_message_id"], 16)

            r = http.post(
                "/api/send_sms", json={"channels": "SMS", "from": "ACME", "to": "34620000002", "message": "Hi"}
            )
            assert r.status_code == 200, r.text
            (result,) = r.json()["results"]
            mid = result.split(": ")[1]
            end = time.monotonic() + 30
            shown = {}
            while time.monotonic() < end:
                shown = http.get(f"/v1/messages/{mid}").json()
                if shown["status"] in ("delivered", "undelivered"):
                    break
                time.sleep(0.2)
            assert shown["status"] in ("delivered", "undelivered"), shown
            assert shown["cost"] == "0.08" and shown["label"] and shown["vendor_message_id"]
            assert http.get("/v1/balance").json()["balances"][0]["charges"] == "0.16"
    finally:
        err = stop(proc)
    assert "HTTP API listening" in err


def test_sync_without_workers_times_out_504_and_stays_queued(cli, db_url, smsc):  # noqa: F811
    setup(cli, smsc.port)
    key = key_for(cli, "alice", "Client A")
    proc, base = start_serve(db_url, "--no-workers")
    try:
        body = {"from": "ACME", "to": ES, "text": "OTP", "mode": "sync", "timeout": 0.5}
        r = httpx.post(f"{base}/v1/messages", json=body, headers=auth(key), timeout=30)
        got = assert_problem(r, 504, "sync-timeout")
        assert got["messages"][0]["status"] == "queued"
        assert (
            httpx.get(f"{base}/v1/messages/{got['messages'][0]['id']}", headers=auth(key)).json()["status"] == "queued"
        )
    finally:
        stop(proc)


def test_http_options_need_http(cli):
    assert "need --http" in cli("serve", "--no-workers", expect=2).stderr
    assert "--http" in cli("serve", "--http", "nowhere", expect=4).stderr


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.0.0.1:0x", ":80", "h:70000"])
def test_http_address_is_checked(addr):
    from cpaas_cli.api.server import parse_address
    from cpaas_cli.errors import InvalidInput

    with pytest.raises(InvalidInput):
        parse_address(addr)
