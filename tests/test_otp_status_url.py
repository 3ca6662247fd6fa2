"""`otp integration test --status-url URL` (SPEC OTP-01: a test send takes a phone number and a
callback delivery-status URL): the test request's result callbacks go to that URL, signed with
the integration's secret, and not to the integration's own callback URL."""

from __future__ import annotations

import json
import time

from cpaas_cli.callbacks import signing
from cpaas_cli.callbacks.sender import Sender, SenderOptions
from cpaas_cli.config import load_settings
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.otp import OtpRequest
from cpaas_cli.secretbox import load_keyring
from tests.api_helpers import api  # noqa: F401
from tests.callback_receiver import Receiver
from tests.identity_helpers import identity_env  # noqa: F401
from tests.smtp import smtp_server  # noqa: F401
from tests.test_otp_api import basic, code_of, short_sync, table  # noqa: F401
from tests.test_otp_email import email_tree
from tests.test_serve import serve_once, setup, smsc  # noqa: F401

ES = "34620000001"


def post_callbacks(db_url) -> None:
    sender = Sender(get_engine(db_url), load_keyring(load_settings(db=db_url)), options=SenderOptions())
    try:
        while sender.step():
            pass
    finally:
        sender.close()


def bodies(rx: Receiver, secret: str) -> list[dict]:
    out = []
    for headers, body in rx.got:
        assert signing.verify(secret, headers["x-cpaas-signature"], body, now=time.time())
        out.append(json.loads(body))
    return out


def test_sms_test_send_results_go_to_the_status_url(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    with Receiver() as own, Receiver() as status:
        made = cli.json(
            "otp", "integration", "create", "-c", "Client A", "--name", "Login", "-s", "ACME", "--text",
            "Code {{code}}", "--callback-url", own.url,
        )  # fmt: skip
        sent = cli.json("otp", "integration", "test", "Login", "--number", ES, "--status-url", status.url)
        assert sent["status_url"] == status.url and "callback_secret" not in sent  # it had a secret already
        rid = sent["requestId"]
        r = api.post("/api/v1/2fa/verify", headers=basic(made["api_key"]),
                     data={"requestId": rid, "code": code_of(db_url, rid)})  # fmt: skip
        assert r.status_code == 200, r.text
        # an ordinary request of the same integration still reports to the integration's URL
        other = api.post("/api/v1/2fa/verify/sms", headers=basic(made["api_key"]), data={"number": "34620000002"})
        orid = other.json()["requestId"]
        api.post("/api/v1/2fa/verify", headers=basic(made["api_key"]),
                 data={"requestId": orid, "code": code_of(db_url, orid)})  # fmt: skip
        post_callbacks(db_url)
        got = bodies(status, made["callback_secret"])
        assert [(b["requestId"], b["status"], b["number"]) for b in got] == [(rid, "VERIFIED", ES)]
        assert [(b["requestId"], b["status"]) for b in bodies(own, made["callback_secret"])] == [(orid, "VERIFIED")]


def test_a_status_url_on_an_integration_without_callbacks_makes_its_secret(cli, db_url, smtp_server, tmp_path):  # noqa: F811
    setup(cli, 9, tree=email_tree(tmp_path))
    cli.json(
        "otp", "integration", "create", "-c", "Client A", "--name", "Mail", "-s", "ACME", "--text", "Code {{code}}",
        "--channel", "email",
    )  # fmt: skip
    with Receiver() as status:
        sent = cli.json("otp", "integration", "test", "Mail", "--email", "qa@example.com", "--status-url", status.url)
        assert sent["status"] == "SENT"
        secret = sent["callback_secret"]  # made now, shown once
        assert secret.startswith("whsec_")
        again = cli.json("otp", "integration", "test", "Mail", "--email", "qa@example.com", "--status-url", status.url)
        assert "callback_secret" not in again
        post_callbacks(db_url)
        got = bodies(status, secret)
    # two requests: the sender keeps the order of one request's callbacks, not across requests
    assert sorted((b["requestId"], b["status"], b["email"]) for b in got) == sorted([
        (sent["requestId"], "SENT", "qa@example.com"),
        (again["requestId"], "SENT", "qa@example.com"),
    ])  # fmt: skip
    assert len(smtp_server.messages) == 2


def test_a_bad_status_url_is_refused_before_anything_is_sent(cli, db_url, identity_env):  # noqa: F811
    setup(cli, 9)
    cli.json("otp", "integration", "create", "-c", "Client A", "--name", "Login", "-s", "ACME", "--text", "C {{code}}")
    run = cli("otp", "integration", "test", "Login", "--number", ES, "--status-url", "ftp://x/cb", expect=4)
    assert "--status-url" in run.stderr
    assert table(db_url, OtpRequest) == []


def test_the_workers_sent_result_of_a_test_send_goes_to_the_status_url(cli, db_url, smsc, identity_env):  # noqa: F811
    setup(cli, smsc.port)
    cli.json("otp", "integration", "create", "-c", "Client A", "--name", "Login", "-s", "ACME", "--text", "C {{code}}")
    with Receiver() as status:
        sent = cli.json("otp", "integration", "test", "Login", "--number", ES, "--status-url", status.url)
        assert sent["status"] == "QUEUED"
        assert serve_once(cli)["submitted"] == 1  # the worker records SENT: the request has a URL of its own
        post_callbacks(db_url)
        got = bodies(status, sent["callback_secret"])
    assert [(b["requestId"], b["status"], b["number"], b["billable"]) for b in got] == [
        (sent["requestId"], "SENT", ES, True)
    ]
