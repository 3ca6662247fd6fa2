"""End to end: a real `cpaas serve --http` process sends an API message with
acceptMO through the project's SMSC; the SMSC then sends the handset's reply
(a deliver_sm MO), and the MO callback reaches a receiver on 127.0.0.1 with the
seed's fields (SPEC CMP-25: the MT's transactionID, dnis, status, eventTime,
channel and the reply as ``message``), signed with the key's secret, after the
MT's own callbacks. A reply from a handset no acceptMO message went to is
stored and called back to nobody."""

from __future__ import annotations

import json
import re
import time

import httpx

from cpaas_cli.callbacks import signing
from tests.api_helpers import auth
from tests.callback_receiver import Receiver
from tests.identity_helpers import identity_env, make_user  # noqa: F401
from tests.test_api_serve import start_serve, stop
from tests.test_serve import setup, smsc  # noqa: F401

HANDSET = "34620000001"
STRANGER = "34620000077"
FINAL = {"DELIVERED", "UNDELIVERED"}


def _bodies(rx: Receiver) -> list[tuple[dict, bytes]]:
    with rx.lock:
        return [(h, b) for h, b in rx.got]


def _wait(rx: Receiver, what, seconds: float = 30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = [(h, json.loads(b), b) for h, b in _bodies(rx)]
        if what(got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"callbacks so far: {[d for _h, d, _b in got]}")


def test_a_reply_to_an_accept_mo_message_is_called_back_signed(cli, db_url, smsc):  # noqa: F811
    setup(cli, smsc.port)
    cli.json("tenant", "update", "Client A", "--mo-messages")
    make_user(cli, "alice", "Client A", department="Admin")
    key = cli.json("apikey", "create", "--user", "alice", "--name", "app")
    with Receiver() as rx:
        secret = cli.json("apikey", "update", str(key["id"]), "--callback-url", rx.url)["callback_secret"]
        proc, base = start_serve(db_url)
        try:
            body = {"channels": "SMS", "from": "ACME", "to": HANDSET, "message": "Reply YES", "acceptMO": True}
            r = httpx.post(f"{base}/api/send_sms", json=body, headers=auth(key["key"]), timeout=30)
            assert r.status_code == 200, r.text
            (result,) = r.json()["results"]
            tx = result.split(": ")[1]
            _wait(rx, lambda got: any(d["transactionID"] == tx and d["status"] in FINAL for _h, d, _b in got))
            assert smsc.wait_bound()
            smsc.inject_mo(STRANGER, "ACME", "who is this?", source_ton=1).result(10)
            smsc.inject_mo(HANDSET, "ACME", "YES, café at 5", source_ton=1).result(10)
            got = _wait(rx, lambda got: any("message" in d for _h, d, _b in got))
            time.sleep(1.0)  # a callback for the stranger's MO would have come by now
            got = [(h, json.loads(b), b) for h, b in _bodies(rx)]
        finally:
            stop(proc)
    mos = [(h, d, b) for h, d, b in got if "message" in d]
    assert len(mos) == 1, [d for _h, d, _b in got]
    headers, data, raw = mos[0]
    assert set(data) == {"transactionID", "dnis", "status", "eventTime", "channel", "message"}
    assert data["transactionID"] == tx and data["dnis"] == HANDSET and data["channel"] == "SMS"
    assert data["message"] == "YES, café at 5" and data["status"] == "DELIVERED"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", data["eventTime"])
    assert signing.verify(secret, headers["x-cpaas-signature"], raw, now=time.time())
    assert not signing.verify(secret, headers["x-cpaas-signature"], raw.replace(b"YES", b"NO!"), now=time.time())
    statuses = [d["status"] if "message" not in d else "MO" for _h, d, _b in got if d["transactionID"] == tx]
    assert statuses[:3] == ["PREPARED", "BILLED", "SENT"] and statuses[3] in FINAL and statuses[4:] == ["MO"]
    stored = {m["source"]: m for m in cli.json("inbound", "list", "--kind", "mo")}
    assert stored[HANDSET]["message_id"] == tx and stored[STRANGER]["message_id"] is None
    assert stored[STRANGER]["text"] == "who is this?"
