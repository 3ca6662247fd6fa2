"""The 2FA API (SPEC OTP-03..06) in-process: sends, checks, lookups, and every
refusal with its status and problem type; nothing is charged or written for a
refused send. No worker runs here, so a send answers once its short sync wait
ends, and the code is read from the queued message (the worker would mask it)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.callbacks import CallbackOutbox
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from cpaas_cli.models.otp import OtpRequest
from tests.api_helpers import api, assert_problem  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_serve import setup

TEXT = "Your ACME code is {{code}}"
ES = "34620000001"


@pytest.fixture(autouse=True)
def short_sync(monkeypatch):
    from cpaas_cli.api import otp

    monkeypatch.setattr(otp, "SYNC_TIMEOUT", 0.05)  # no worker here: do not wait for one


def integration(cli, name: str = "Login", *extra: str) -> str:
    got = cli.json(
        "otp", "integration", "create", "-c", "Client A", "--name", name, "-s", "ACME", "--text", TEXT, *extra
    )
    return got["api_key"]


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(key.encode()).decode()}


def table(db_url, model, *where) -> list[dict]:
    t = model.__table__
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).where(*where).order_by(t.c.id))]


def code_of(db_url, request_id: str) -> str:
    (req,) = table(db_url, OtpRequest, OtpRequest.__table__.c.request_id == request_id)
    (msg,) = table(db_url, OutboundMessage, OutboundMessage.__table__.c.id == req["queue_id"])
    return msg["text"].rsplit(" ", 1)[1]


def send(api, key: str, number: str = ES, **extra) -> str:  # noqa: F811
    r = api.post("/api/v1/2fa/verify/sms", headers=basic(key), data={"number": number, **extra})
    assert r.status_code == 200, r.text
    return r.json()["requestId"]


def test_platform_side_send_verify_once_and_lookup(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli, "Login", "--callback-url", "http://127.0.0.1:9/cb")
    rid = send(api, key)
    assert len(rid) == 32
    code = code_of(db_url, rid)
    assert len(code) == 6 and code.isdigit()
    (req,) = table(db_url, OtpRequest)
    assert code not in (req["code_hash"] or "") and req["state"] == "pending"

    shown = api.get(f"/api/v1/2fa/requests/{rid}", headers=basic(key)).json()
    assert shown["id"] == rid and shown["number"] == ES and shown["sender"] == "ACME"
    assert shown["status"] == "QUEUED" and shown["rate"] is None and shown["billable"] is None
    assert shown["goals"] == ["NUMBER_VERIFIED"] and shown["payload"] == {"number": ES}
    assert abs(shown["createdAt"] - int(req["created_at"].timestamp() * 1000)) <= 1

    wrong = "000000" if code != "000000" else "111111"
    got = assert_problem(
        api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": wrong}),
        422,
        "otp-code-mismatch",
    )
    assert got["attemptsLeft"] == 4
    r = api.post("/api/v1/2fa/verify", headers=basic(key), json={"requestId": rid, "code": code})  # JSON too
    assert r.status_code == 200, r.text
    assert r.json()["number"] == ES and abs(r.json()["verifiedAt"] - clock.now().timestamp()) < 60
    again = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code})
    assert_problem(again, 409, "otp-used")
    (req,) = table(db_url, OtpRequest)
    assert req["state"] == "verified" and req["checks"] == 2 and req["verified_at"] is not None
    (cb,) = table(db_url, CallbackOutbox)
    assert cb["kind"] == "otp" and cb["status"] == "VERIFIED" and cb["transaction_id"] == rid
    assert cb["payload"] == {
        "requestId": rid, "number": ES, "status": "VERIFIED", "timestamp": int(req["created_at"].timestamp()),
        "billable": None,
    }  # fmt: skip
    # Bearer works as well as Basic
    assert api.get(f"/api/v1/2fa/requests/{rid}", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_five_checks_then_429_and_the_right_code_no_longer_passes(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli)
    rid = send(api, key)
    code = code_of(db_url, rid)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": wrong})
        assert assert_problem(r, 422, "otp-code-mismatch")["attemptsLeft"] == left
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code})
    assert_problem(r, 429, "otp-check-limit")
    assert table(db_url, OtpRequest)[0]["state"] == "locked"


def test_five_sends_per_number_then_429_and_a_new_send_cancels_the_previous_code(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli)
    ids = [send(api, key) for _ in range(5)]
    r = api.post("/api/v1/2fa/verify/sms", headers=basic(key), data={"number": ES})
    got = assert_problem(r, 429, "otp-send-limit")
    assert 500 <= got["retryAfter"] <= 600
    assert len(table(db_url, OtpRequest)) == 5  # the refused send wrote nothing
    states = [r["state"] for r in table(db_url, OtpRequest)]
    assert states == ["cancelled"] * 4 + ["pending"]
    old = code_of(db_url, ids[0])
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": ids[0], "code": old})
    assert_problem(r, 409, "otp-cancelled")
    send(api, key, "34620000002")  # another number has its own limit
    cli.json("otp", "integration", "update", "Login", "--max-sends", "6")  # configurable per integration
    send(api, key)


def test_an_expired_code_is_refused(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli, "Login", "--validity", "30")
    rid = send(api, key)
    code = code_of(db_url, rid)
    t = OtpRequest.__table__
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.update(t).values(expires_at=clock.now() - timedelta(seconds=1)))
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code})
    assert_problem(r, 409, "otp-expired")
    assert table(db_url, OtpRequest)[0]["state"] == "expired"
    assert api.get(f"/api/v1/2fa/requests/{rid}", headers=basic(key)).json()["verification"] == "expired"


def test_keys_and_states_401_403(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli)
    body = {"number": ES}
    assert_problem(api.post("/api/v1/2fa/verify/sms", data=body), 401, "unauthenticated")
    key_id, secret = key.split(":")
    other = f"{key_id}:{'0' * 32 if secret != '0' * 32 else '1' * 32}"
    assert_problem(api.post("/api/v1/2fa/verify/sms", headers=basic(other), data=body), 401, "unauthenticated")
    assert_problem(api.post("/api/v1/2fa/verify/sms", headers=basic("nonsense"), data=body), 401, "unauthenticated")
    bad = {"Authorization": "Basic %%%"}
    assert_problem(api.post("/api/v1/2fa/verify/sms", headers=bad, data=body), 401, "unauthenticated")
    cli.json("otp", "integration", "disable", "Login")
    assert_problem(api.post("/api/v1/2fa/verify/sms", headers=basic(key), data=body), 403, "integration-inactive")
    cli.json("otp", "integration", "enable", "Login")
    new = cli.json("otp", "integration", "update", "Login", "--regenerate-key")["api_key"]
    assert_problem(api.post("/api/v1/2fa/verify/sms", headers=basic(key), data=body), 401, "unauthenticated")
    send(api, new)
    draft = integration(cli, "Draft", "--draft")
    assert_problem(api.post("/api/v1/2fa/verify/sms", headers=basic(draft), data=body), 403, "integration-inactive")
    assert len(table(db_url, OtpRequest)) == 1  # only the send with the new key


@pytest.mark.parametrize(
    "number", ["", "12ab", "+", "1234", "3462000000100000000", "99999999999"], ids=["empty", "letters", "plus",
                                                                                   "short", "long", "no-country"]
)  # fmt: skip
def test_malformed_number_422_and_nothing_written(api, cli, db_url, number):  # noqa: F811
    setup(cli, 9)
    key = integration(cli)
    r = api.post("/api/v1/2fa/verify/sms", headers=basic(key), data={"number": number})
    got = assert_problem(r, 422, "invalid-input")
    assert got["problems"][0]["field"] == "number"
    assert table(db_url, OtpRequest) == [] and table(db_url, Campaign) == []


@pytest.mark.parametrize(
    ("extra", "code"),
    [((), "12345"), ((), "1234567"), ((), "12a456"), (("--type", "alphanumeric", "--digits", "4"), "AB_1"),
     ((), "")],
    ids=["short", "long", "letter-in-numeric", "symbol", "empty"],
)  # fmt: skip
def test_code_of_the_wrong_length_or_type_422_and_not_counted(api, cli, db_url, extra, code):  # noqa: F811
    setup(cli, 9)
    key = integration(cli, "Login", *extra)
    rid = send(api, key)
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code})
    assert assert_problem(r, 422, "invalid-input")["problems"][0]["field"] == "code"
    assert table(db_url, OtpRequest)[0]["checks"] == 0


def test_unknown_request_404_and_another_integrations_request_is_not_seen(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    a, b = integration(cli, "A"), integration(cli, "B")
    rid = send(api, a)
    assert_problem(api.get(f"/api/v1/2fa/requests/{rid}", headers=basic(b)), 404, "not-found")
    assert_problem(api.get("/api/v1/2fa/requests/nope", headers=basic(a)), 404, "not-found")
    r = api.post("/api/v1/2fa/verify", headers=basic(b), data={"requestId": rid, "code": "123456"})
    assert_problem(r, 404, "not-found")
    assert_problem(api.post("/api/v1/2fa/verify", headers=basic(a), data={"code": "123456"}), 422, "invalid-input")


def test_alphanumeric_codes(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli, "Login", "--type", "alphanumeric", "--digits", "8")
    rid = send(api, key)
    code = code_of(db_url, rid)
    assert len(code) == 8 and code.isalnum() and code == code.upper()
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code.lower()})
    assert r.status_code == 200, r.text


def test_client_side_sends_the_clients_code_and_modes_do_not_mix(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    key = integration(cli, "Shop", "--mode", "client")
    r = api.post("/api/v1/2fa/send/sms", headers=basic(key), data={"number": ES, "code": "4711"})
    assert r.status_code == 200, r.text
    rid = r.json()["requestId"]
    assert code_of(db_url, rid) == "4711"
    (req,) = table(db_url, OtpRequest)
    assert req["code_hash"] is None and req["mode"] == "client"
    assert_problem(api.post("/api/v1/2fa/send/sms", headers=basic(key), data={"number": ES}), 422, "invalid-input")
    assert_problem(api.post("/api/v1/2fa/verify/sms", headers=basic(key), data={"number": ES}), 409, "otp-wrong-mode")
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": "4711"})
    assert_problem(r, 409, "otp-wrong-mode")
    platform = integration(cli, "Login")
    r = api.post("/api/v1/2fa/send/sms", headers=basic(platform), data={"number": ES, "code": "4711"})
    assert_problem(r, 409, "otp-wrong-mode")
    r = api.post("/api/v1/2fa/verify/sms", headers=basic(platform), data={"number": ES, "code": "4711"})
    assert_problem(r, 422, "otp-wrong-mode")


def test_insufficient_credit_402_says_why_and_costs_nothing(api, cli, db_url):  # noqa: F811
    setup(cli, 9, credit="0.05")  # one message to a Movistar number costs 0.08
    key = integration(cli)
    r = api.post("/api/v1/2fa/verify/sms", headers=basic(key), data={"number": ES})
    got = assert_problem(r, 402, "insufficient-credit")
    assert got["currency"] == "EUR" and got["required"] == "0.08" and got["available"] == "0.05"
    assert table(db_url, OtpRequest) == [] and table(db_url, Campaign) == [] and table(db_url, OutboundMessage) == []
    assert table(db_url, Charge) == []
    assert send(api, key, "34600000001")  # a Vodafone number costs 0.04: it fits


def test_the_outbox_sender_posts_the_seeds_body_signed_and_delete_drops_the_rows(api, cli, db_url):  # noqa: F811
    import json
    import time

    from cpaas_cli.callbacks import signing
    from cpaas_cli.callbacks.sender import Sender
    from cpaas_cli.config import load_settings
    from cpaas_cli.secretbox import load_keyring
    from tests.callback_receiver import Receiver

    setup(cli, 9)
    with Receiver() as rx:
        made = cli.json(
            "otp", "integration", "create", "-c", "Client A", "--name", "CB", "-s", "ACME", "--text", TEXT,
            "--callback-url", rx.url,
        )  # fmt: skip
        key = made["api_key"]
        rid = send(api, key)
        r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code_of(db_url, rid)})
        assert r.status_code == 200, r.text
        sender = Sender(get_engine(db_url), load_keyring(load_settings(db=db_url)))
        try:
            assert sender.step() == 1
        finally:
            sender.close()
        ((headers, raw),) = rx.got
    data = json.loads(raw)
    assert list(data) == ["requestId", "number", "status", "timestamp", "billable"]
    assert data["requestId"] == rid and data["status"] == "VERIFIED" and data["billable"] is None
    assert signing.verify(made["callback_secret"], headers["x-cpaas-signature"], raw, now=time.time())
    (row,) = cli.json("callback", "list")
    assert row["state"] == "delivered" and row["transaction_id"] == rid and row["api_key_id"] is None
    send(api, key, "34620000002")  # its SENT result never comes here (no worker); a pending row would stay
    cli.json("otp", "integration", "delete", "CB", "--yes")
    assert table(db_url, CallbackOutbox) == [] and table(db_url, OtpRequest) == []


def test_an_otp_result_without_a_callback_url_is_retried_and_says_why(api, cli, db_url):  # noqa: F811
    from cpaas_cli.callbacks.sender import Sender
    from cpaas_cli.config import load_settings
    from cpaas_cli.secretbox import load_keyring

    setup(cli, 9)
    key = integration(cli, "CB", "--callback-url", "http://127.0.0.1:9/cb")
    rid = send(api, key)
    api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code_of(db_url, rid)})
    cli.json("otp", "integration", "update", "CB", "--callback-url", "")
    sender = Sender(get_engine(db_url), load_keyring(load_settings(db=db_url)))
    try:
        assert sender.step() == 1
    finally:
        sender.close()
    (row,) = cli.json("callback", "list")
    assert row["state"] == "pending" and row["last_error"] == "the integration has no callback URL"
