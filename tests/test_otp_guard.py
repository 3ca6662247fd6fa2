"""The OTP fraud guard (issue 28, item 4) through the 2FA API in-process and the CLI: a
simulated pumping burst is stopped (the prefix blocked, later sends refused, a genuine
number elsewhere served, the operator e-mailed, the cost saved counted), and the hourly
limits and the country allow-list answer with their status and problem type. A refused
send writes nothing; no worker runs here (the sends stay queued)."""

from __future__ import annotations

import csv
import io
import json
import logging
import time

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from cpaas_cli.models.otp import OtpRequest
from cpaas_cli.models.otp_guard import OtpGuardBlock
from tests.api_helpers import api, assert_problem  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.smtp import smtp_server  # noqa: F401
from tests.test_otp_api import basic, code_of, integration, send, short_sync, table  # noqa: F401
from tests.test_serve import setup

PUMPED = [f"3462000{i:04d}" for i in range(1, 40)]  # Movistar range of EXAMPLE1: 0.08 a code
PREFIX = "34620000"  # calling code 34 + 6 national digits
GENUINE = "34600000001"  # Vodafone Spain range, another prefix: 0.04 a code
OPS = "ops@client-a.example"


def blocks_told(cli) -> list[dict]:
    """``otp guard list`` once every block's e-mail went (it goes after the send's commit, in a
    thread of its own: the notice says "e-mail pending" until then)."""
    deadline = time.monotonic() + 15
    while True:
        got = cli.json("otp", "guard", "list")
        if all(b["notice"] != "e-mail pending" for b in got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def ready(cli, *, email: bool = True) -> str:
    setup(cli, 9)
    if email:
        cli.json("agreement", "version", "add", "AG-1", "--from", "2026-02-01", "--email", f"account={OPS}")
    return integration(cli)


def post(api, key: str, number: str):  # noqa: F811
    return api.post("/api/v1/2fa/verify/sms", headers=basic(key), data={"number": number})


def count(db_url, model) -> int:
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(model.__table__)).scalar()


def test_a_pumping_burst_is_stopped_and_the_cost_saved_counted(api, cli, db_url, smtp_server, caplog):  # noqa: F811
    key = ready(cli)
    got = cli.json("otp", "guard", "set", "Login", "--min-sends", "10", "--min-conversion", "0.2", "--grace", "0")
    assert got["min_sends"] == 10 and got["min_conversion"] == "0.2" and got["alarm"] is True
    for number in PUMPED[:10]:  # ten codes, none verified: the alarm has its ten sends
        send(api, key, number)
    with caplog.at_level(logging.WARNING, logger="cpaas.otp.guard"):
        body = assert_problem(post(api, key, PUMPED[10]), 403, "otp-prefix-blocked")
    assert body["prefix"] == PREFIX
    assert any(PREFIX in r.getMessage() and "blocked" in r.getMessage() for r in caplog.records)
    for number in PUMPED[11:16]:
        assert_problem(post(api, key, number), 403, "otp-prefix-blocked")
    send(api, key, GENUINE)  # a genuine number on another prefix is still served

    assert count(db_url, OtpRequest) == 11 and count(db_url, Campaign) == 11  # the six refused wrote nothing
    assert count(db_url, OutboundMessage) == 11
    (blocked,) = blocks_told(cli)
    assert blocked["prefix"] == PREFIX and blocked["state"] == "blocked" and blocked["country"] == "ES"
    assert (blocked["sends"], blocked["verified"], blocked["conversion"]) == (10, 0, "0")
    assert blocked["refused"] == 6 and blocked["unit_cost"] == "0.08" and blocked["currency"] == "EUR"
    assert blocked["saved"] == "0.48" and blocked["saved_micros"] == 480_000  # 6 × 0.08
    assert blocked["notice"] == f"e-mailed to {OPS}"
    (mail,) = smtp_server.messages
    assert mail["X-Envelope-To"] == OPS and PREFIX in mail["Subject"] and "Login" in mail["Subject"]
    assert f"cpaas otp guard unblock {blocked['integration_id']} {PREFIX}" in mail.get_payload(decode=True).decode()
    # the block is in the audit trail
    assert any(r["object_type"] == "otp_guard_block" for r in cli.json("audit", "list", "--object", "otp_guard_block"))

    # every output format lists it
    lines = cli("otp", "guard", "list", "Login", "-o", "jsonl").stdout.splitlines()
    assert [json.loads(x)["prefix"] for x in lines] == [PREFIX]
    for fmt, delim in (("csv", ","), ("tsv", "\t")):
        out = cli("otp", "guard", "list", "-o", fmt).stdout
        (row,) = list(csv.DictReader(io.StringIO(out), delimiter=delim))
        assert row["prefix"] == PREFIX and row["saved"] == "0.48" and row["refused"] == "6"
    assert PREFIX in cli("otp", "guard", "list", "-o", "table").stdout

    # unblock: sends go again (the sends before the unblock no longer count for the alarm)
    lifted = cli.json("otp", "guard", "unblock", "Login", PREFIX)
    assert lifted["state"] == "unblocked" and lifted["unblocked_at"]
    assert cli.json("otp", "guard", "list") == []
    assert [b["state"] for b in cli.json("otp", "guard", "list", "--all")] == ["unblocked"]
    send(api, key, PUMPED[20])
    assert "no blocked prefix" in cli("otp", "guard", "unblock", "Login", PREFIX, expect=3).stderr


def test_verified_codes_keep_a_prefix_open(api, cli, db_url):  # noqa: F811
    key = ready(cli, email=False)
    cli.json("otp", "guard", "set", "Login", "--min-sends", "5", "--min-conversion", "30%", "--grace", "0")
    ids = [send(api, key, n) for n in PUMPED[:5]]
    for rid in ids[:2]:  # two of five verified: 40 %, over the 30 % threshold
        r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": rid, "code": code_of(db_url, rid)})
        assert r.status_code == 200, r.text
    send(api, key, PUMPED[5])  # before it: 2 of 5 verified, 40 %
    send(api, key, PUMPED[6])  # 2 of 6, 33.3 %: still open
    assert_problem(post(api, key, PUMPED[7]), 403, "otp-prefix-blocked")  # 2 of 7, 28.6 % < 30 %
    (b,) = cli.json("otp", "guard", "list")
    assert (b["sends"], b["verified"], b["conversion"]) == (7, 2, "0.2857") and b["refused"] == 1


def test_fresh_codes_do_not_count_within_the_grace_and_client_side_never_blocks(api, cli, db_url):  # noqa: F811
    key = ready(cli, email=False)
    cli.json("otp", "guard", "set", "Login", "--min-sends", "3")  # default grace: 60 s
    for n in PUMPED[:6]:
        send(api, key, n)
    client = cli.json(
        "otp", "integration", "create", "-c", "Client A", "--name", "Shop", "-s", "ACME", "--text",
        "Code {{code}}", "--mode", "client",
    )["api_key"]  # fmt: skip
    assert cli.json("otp", "guard", "set", "Shop", "--min-sends", "2", "--grace", "0")["alarm"] is False
    for n in PUMPED[10:15]:
        r = api.post("/api/v1/2fa/send/sms", headers=basic(client), data={"number": n, "code": "4711"})
        assert r.status_code == 200, r.text
    assert cli.json("otp", "guard", "list") == [] and count(db_url, OtpGuardBlock) == 0


def test_hourly_limits_per_number_prefix_and_country_429(api, cli, db_url):  # noqa: F811
    key = ready(cli, email=False)
    cli.json("otp", "guard", "set", "Login", "--per-number-hour", "2", "--per-prefix-hour", "3",
             "--per-country-hour", "4")  # fmt: skip
    send(api, key, PUMPED[0])
    send(api, key, PUMPED[0])
    got = assert_problem(post(api, key, PUMPED[0]), 429, "otp-number-hour-limit")
    assert 3500 <= got["retryAfter"] <= 3600
    send(api, key, PUMPED[1])
    assert_problem(post(api, key, PUMPED[2]), 429, "otp-prefix-hour-limit")
    send(api, key, GENUINE)  # another prefix of Spain: the fourth code to ES
    assert_problem(post(api, key, "34600000002"), 429, "otp-country-hour-limit")
    send(api, key, "33612345678")  # France has its own count
    assert count(db_url, OtpRequest) == 5
    # the CLI's test send passes the same guard: exit 5 (a limit), its message on stderr
    run = cli("otp", "integration", "test", "Login", "--number", PUMPED[0], expect=5)
    assert "in the last hour" in run.stderr
    # 0 switches a limit off
    cli.json("otp", "guard", "set", "Login", "--per-country-hour", "0")
    send(api, key, "34600000002")


def test_the_number_limit_holds_with_the_prefix_limit_and_alarm_off(api, cli, db_url):  # noqa: F811
    """With no prefix figure needed the guard reads only the number's hour: same answer."""
    key = ready(cli, email=False)
    cli.json("otp", "guard", "set", "Login", "--per-number-hour", "2", "--per-prefix-hour", "0",
             "--min-conversion", "0")  # fmt: skip
    for number in PUMPED[:5]:  # one prefix, no prefix limit: all served
        send(api, key, number)
    send(api, key, PUMPED[0])
    got = assert_problem(post(api, key, PUMPED[0]), 429, "otp-number-hour-limit")
    assert 3500 <= got["retryAfter"] <= 3600 and count(db_url, OtpRequest) == 6


def test_country_allow_list_403_and_nothing_written(api, cli, db_url):  # noqa: F811
    key = ready(cli, email=False)
    got = cli.json("otp", "guard", "set", "Login", "--countries", "fr, es")
    assert got["countries"] == ["FR", "ES"]
    send(api, key, GENUINE)
    cli.json("otp", "guard", "set", "Login", "--countries", "FR")
    body = assert_problem(post(api, key, GENUINE), 403, "otp-country-not-allowed")
    assert body["country"] == "ES"
    assert "not allowed" in cli("otp", "integration", "test", "Login", "--number", GENUINE, expect=8).stderr
    send(api, key, "33612345678")
    assert count(db_url, OtpRequest) == 2
    assert cli.json("otp", "guard", "set", "Login", "--countries", "")["countries"] == []
    send(api, key, "34600000002")


def test_without_smtp_the_block_says_why_no_mail_went(api, cli, db_url, monkeypatch, caplog):  # noqa: F811
    monkeypatch.delenv("CPAAS_SMTP_HOST", raising=False)
    key = ready(cli)
    cli.json("otp", "guard", "set", "Login", "--min-sends", "2", "--grace", "0")
    send(api, key, PUMPED[0])
    send(api, key, PUMPED[1])
    with caplog.at_level(logging.WARNING, logger="cpaas.otp.guard"):
        assert_problem(post(api, key, PUMPED[2]), 403, "otp-prefix-blocked")
        (b,) = blocks_told(cli)
    assert b["notice"].startswith("not e-mailed: no SMTP server configured")
    assert any("not e-mailed" in r.getMessage() for r in caplog.records)


def test_guard_list_limit_says_when_it_cut(api, cli):  # noqa: F811
    key = ready(cli, email=False)
    cli.json("otp", "guard", "set", "Login", "--min-sends", "1", "--grace", "0")
    for first, second in ((PUMPED[0], PUMPED[1]), (GENUINE, "34600000002")):  # two prefixes, each blocked
        send(api, key, first)
        assert_problem(post(api, key, second), 403, "otp-prefix-blocked")
    assert [b["prefix"] for b in cli.json("otp", "guard", "list")] == ["34600000", PREFIX]  # newest first
    cut = cli("otp", "guard", "list", "--limit", "1", "-o", "json")
    assert [b["prefix"] for b in json.loads(cut.stdout)] == ["34600000"]
    assert cut.stderr.splitlines() == ["showing 1 of more than 1; use --limit N to see more"]
    assert cli("otp", "guard", "list", "--limit", "2", "-o", "json").stderr == ""


def test_settings_show_defaults_and_refuse_bad_values(cli):
    setup(cli, 9)
    integration(cli)
    shown = cli.json("otp", "guard", "show", "Login")
    assert shown == {
        "integration": "Login", "integration_id": shown["integration_id"], "per_number_hour": 10,
        "per_prefix_hour": 200, "per_country_hour": 0, "countries": [], "prefix_digits": 6, "min_sends": 20,
        "min_conversion": "0.2", "window_s": 3600, "grace_s": 60, "alarm": True,
    }  # fmt: skip
    base = ["otp", "guard", "set", "Login"]
    assert "--min-conversion" in cli(*base, "--min-conversion", "1.5", expect=4).stderr
    assert "--min-conversion" in cli(*base, "--min-conversion", "lots", expect=4).stderr
    assert "--countries" in cli(*base, "--countries", "ES,XX", expect=4).stderr
    assert "--prefix-digits" in cli(*base, "--prefix-digits", "0", expect=4).stderr
    assert "--alarm-window" in cli(*base, "--alarm-window", "10", expect=4).stderr
    assert cli.json("otp", "guard", "show", "Login")["min_conversion"] == "0.2"  # nothing changed
    cli("otp", "guard", "show", "Nope", expect=3)
    got = cli.json(*base, "--prefix-digits", "4", "--min-conversion", "0")
    assert got["prefix_digits"] == 4 and got["alarm"] is False and got["per_prefix_hour"] == 200
    assert cli.json("otp", "integration", "delete", "Login", "--yes")["deleted"] is True  # its settings go too
    cli("otp", "guard", "show", "Login", expect=3)


@pytest.mark.parametrize(
    ("number", "digits", "prefix"),
    [("34620000123", 6, "34620000"), ("12025550123", 6, "1202555"), ("3726123456", 3, "372612"),
     ("33612345678", 4, "336123")],
)  # fmt: skip
def test_a_prefix_is_the_calling_code_and_n_national_digits(number, digits, prefix):
    from cpaas_cli.otp.guard import prefix_of

    assert prefix_of(number, digits) == prefix
