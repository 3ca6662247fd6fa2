"""Sign-in (SPEC USR-04/05/11): forced first change, lock-out with a growing
delay, TOTP with recovery codes, SMS codes through a one-recipient campaign,
company-level 2FA, session tokens (refresh, logout, phone change), and no
secret in output, audit or the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.campaigns import OutboundMessage
from tests.helpers import client, owner_le
from tests.identity_helpers import PASSWORD, identity_env, make_user, ready_user  # noqa: F401

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def pinned():
    c = Clock()
    clock.set_clock(c)
    yield c
    clock.set_clock(None)


def login(cli, user, password, *args, expect=0):
    return cli("user", "login", user, "--password-stdin", *args, "-o", "json", input=password + "\n", expect=expect)


def test_first_login_needs_a_change_then_tokens(cli, pinned):
    make_user(cli, "alice")
    assert "must be changed" in login(cli, "alice", PASSWORD, expect=8).stderr
    cli.json("user", "set-password", "alice", "--own", "--password-stdin", input=f"{PASSWORD}\nNew-pass-42\n")
    out = login(cli, "alice", "New-pass-42").json
    assert out["access_token"] and out["refresh_token"]
    me = cli.json("user", "whoami", input=out["access_token"] + "\n")
    assert me["user"] == "alice"
    assert cli.json("user", "show", "alice")["last_login_at"] is not None
    # refresh spends the refresh token
    again = cli.json("user", "refresh", input=out["refresh_token"] + "\n")
    assert again["access_token"] != out["access_token"]
    cli("user", "refresh", "-o", "json", input=out["refresh_token"] + "\n", expect=8)
    # the access token expires after 15 minutes
    pinned.now = NOW + timedelta(minutes=16)
    assert "expired" in cli("user", "whoami", input=again["access_token"] + "\n", expect=8).stderr
    # logout ends every session
    pinned.now = NOW
    cli.json("user", "logout", "alice")
    assert "ended" in cli("user", "whoami", input=again["access_token"] + "\n", expect=8).stderr
    cli("user", "refresh", input=again["refresh_token"] + "\n", expect=8)


def test_login_audit_actor_is_the_user_and_no_secret_anywhere(cli, db_url, pinned):
    pw = ready_user(cli, "alice")
    out = login(cli, "alice", pw).json
    login(cli, "alice", "Wrong-pass-1", expect=8)
    login(cli, "nobody", "Wrong-pass-1", expect=8)
    audit = cli("audit", "list", "--limit", "1000", "-o", "json")
    rows = audit.json
    assert any(r["action"] == "login" and r["actor"] == "user:alice" for r in rows)
    failed = [r for r in rows if r["action"] == "login_failed"]
    assert {r["new"]["reason"] for r in failed} == {"bad password", "unknown login"}
    text = audit.stdout
    with get_engine(db_url).connect() as conn:
        dump = " ".join(
            str(row)
            for t in ("app_user", "password_history", "user_token", "audit_log")
            for row in conn.execute(sa.text(f"SELECT * FROM {t}"))
        )
    for secret in (pw, PASSWORD, "Wrong-pass-1", out["access_token"], out["refresh_token"]):
        assert secret not in text and secret not in dump
    assert "Wrong-pass-1" not in login(cli, "alice", "Wrong-pass-1", expect=8).stderr


def test_lock_out_grows_and_is_recorded(cli, pinned):
    pw = ready_user(cli, "alice")
    for _ in range(4):
        assert "wrong login or password" in login(cli, "alice", "Bad-pass-000", expect=8).stderr
    login(cli, "alice", "Bad-pass-000", expect=8)  # the 5th failure locks for a minute
    assert "locked" in login(cli, "alice", pw, expect=8).stderr
    locked = cli.json("audit", "list", "--action", "locked")
    assert locked[0]["new"]["locked_for_s"] == 60
    pinned.now = NOW + timedelta(seconds=61)
    login(cli, "alice", "Bad-pass-000", expect=8)  # the 6th: two minutes
    assert cli.json("audit", "list", "--action", "locked")[0]["new"]["locked_for_s"] == 120
    pinned.now = NOW + timedelta(seconds=61 + 121)
    login(cli, "alice", pw)  # the lock has passed; success resets the count
    assert cli.json("user", "show", "alice")["locked_until"] is None


def test_totp_enrol_confirm_login_no_reuse_and_recovery(cli, pinned):
    pw = ready_user(cli, "alice")
    enrol = cli("user", "totp-enrol", "alice", "-o", "json")
    data = enrol.json
    assert data["provisioning_uri"].startswith("otpauth://totp/cpaas:alice")
    assert "█" in enrol.stderr or "▀" in enrol.stderr  # the QR code on the terminal
    totp = pyotp.TOTP(data["secret"])
    assert cli("user", "totp-confirm", "alice", "--code", "000000", expect=4)
    codes = cli.json("user", "totp-confirm", "alice", "--code", totp.at(NOW))["recovery_codes"]
    assert len(codes) == 10
    pinned.now = NOW + timedelta(seconds=60)
    first = login(cli, "alice", pw).json
    assert first["second_factor"] == "totp" and "access_token" not in first
    code = totp.at(pinned.now - timedelta(seconds=30))  # one step behind: inside the window
    assert login(cli, "alice", pw, "--code", code).json["access_token"]
    assert "already used" in login(cli, "alice", pw, "--code", code, expect=8).stderr
    assert login(cli, "alice", pw, "--code", totp.at(pinned.now - timedelta(seconds=90)), expect=8)
    pinned.now += timedelta(minutes=5)  # the failures above locked nothing yet (2 < 5)
    assert login(cli, "alice", pw, "--code", codes[0]).json["access_token"]
    login(cli, "alice", pw, "--code", codes[0], expect=8)  # a recovery code works once
    audit = cli("audit", "list", "--limit", "1000", "-o", "json").stdout
    assert data["secret"] not in audit and codes[1] not in audit


def sms_setup(cli, tmp_path):
    from tests.test_campaigns import setup

    setup(cli)
    cli.json("otp", "integration", "create", "-c", "Client A", "--name", "Sign-in", "-s", "ACME",
             "--text", "Your sign-in code is {{code}}")  # fmt: skip
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text('[identity]\nsms_integration = "Sign-in"\n')
    return str(cfg)


def test_sms_code_goes_through_the_campaign_queue(cli, db_url, tmp_path, pinned):
    cfg = sms_setup(cli, tmp_path)
    pw = ready_user(cli, "alice", phone="+34620111222")
    cli.json("user", "two-factor", "alice", "sms")
    out = cli("--config", cfg, "user", "login", "alice", "--password-stdin", "-o", "json", input=pw + "\n").json
    assert out == {"login": "alice", "second_factor": "sms", "code_sent": True}
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        (msg,) = conn.execute(sa.select(t.c.phone, t.c.text, t.c.state)).all()
        tokens = " ".join(str(r) for r in conn.execute(sa.text("SELECT token_hash FROM user_token")))
    assert msg.phone == "34620111222" and msg.state == "queued"
    code = msg.text.split("code is ")[1][:6]
    assert code not in tokens
    login(cli, "alice", pw, "--code", "000000" if code != "000000" else "111111", expect=8)
    assert login(cli, "alice", pw, "--code", code).json["access_token"]
    login(cli, "alice", pw, "--code", code, expect=8)  # spent
    with get_engine(db_url).connect() as conn:  # the 2FA service's request, verified once (USR-05, OTP-07)
        (req,) = conn.execute(sa.text("SELECT number, state, checks, code_hash FROM otp_request")).all()
    assert (req.number, req.state, req.checks) == ("34620111222", "verified", 1) and code not in req.code_hash
    pinned.now = NOW + timedelta(minutes=6)


def test_sms_code_needs_a_platform_side_2fa_integration(cli, tmp_path, pinned):
    sms_setup(cli, tmp_path)
    pw = ready_user(cli, "alice", phone="+34620111222")
    cli.json("user", "two-factor", "alice", "sms")
    old = tmp_path / "old.toml"
    old.write_text('[identity]\nsms_company = "Client A"\nsms_sender = "ACME"\n')
    run = cli("--config", str(old), "user", "login", "alice", "--password-stdin", input=pw + "\n", expect=5)
    assert "[identity] sms_integration" in run.stderr and "no longer read" in run.stderr
    cli.json("otp", "integration", "create", "-c", "Client A", "--name", "Theirs", "-s", "ACME", "--mode", "client",
             "--text", "Code {{code}}")  # fmt: skip
    client_side = tmp_path / "client.toml"
    client_side.write_text('[identity]\nsms_integration = "Theirs"\n')
    run = cli("--config", str(client_side), "user", "login", "alice", "--password-stdin", input=pw + "\n", expect=5)
    assert "client-side" in run.stderr


def test_company_requires_2fa(cli, tmp_path, pinned):
    owner_le(cli)
    c = client(cli, "Acme")
    pw = ready_user(cli, "pa", str(c["id"]), department="Admin")
    cli.json("user", "require-2fa", "Acme")
    assert "no phone number" in login(cli, "pa", pw, expect=8).stderr
    cli.json("user", "require-2fa", "Acme", "--off")
    assert login(cli, "pa", pw).json["access_token"]


def test_phone_change_ends_sessions(cli, pinned):
    pw = ready_user(cli, "alice", phone="+34620111222")
    tok = login(cli, "alice", pw).json["access_token"]
    cli.json("user", "whoami", input=tok + "\n")
    run = cli("user", "update", "alice", "--phone", "+34620111333", "-o", "json")
    assert "every session" in run.stderr
    cli("user", "whoami", input=tok + "\n", expect=8)


def test_disabled_user_and_blocked_company_cannot_sign_in(cli, pinned):
    owner_le(cli)
    c = client(cli, "Acme")
    pw = ready_user(cli, "pa", str(c["id"]), department="Admin")
    tok = login(cli, "pa", pw).json["access_token"]
    cli.json("tenant", "disable", "Acme")
    assert "blocked" in login(cli, "pa", pw, expect=8).stderr
    assert "blocked" in cli("user", "whoami", input=tok + "\n", expect=8).stderr
    cli.json("tenant", "enable", "Acme")
    cli.json("user", "disable", "pa")
    assert "disabled" in login(cli, "pa", pw, expect=8).stderr


def test_inactive_for_180_days_is_blocked_except_admins(cli, pinned):
    pw = ready_user(cli, "noc", role="NOC engineer")
    apw = ready_user(cli, "boss", role="Admin")
    login(cli, "noc", pw)
    login(cli, "boss", apw)
    pinned.now = NOW + timedelta(days=181)
    assert "180 days" in login(cli, "noc", pw, expect=8).stderr
    # the administrator is not blocked (its 60-day-old password must be changed, that is all)
    assert "must be changed" in login(cli, "boss", apw, expect=8).stderr
    cli.json("user", "disable", "noc")
    cli.json("user", "enable", "noc")  # an administrator enables it again
    assert "must be changed" in login(cli, "noc", pw, expect=8).stderr


def test_sms_sign_in_code_goes_through_the_2fa_service_in_a_fresh_process(cli, db_url, tmp_path, pinned):
    """identity → otp → sending crosses packages: a fresh `cpaas` process (nothing imported
    beforehand) sends the code through the integration and checks it there."""
    import json
    import os
    import subprocess
    import sys

    cfg = sms_setup(cli, tmp_path)
    pw = ready_user(cli, "alice", phone="+34620111222")
    cli.json("user", "two-factor", "alice", "sms")
    env = {**os.environ, "CPAAS_NOW": NOW.isoformat()}

    def fresh(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "cpaas_cli", "--config", cfg, "--db", db_url, "user", "login", "alice",
               "--password-stdin", *args, "-o", "json"]  # fmt: skip
        return subprocess.run(cmd, input=pw + "\n", capture_output=True, text=True, env=env, timeout=60)

    first = fresh()
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"login": "alice", "second_factor": "sms", "code_sent": True}
    with get_engine(db_url).connect() as conn:
        (text,) = conn.execute(sa.select(OutboundMessage.__table__.c.text)).scalars().all()
        (state,) = conn.execute(sa.text("SELECT state FROM otp_request")).scalars().all()
    assert text.startswith("Your sign-in code is ") and state == "pending"
    second = fresh("--code", text.rsplit(" ", 1)[1])
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["access_token"]
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.text("SELECT state FROM otp_request")).scalar() == "verified"
