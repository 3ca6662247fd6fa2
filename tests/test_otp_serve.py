"""Done-test of the 2FA service against a real `cpaas serve --http` process and the
smpp34 SMSC (SQLite, and PostgreSQL when CPAAS_TEST_PG_URL is set): create an
integration → send → the SMSC receives the code → verify → the signed result
callbacks reach a loopback receiver → the message is charged on the balance."""

from __future__ import annotations

import json
import re
import time

import httpx
import sqlalchemy as sa

from cpaas_cli.callbacks import signing
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from tests.callback_receiver import Receiver
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_api_serve import start_serve, stop
from tests.test_serve import setup, smsc  # noqa: F401

ES = "34620000001"  # Movistar range of EXAMPLE1: 0.08 a message


def _wait(rx: Receiver, what, seconds: float = 30.0) -> list[tuple[dict, dict, bytes]]:
    got: list = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with rx.lock:
            got = [(h, json.loads(b), b) for h, b in rx.got]
        if what(got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"callbacks so far: {[d for _h, d, _b in got]}")


def test_whole_flow_through_serve_and_the_smsc(cli, db_url, smsc):  # noqa: F811
    setup(cli, smsc.port)
    with Receiver() as rx:
        made = cli.json(
            "otp", "integration", "create", "-c", "Client A", "--name", "Login", "-s", "ACME",
            "--text", "Your ACME code is {{code}}", "--callback-url", rx.url,
        )  # fmt: skip
        key, secret = made["api_key"], made["callback_secret"]
        proc, base = start_serve(db_url)
        try:
            with httpx.Client(base_url=base, auth=tuple(key.split(":")), timeout=30) as http:  # curl -u <API key>
                r = http.post("/api/v1/2fa/verify/sms", data={"number": ES})
                assert r.status_code == 200, r.text
                rid = r.json()["requestId"]
                # the sync wait: the SMSC had the message before the answer
                (sent,) = smsc.submitted
                _mid, dest, body, _esm, _dc = sent
                assert dest == ES
                m = re.fullmatch(rb"Your ACME code is (\d{6})", body)
                assert m, body
                code = m.group(1).decode()

                r = http.post("/api/v1/2fa/verify", data={"requestId": rid, "code": code})
                assert r.status_code == 200, r.text
                assert r.json()["number"] == ES and isinstance(r.json()["verifiedAt"], int)
                r = http.post("/api/v1/2fa/verify", data={"requestId": rid, "code": code})
                assert r.status_code == 409 and r.json()["type"] == "urn:cpaas:problem:otp-used"

                got = _wait(rx, lambda got: {d["status"] for _h, d, _b in got} >= {"SENT", "VERIFIED"})
                shown = http.get(f"/api/v1/2fa/requests/{rid}").json()
        finally:
            stop(proc)
    statuses = [d["status"] for _h, d, _b in got]
    assert statuses == ["SENT", "VERIFIED"], statuses  # one request: in the order written
    for headers, data, raw in got:
        assert list(data) == ["requestId", "number", "status", "timestamp", "billable"]
        assert data["requestId"] == rid and data["number"] == ES and data["billable"] is True
        assert abs(data["timestamp"] - shown["createdAt"] // 1000) <= 1
        assert signing.verify(secret, headers["x-cpaas-signature"], raw, now=time.time())

    assert shown["id"] == rid and shown["sender"] == "ACME" and shown["rate"] == "0.08"
    assert shown["billable"] is True and shown["status"] in ("SUBMIT", "DELIVERED", "UNDELIVERED")
    assert shown["verification"] == "verified" and shown["cost"] == "0.08" and shown["currency"] == "EUR"
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.08"
    # once the vendor took it, the code is no longer in clear in the queue row or the campaign
    with get_engine(db_url).connect() as conn:
        texts = conn.execute(sa.select(OutboundMessage.__table__.c.text)).scalars().all()
        texts += conn.execute(sa.select(Campaign.__table__.c.text)).scalars().all()
    assert texts == ["Your ACME code is ******"] * 2
