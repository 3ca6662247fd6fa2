"""OTP send results written by the dispatch worker (SPEC OTP-06): the SENT or
FAILED callback and the masking of the code happen in the worker's transaction
that stores the vendor's answer, so they do not depend on the API's sync wait
(here it always times out: no worker runs in the API process). Whoever comes
second (the sync wait, a lookup, or the worker) writes nothing."""

from __future__ import annotations

import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.db.engine import get_engine, make_session
from cpaas_cli.models.callbacks import CallbackOutbox
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from cpaas_cli.models.otp import OtpRequest
from cpaas_cli.otp import requests as otp
from cpaas_cli.otp import results
from tests.api_helpers import api, assert_problem  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_otp_api import ES, basic, code_of, integration, send, short_sync, table  # noqa: F401
from tests.test_serve import campaign, serve_once, setup, smsc  # noqa: F401

R = OtpRequest.__table__


def otp_rows(db_url) -> list[dict]:
    return table(db_url, CallbackOutbox, CallbackOutbox.__table__.c.kind == "otp")


def texts(db_url) -> list[str]:
    return [m["text"] for m in table(db_url, OutboundMessage)] + [c["text"] for c in table(db_url, Campaign)]


def test_a_send_whose_wait_timed_out_gets_its_sent_callback_from_the_worker(api, cli, db_url, smsc, tmp_path):  # noqa: F811
    setup(cli, smsc.port)
    key = integration(cli, "Login", "--callback-url", "http://127.0.0.1:9/cb")
    rids = [send(api, key, n) for n in (ES, "34620000002", "34620000003")]  # 200 after the wait gave up
    campaign(cli, tmp_path, [f"3460{i:07d}" for i in range(10)], "Hello", "plain")  # batched with them
    assert otp_rows(db_url) == [] and {r["sent_status"] for r in table(db_url, OtpRequest)} == {None}
    code = code_of(db_url, rids[0])
    assert f"Your ACME code is {code}" in texts(db_url)

    out = serve_once(cli)
    assert out["submitted"] == 13, out

    got = otp_rows(db_url)
    assert [(r["transaction_id"], r["status"]) for r in got] == [(rid, "SENT") for rid in rids]
    reqs = {r["request_id"]: r for r in table(db_url, OtpRequest)}
    for row in got:
        req = reqs[row["transaction_id"]]
        assert row["payload"] == {
            "requestId": req["request_id"], "number": req["number"], "status": "SENT",
            "timestamp": int(req["created_at"].timestamp()), "billable": True,
        }  # fmt: skip
        assert req["sent_status"] == "SENT" and req["sent_at"] is not None and req["state"] == "pending"
    masked = "Your ACME code is ******"
    assert sorted(texts(db_url)) == sorted([masked] * 6 + ["Hello"] * 11)

    # the sync wait and a lookup coming later find the result recorded: no second row
    engine = get_engine(db_url)
    assert otp.settle(engine, rids[0], reqs[rids[0]]["queue_id"], timeout=1) == "SENT"
    shown = api.get(f"/api/v1/2fa/requests/{rids[1]}", headers=basic(key)).json()
    assert shown["billable"] is True and shown["status"] in ("SUBMIT", "DELIVERED", "UNDELIVERED")
    assert len(otp_rows(db_url)) == 3
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rids[0], "code": code})
    assert r.status_code == 200, r.text
    assert [r["status"] for r in otp_rows(db_url)] == ["SENT"] * 3 + ["VERIFIED"]


def test_a_refused_submit_gets_failed_and_the_code_cannot_be_checked(api, cli, db_url, smsc):  # noqa: F811
    setup(cli, smsc.port)
    key = integration(cli, "Login", "--callback-url", "http://127.0.0.1:9/cb")
    smsc.fail_next(1, 0x0B)  # ESME_RINVDSTADR: not retryable
    rid = send(api, key)
    code = code_of(db_url, rid)
    out = serve_once(cli)
    assert out["rejected"] == 1, out

    (row,) = otp_rows(db_url)
    assert row["transaction_id"] == rid and row["status"] == "FAILED"
    assert row["payload"]["status"] == "FAILED" and row["payload"]["billable"] is False  # refunded
    (req,) = table(db_url, OtpRequest)
    assert req["sent_status"] == "FAILED" and req["state"] == "failed" and req["closed_at"] is not None
    assert texts(db_url) == ["Your ACME code is ******"] * 2
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code})
    assert_problem(r, 409, "otp-failed")
    assert api.get(f"/api/v1/2fa/requests/{rid}", headers=basic(key)).json()["status"] == "FAILED"
    assert len(otp_rows(db_url)) == 1


def test_a_result_recorded_first_by_the_sync_path_is_not_written_again_by_the_worker(api, cli, db_url, smsc):  # noqa: F811
    setup(cli, smsc.port)
    key = integration(cli, "Login", "--callback-url", "http://127.0.0.1:9/cb")
    rid = send(api, key)
    (req,) = table(db_url, OtpRequest)
    s = make_session(get_engine(db_url), actor="pytest")
    try:  # what the sync wait does when it wins the race: the same conditional UPDATE
        assert results.record(s, [req["queue_id"]], "SENT", now=clock.now()) == [req["id"]]
        assert results.record(s, [req["queue_id"]], "SENT", now=clock.now()) == []  # once
        s.commit()
    finally:
        s.close()
    out = serve_once(cli)
    assert out["submitted"] == 1, out
    (row,) = otp_rows(db_url)
    assert row["transaction_id"] == rid and row["status"] == "SENT"
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(R.c.sent_status)).scalar_one() == "SENT"


def test_without_a_callback_url_the_worker_still_records_and_masks(api, cli, db_url, smsc):  # noqa: F811
    setup(cli, smsc.port)
    key = integration(cli)
    rid = send(api, key)
    serve_once(cli)
    assert otp_rows(db_url) == []
    (req,) = table(db_url, OtpRequest)
    assert req["request_id"] == rid and req["sent_status"] == "SENT"
    assert texts(db_url) == ["Your ACME code is ******"] * 2
