"""The e-mail channel of 2FA integrations (issue 28): the code goes to a real SMTP server
(aiosmtpd) on 127.0.0.1, is checked through the common verify route, its results are
called back, and it is charged by the rate tree's email price through the charging
core; wrong channel routes, malformed addresses, an unpriced request and an SMTP
server that is down (FAILED, refunded) each answer with their status and type."""

from __future__ import annotations

import base64
import re

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.callbacks import CallbackOutbox
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.otp import OtpRequest
from tests.api_helpers import api, assert_problem  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.smtp import smtp_server  # noqa: F401
from tests.test_catalog import EXAMPLE1
from tests.test_serve import setup

TEXT = "Your ACME code is {{code}}. It expires in 5 minutes."
ADDRESS = "Ana.Garcia@Example.COM"
EMAIL_TREE = """
  email:
    depends_on: resource
    children:
      email_message:
        billing_rule: submitted
        quantity_rule: messages
        price: "0.002"
"""


def email_tree(tmp_path, extra: str = EMAIL_TREE):
    path = tmp_path / "tree.yaml"
    path.write_text(EXAMPLE1.read_text().rstrip("\n") + "\n" + extra.strip("\n") + "\n")
    return path


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(key.encode()).decode()}


def table(db_url, model, *where) -> list[dict]:
    t = model.__table__
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).where(*where).order_by(t.c.id))]


def integration(cli, *extra: str, name: str = "Mail login") -> dict:
    return cli.json(
        "otp", "integration", "create", "-c", "Client A", "--name", name, "-s", "ACME", "--text", TEXT,
        "--channel", "email", "--subject", "ACME sign-in code", *extra,
    )  # fmt: skip


def code_in(message) -> str:
    return re.search(r"code is (\w+)\.", message.get_payload()).group(1)


@pytest.fixture
def priced(cli, tmp_path):
    setup(cli, 9, tree=email_tree(tmp_path))


def test_send_verify_callback_and_charge(api, cli, db_url, smtp_server, priced):  # noqa: F811
    made = integration(cli, "--callback-url", "http://127.0.0.1:9/cb")
    assert made["channel"] == "email" and made["subject"] == "ACME sign-in code"
    assert made["url"].endswith("/api/v1/2fa/verify/email")
    r = api.post("/api/v1/2fa/verify/email", headers=basic(made["api_key"]), data={"email": ADDRESS})
    assert r.status_code == 200, r.text
    rid = r.json()["requestId"]

    (mail,) = smtp_server.messages
    assert mail["X-Envelope-To"] == ADDRESS.lower() and mail["Subject"] == "ACME sign-in code"
    assert mail["From"].startswith("ACME <")
    code = code_in(mail)
    assert len(code) == 6 and code.isdigit()
    (req,) = table(db_url, OtpRequest)
    assert req["channel"] == "email" and req["number"] == ADDRESS.lower() and req["sent_status"] == "SENT"
    assert code not in req["code_hash"]

    # charged through the charging core by the tree's email price: 0.002 EUR = 2000 micro-units
    (edr,) = table(db_url, Edr)
    assert edr["channel"] == "email" and edr["external_id"] == f"otp:{rid}" and edr["rating_state"] == "rated"
    assert edr["cost"] == 2000 and edr["status"] == "submitted"
    (charge,) = table(db_url, Charge)
    assert charge["amount"] == 2000 and charge["edr_id"] == edr["id"]

    shown = api.get(f"/api/v1/2fa/requests/{rid}", headers=basic(made["api_key"])).json()
    assert (
        shown["email"] == ADDRESS.lower() and "number" not in shown and shown["payload"] == {"email": ADDRESS.lower()}
    )
    assert shown["rate"] == "0.002" and shown["billable"] is True and shown["status"] == "SUBMIT"
    assert shown["channel"] == "email" and shown["verification"] == "pending"

    r = api.post("/api/v1/2fa/verify", headers=basic(made["api_key"]), data={"requestId": rid, "code": code})
    assert r.status_code == 200, r.text
    assert r.json()["email"] == ADDRESS.lower()
    again = api.post("/api/v1/2fa/verify", headers=basic(made["api_key"]), data={"requestId": rid, "code": code})
    assert_problem(again, 409, "otp-used")

    sent, verified = table(db_url, CallbackOutbox)
    assert (sent["status"], verified["status"]) == ("SENT", "VERIFIED")
    assert sent["channel"] == "EMAIL" and sent["transaction_id"] == rid
    assert sent["payload"] == {
        "requestId": rid, "email": ADDRESS.lower(), "status": "SENT", "timestamp": int(req["created_at"].timestamp()),
        "billable": True,
    }  # fmt: skip
    assert verified["payload"]["status"] == "VERIFIED" and verified["payload"]["email"] == ADDRESS.lower()


def test_new_send_cancels_the_old_code_limits_per_address(api, cli, db_url, smtp_server, priced):  # noqa: F811
    key = integration(cli, "--max-sends", "2")["api_key"]
    first = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": ADDRESS}).json()["requestId"]
    api.post("/api/v1/2fa/verify/email", headers=basic(key), json={"email": ADDRESS.lower()})  # the same address
    old = code_in(smtp_server.messages[0])
    r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": first, "code": old})
    assert_problem(r, 409, "otp-cancelled")
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": ADDRESS})
    assert_problem(r, 429, "otp-send-limit")
    assert len(smtp_server.messages) == 2 and len(table(db_url, OtpRequest)) == 2
    ok = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": "other@example.com"})
    assert ok.status_code == 200, ok.text
    # the fraud guard's hourly limit counts per address too (its prefix and country parts do not apply)
    cli.json("otp", "guard", "set", "Mail login", "--per-number-hour", "1")
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": "other@example.com"})
    assert_problem(r, 429, "otp-number-hour-limit")


def test_client_side_email(api, cli, db_url, smtp_server, priced):  # noqa: F811
    key = integration(cli, "--mode", "client", name="Client mail")["api_key"]
    r = api.post("/api/v1/2fa/send/email", headers=basic(key), data={"email": ADDRESS, "code": "ab12CD"})
    assert r.status_code == 200, r.text
    assert code_in(smtp_server.messages[0]) == "ab12CD"
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": ADDRESS})
    assert_problem(r, 409, "otp-wrong-mode")


def test_each_channel_answers_only_its_own_routes(api, cli, db_url, smtp_server, priced):  # noqa: F811
    mail_key = integration(cli)["api_key"]
    sms_key = cli.json(
        "otp", "integration", "create", "-c", "Client A", "--name", "Sms", "-s", "ACME", "--text", "code {{code}}"
    )["api_key"]
    r = assert_problem(
        api.post("/api/v1/2fa/verify/sms", headers=basic(mail_key), data={"number": "34620000001"}),
        409,
        "otp-wrong-channel",
    )
    assert "/api/v1/2fa/verify/email" in r["detail"]
    r = assert_problem(
        api.post("/api/v1/2fa/verify/email", headers=basic(sms_key), data={"email": ADDRESS}), 409, "otp-wrong-channel"
    )
    assert "/api/v1/2fa/verify/sms" in r["detail"]
    assert_problem(api.post("/api/v1/2fa/send/email", headers=basic(sms_key), data={"email": ADDRESS}), 409,
                   "otp-wrong-channel")  # fmt: skip
    assert smtp_server.messages == [] and table(db_url, OtpRequest) == [] and table(db_url, Charge) == []


@pytest.mark.parametrize(
    "address", ["not-an-address", "a@b", "@example.com", "ana@", "ana garcia@example.com", "ana@exa_mple.com",
                "ana..b@example.com", "ana@example.123", "x" * 65 + "@example.com"],
)  # fmt: skip
def test_a_malformed_address_is_422_naming_the_field(api, cli, db_url, smtp_server, priced, address):  # noqa: F811
    key = integration(cli)["api_key"]
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": address})
    got = assert_problem(r, 422, "invalid-input")
    assert got["problems"][0]["field"] == "email"
    missing = assert_problem(api.post("/api/v1/2fa/verify/email", headers=basic(key), data={}), 422, "invalid-input")
    assert missing["problems"][0]["field"] == "email"
    assert smtp_server.messages == [] and table(db_url, OtpRequest) == [] and table(db_url, Edr) == []


def test_smtp_down_is_failed_with_a_callback_and_nothing_charged(api, cli, db_url, monkeypatch, priced):  # noqa: F811
    from tests.smtp import _free_port

    monkeypatch.setenv("CPAAS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CPAAS_SMTP_PORT", str(_free_port()))  # nothing listens there
    key = integration(cli, "--callback-url", "http://127.0.0.1:9/cb")["api_key"]
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": ADDRESS})
    got = assert_problem(r, 502, "otp-failed")
    rid = got["requestId"]
    (req,) = table(db_url, OtpRequest)
    assert req["state"] == "failed" and req["sent_status"] == "FAILED"
    (edr,) = table(db_url, Edr)
    assert edr["status"] == "failed" and edr["cost"] == 0 and edr["submitted_at"] is None
    charges = table(db_url, Charge)
    assert sum(c["amount"] for c in charges) == 0 and [c["kind"] for c in charges] == ["edr", "refund"]
    (cb,) = table(db_url, CallbackOutbox)
    assert cb["status"] == "FAILED" and cb["payload"]["billable"] is False and cb["payload"]["email"] == ADDRESS.lower()
    shown = api.get(f"/api/v1/2fa/requests/{rid}", headers=basic(key)).json()
    assert shown["status"] == "FAILED" and shown["billable"] is False and shown["verification"] == "failed"


def test_a_request_the_tree_cannot_price_is_refused_nothing_sent(api, cli, db_url, smtp_server):  # noqa: F811
    setup(cli, 9)  # the SMS tree only: no email price
    key = integration(cli)["api_key"]
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": ADDRESS})
    got = assert_problem(r, 409, "otp-not-priced")
    assert got["reason"] == "no_rate" and "email" in got["detail"]
    assert smtp_server.messages == [] and table(db_url, OtpRequest) == [] and table(db_url, Edr) == []
    assert table(db_url, Charge) == []


def test_insufficient_credit_is_402_and_nothing_is_sent(api, cli, db_url, smtp_server, tmp_path):  # noqa: F811
    tree = email_tree(tmp_path, EMAIL_TREE.replace('"0.002"', '"5"'))
    setup(cli, 9, tree=tree, credit="1")
    key = integration(cli)["api_key"]
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": ADDRESS})
    assert_problem(r, 402, "insufficient-credit")
    assert smtp_server.messages == [] and table(db_url, OtpRequest) == [] and table(db_url, Charge) == []


def test_no_smtp_server_configured_is_503_before_anything_is_written(api, cli, db_url, monkeypatch, priced):  # noqa: F811
    monkeypatch.delenv("CPAAS_SMTP_HOST", raising=False)
    key = integration(cli)["api_key"]
    r = api.post("/api/v1/2fa/verify/email", headers=basic(key), data={"email": ADDRESS})
    assert_problem(r, 503, "otp-email-unavailable")
    assert table(db_url, OtpRequest) == [] and table(db_url, Edr) == []


def test_cli_create_update_and_test_send(cli, db_url, smtp_server, priced):  # noqa: F811
    got = integration(cli)
    assert got["segments"] == 1
    changed = cli.json("otp", "integration", "update", "Mail login", "--subject", "Code: {{code}}")
    assert changed["subject"] == "Code: {{code}}"
    sent = cli.json("otp", "integration", "test", "Mail login", "--email", ADDRESS)
    assert sent["status"] == "SENT" and sent["email"] == ADDRESS.lower()
    (mail,) = smtp_server.messages
    assert mail["Subject"] == "Code: " + code_in(mail)
    bad = cli("otp", "integration", "test", "Mail login", "--number", "34620000001", expect=4)
    assert bad.exit_code == 4 and "--email" in bad.stderr
    bad = cli("otp", "integration", "update", "Mail login", "--channel", "fax", expect=4)
    assert bad.exit_code == 4 and "--channel" in bad.stderr
