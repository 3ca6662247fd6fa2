"""OTP / 2FA integrations (SPEC OTP-01/02) through the CLI: fields, refusals,
states, keys shown once, lists in every format, test sends."""

from __future__ import annotations

import csv
import io
import json
import re

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.otp import OtpIntegration, OtpRequest
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_serve import setup

TEXT = "Your ACME code is {{code}}"
KEY = re.compile(r"^[0-9a-f]{32}:[0-9a-f]{32}$")


def make(cli, name: str = "Login", *extra: str) -> dict:
    return cli.json(
        "otp", "integration", "create", "-c", "Client A", "--name", name, "-s", "ACME", "--text", TEXT, *extra
    )


def ready(cli) -> None:
    setup(cli, 9)  # Client A, agreement AG-1, sender ACME over connection "sim" (no SMSC needed here)


def rows(db_url, table) -> list[dict]:
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table.__table__))]


def test_create_shows_the_key_once_and_stores_only_its_hash(cli, db_url):
    ready(cli)
    run = cli("otp", "integration", "create", "-c", "Client A", "--name", "Login", "-s", "ACME", "--text", TEXT,
              "-o", "json")  # fmt: skip
    got = json.loads(run.stdout)
    assert KEY.match(got["api_key"]), got
    assert got["state"] == "active" and got["mode"] == "platform" and got["digits"] == 6 and got["type"] == "numeric"
    assert got["validity_s"] == 300 and got["sender"] == "ACME" and got["company"] == "Client A"
    assert got["url"].endswith("/api/v1/2fa/verify/sms") and got["key_id"] == got["api_key"].split(":")[0]
    assert "1 segment" in run.stderr and "shown once" in run.stderr
    (row,) = rows(db_url, OtpIntegration)
    secret = got["api_key"].split(":")[1]
    assert secret not in json.dumps(row, default=str) and len(row["secret_hash"]) == 64
    shown = cli.json("otp", "integration", "show", "Login")
    assert "api_key" not in shown and shown["key_id"] == got["key_id"]
    audit = json.dumps(cli.json("audit", "list", "--object", "otp_integration"))
    assert secret not in audit and row["secret_hash"] not in audit


def test_client_side_url_and_a_long_text_says_it_is_billed_as_two(cli):
    ready(cli)
    long_text = "Your verification code for the ACME customer portal is {{code}}. " * 3
    run = cli("otp", "integration", "create", "-c", "Client A", "--name", "Shop", "-s", "ACME", "--text", long_text,
              "--mode", "client", "--digits", "8", "-o", "json")  # fmt: skip
    got = json.loads(run.stdout)
    assert got["mode"] == "client" and got["url"].endswith("/api/v1/2fa/send/sms") and got["segments"] == 2
    assert "8-character code is 2 segments" in run.stderr and "billed as 2 messages" in run.stderr


def test_refusals_name_the_field_and_write_nothing(cli, db_url):
    ready(cli)
    base = ["otp", "integration", "create", "-c", "Client A", "--name", "X", "-s", "ACME"]
    assert "{{code}}" in cli(*base, "--text", "no placeholder", expect=4).stderr
    assert "--digits" in cli(*base, "--text", TEXT, "--digits", "5", expect=4).stderr
    assert "--validity" in cli(*base, "--text", TEXT, "--validity", "601", expect=4).stderr
    assert "--validity" in cli(*base, "--text", TEXT, "--validity", "0", expect=4).stderr
    assert "--type" in cli(*base, "--text", TEXT, "--type", "hex", expect=4).stderr
    assert "--mode" in cli(*base, "--text", TEXT, "--mode", "both", expect=4).stderr
    err = cli(*base, "--text", TEXT, "--channel", "fax", expect=4).stderr
    assert "--channel" in err and "sms or email" in err
    assert "--subject" in cli(*base, "--text", TEXT, "--channel", "email", "--subject", "a\nb", expect=4).stderr
    assert "--callback-url" in cli(*base, "--text", TEXT, "--callback-url", "ftp://x", expect=4).stderr
    assert cli(*base[:-2], "--text", TEXT, expect=4).stderr  # no sender
    cli("otp", "integration", "create", "-c", "Client A", "--name", "X", "-s", "NOPE", "--text", TEXT, expect=3)
    assert rows(db_url, OtpIntegration) == []
    make(cli, "X")
    assert "already has" in cli(*base, "--text", TEXT, expect=5).stderr


def test_states_follow_the_seed_transitions(cli, db_url):
    ready(cli)
    assert make(cli, "D", "--draft")["state"] == "draft"
    assert "needs active" in cli("otp", "integration", "disable", "D", expect=5).stderr
    assert cli.json("otp", "integration", "enable", "D")["state"] == "active"
    assert "needs draft or blocked" in cli("otp", "integration", "enable", "D", expect=5).stderr
    assert cli.json("otp", "integration", "disable", "D")["state"] == "blocked"
    assert cli.json("otp", "integration", "enable", "D")["state"] == "active"
    cli("otp", "integration", "delete", "D", expect=2)  # not on a terminal, no --yes
    assert cli.json("otp", "integration", "delete", "D", "--yes")["deleted"] is True
    cli("otp", "integration", "show", "D", expect=3)
    assert rows(db_url, OtpIntegration) == []


def test_update_changes_fields_and_regenerates_the_key(cli):
    ready(cli)
    first = make(cli)
    run = cli("otp", "integration", "update", "Login", "--digits", "4", "--type", "alphanumeric", "--validity", "60",
              "--regenerate-key", "--max-checks", "3", "-o", "json")  # fmt: skip
    got = json.loads(run.stdout)
    assert got["digits"] == 4 and got["type"] == "alphanumeric" and got["validity_s"] == 60 and got["max_checks"] == 3
    assert KEY.match(got["api_key"]) and got["api_key"] != first["api_key"] and got["key_id"] != first["key_id"]
    assert "4-character code is 1 segment" in run.stderr
    assert "{{code}}" in cli("otp", "integration", "update", "Login", "--text", "plain", expect=4).stderr
    assert "api_key" not in cli.json("otp", "integration", "update", "Login", "--name", "Login 2")


def test_callback_url_makes_a_signing_secret_shown_once(cli, db_url):
    ready(cli)
    got = make(cli, "CB", "--callback-url", "http://127.0.0.1:9/cb")
    assert got["callback_url"] == "http://127.0.0.1:9/cb" and got["callback_secret"].startswith("whsec_")
    (row,) = rows(db_url, OtpIntegration)
    assert got["callback_secret"] not in row["callback_secret"]  # a Fernet token, not the secret
    again = cli.json("otp", "integration", "update", "CB", "--rotate-secret")
    assert again["callback_secret"].startswith("whsec_") and again["callback_secret"] != got["callback_secret"]
    assert "callback_secret" not in cli.json("otp", "integration", "show", "CB")
    cleared = cli.json("otp", "integration", "update", "CB", "--callback-url", "")
    assert cleared["callback_url"] is None


def test_list_in_every_format(cli):
    ready(cli)
    make(cli, "A")
    make(cli, "B", "--draft")
    got = cli.json("otp", "integration", "list")
    assert [r["name"] for r in got] == ["B", "A"] and all("api_key" not in r for r in got)
    assert [r["name"] for r in cli.json("otp", "integration", "list", "--state", "draft")] == ["B"]
    lines = cli("otp", "integration", "list", "-o", "jsonl").stdout.splitlines()
    assert [json.loads(x)["name"] for x in lines] == ["B", "A"]
    for fmt, delim in (("csv", ","), ("tsv", "\t")):
        table = list(csv.DictReader(io.StringIO(cli("otp", "integration", "list", "-o", fmt).stdout), delimiter=delim))
        assert [r["name"] for r in table] == ["B", "A"] and table[0]["state"] == "draft"
    assert "Client A" in cli("otp", "integration", "list", "-o", "table").stdout
    assert [r["name"] for r in cli.json("otp", "integration", "list", "--limit", "1")] == ["B"]
    assert cli("otp", "integration", "list", "--state", "gone", expect=4).stderr


def test_test_send_queues_a_code_and_a_blocked_integration_refuses(cli, db_url):
    ready(cli)
    make(cli, "T", "--draft")
    sent = cli.json("otp", "integration", "test", "T", "--number", "34620000001")  # a Draft may be tested
    assert sent["status"] == "QUEUED" and len(sent["requestId"]) == 32 and sent["message_id"]
    (req,) = rows(db_url, OtpRequest)
    assert req["state"] == "pending" and req["number"] == "34620000001" and req["country"] == "ES"
    assert req["code_hash"] and len(req["code_hash"]) == 64
    shown = cli.json("otp", "request", "T", sent["requestId"])
    assert shown["status"] == "QUEUED" and shown["rate"] is None and shown["billable"] is None
    assert shown["goals"] == ["NUMBER_VERIFIED"] and shown["payload"] == {"number": "34620000001"}
    cli.json("otp", "integration", "enable", "T")
    cli.json("otp", "integration", "disable", "T")
    assert "blocked" in cli("otp", "integration", "test", "T", "--number", "34620000001", expect=8).stderr
    cli.json("otp", "integration", "enable", "T")
    assert "number: E.164" in cli("otp", "integration", "test", "T", "--number", "12ab", expect=4).stderr


def test_the_doorbell_wakes_registered_workers_only():
    from cpaas_cli.dispatch import doorbell

    bell, gone = doorbell.register(), doorbell.register()
    doorbell.unregister(gone)
    doorbell.ring()
    assert bell.is_set() and not gone.is_set()
    assert bell.wait(60)  # at once: the bell rang
    bell.clear()
    assert not bell.is_set() and not bell.wait(0)
    doorbell.ring()
    doorbell.ring()
    assert bell.wait(0)
    bell.clear()  # one clear reads every ring's byte: a select on the bell waits again
    assert not bell.is_set() and not bell.wait(0)
    doorbell.unregister(bell)
    doorbell.ring()  # a closed bell is left out
