"""API keys (SPEC USR-08/09, AMB-21): shown once, stored hashed, prefix lookup,
regenerate / expire / revoke, last use batched, and a cache that a revoke in
another process invalidates within a second."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from cpaas_cli import clock
from cpaas_cli.db.engine import get_engine
from cpaas_cli.errors import Denied
from cpaas_cli.identity import apikeys, keys
from tests.helpers import client, owner_le
from tests.identity_helpers import identity_env, make_user  # noqa: F401


def verify(cli, key: str, *args: str, expect: int = 0):
    return cli("apikey", "verify", *args, "-o", "json", input=key + "\n", expect=expect)


def test_create_shows_the_key_once_and_stores_a_hash(cli, db_url):
    make_user(cli, "alice")
    out = cli.json("apikey", "create", "--user", "alice", "--name", "ci", "--expires", "30d")
    key = out["key"]
    assert key.startswith(f"cpk_{out['prefix']}_") and out["status"] == "active"
    assert verify(cli, key).json["user"] == "alice"
    listed = cli("apikey", "list", "-o", "json").stdout
    audit = cli("audit", "list", "-o", "json").stdout
    secret = key.split("_", 2)[2]
    assert secret not in listed and secret not in audit
    import sqlalchemy as sa

    with get_engine(db_url).connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(sa.text("SELECT * FROM api_key")))
    assert secret not in dump
    assert cli.json("apikey", "list")[0]["last_used_at"] is not None  # recorded (batched, at close)


def test_name_unique_per_user(cli):
    make_user(cli, "alice")
    make_user(cli, "bobby")
    cli.json("apikey", "create", "--user", "alice", "--name", "ci")
    assert "already has" in cli("apikey", "create", "--user", "alice", "--name", "ci", expect=5).stderr
    cli.json("apikey", "create", "--user", "bobby", "--name", "ci")
    assert cli("apikey", "create", "--user", "alice", "--name", "x" * 61, expect=4)


def test_regenerate_expire_revoke(cli):
    make_user(cli, "alice")
    old = cli.json("apikey", "create", "--user", "alice", "--name", "ci")["key"]
    new = cli.json("apikey", "regenerate", "ci", "--user", "alice")["key"]
    assert new != old
    assert "refused" in verify(cli, old, expect=8).stderr
    verify(cli, new)
    assert cli.json("apikey", "expire", "ci", "--user", "alice")["status"] == "expired"
    assert "expired" in verify(cli, new, expect=8).stderr
    assert cli.json("apikey", "expire", "ci", "--user", "alice", "--at", "2099-01-01")["status"] == "active"
    verify(cli, new)
    assert cli.json("apikey", "revoke", "ci", "--user", "alice")["status"] == "revoked"
    assert "revoked" in verify(cli, new, expect=8).stderr
    cli("apikey", "regenerate", "ci", "--user", "alice", expect=5)
    rows = cli.json("audit", "list", "--action", "apikey_refused")
    assert {r["new"]["reason"] for r in rows} >= {"unknown key", "expired key", "revoked key"}


def test_expiry_choices(cli):
    make_user(cli, "alice")
    out = cli.json("apikey", "create", "--user", "alice", "--name", "d1", "--expires", "1d")
    assert out["expires_at"] is not None
    assert cli.json("apikey", "create", "--user", "alice", "--name", "nv", "--expires", "never")["expires_at"] is None
    assert (
        "past" in cli("apikey", "create", "--user", "alice", "--name", "p", "--expires", "2001-01-01", expect=4).stderr
    )


def test_disabled_user_and_blocked_company(cli):
    owner_le(cli)
    c = client(cli, "Acme")
    make_user(cli, "pa", str(c["id"]), department="Admin")
    key = cli.json("apikey", "create", "--user", "pa", "--name", "k")["key"]
    verify(cli, key, "--permission", "campaign.send", "--company", "Acme")
    assert "not permitted" in verify(cli, key, "--permission", "campaign.send", "--company", "1", expect=8).stderr
    cli.json("tenant", "disable", "Acme")
    assert "blocked" in verify(cli, key, expect=8).stderr
    cli.json("tenant", "enable", "Acme")
    cli.json("user", "disable", "pa")
    assert "disabled" in verify(cli, key, expect=8).stderr


def test_scopes_limit_the_key(cli):
    make_user(cli, "alice")
    key = cli.json("apikey", "create", "--user", "alice", "--name", "k", "--scope", "campaign")["key"]
    verify(cli, key, "--permission", "campaign.send")
    verify(cli, key, "--permission", "payment.add", expect=8)
    assert cli("apikey", "create", "--user", "alice", "--name", "b", "--scope", "nothing", expect=4)


def test_malformed_unknown_and_wrong_secret(cli):
    make_user(cli, "alice")
    key = cli.json("apikey", "create", "--user", "alice", "--name", "k")["key"]
    assert "wrong secret" in verify(cli, key[:-4] + "AAAA", expect=8).stderr
    assert "malformed" in verify(cli, "not-a-key", expect=8).stderr
    assert "unknown" in verify(cli, "cpk_abcdefgh_" + "x" * 43, expect=8).stderr


def test_cache_sees_a_revoke_in_another_process_within_a_second(cli, db_url, identity_env):  # noqa: F811
    make_user(cli, "alice")
    key = cli.json("apikey", "create", "--user", "alice", "--name", "k")["key"]
    auth = apikeys.Authenticator(get_engine(db_url), keys.from_texts([identity_env]))
    assert auth.authenticate(key, "campaign.send", 1).login == "alice"
    run = subprocess.run(
        [sys.executable, "-m", "cpaas_cli", "--db", db_url, "apikey", "revoke", "k", "--user", "alice"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert run.returncode == 0, run.stderr
    time.sleep(1.05)
    with pytest.raises(Denied, match="revoked"):
        auth.authenticate(key)
    auth.close()


def test_cache_checks_expiry_against_the_clock(cli, db_url, identity_env):  # noqa: F811
    make_user(cli, "alice")
    key = cli.json("apikey", "create", "--user", "alice", "--name", "k", "--expires", "1d")["key"]
    auth = apikeys.Authenticator(get_engine(db_url), keys.from_texts([identity_env]))
    auth.authenticate(key)
    base = clock.now()
    clock.set_clock(lambda: base + timedelta(days=2))
    try:
        with pytest.raises(Denied, match="expired"):
            auth.authenticate(key)
    finally:
        clock.set_clock(None)
    auth.close()


def test_last_use_is_batched(cli, db_url, identity_env):  # noqa: F811
    make_user(cli, "alice")
    key = cli.json("apikey", "create", "--user", "alice", "--name", "k")["key"]
    auth = apikeys.Authenticator(get_engine(db_url), keys.from_texts([identity_env]), flush_s=3600)
    for _ in range(50):
        auth.authenticate(key)
    assert cli.json("apikey", "list")[0]["last_used_at"] is None  # not one write per check
    assert auth.flush() == 1
    assert cli.json("apikey", "list")[0]["last_used_at"] is not None


def test_fresh_process_company_block_stops_the_key(cli, db_url):
    """Tenancy blocks, identity refuses: checked in new processes (nothing imported before)."""
    owner_le(cli)
    client(cli, "Acme")
    make_user(cli, "pa", "Acme", department="Admin")
    key = cli.json("apikey", "create", "--user", "pa", "--name", "k")["key"]

    def fresh(*args, stdin=""):
        return subprocess.run(
            [sys.executable, "-m", "cpaas_cli", "--db", db_url, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )

    assert fresh("apikey", "verify", "-o", "json", stdin=key + "\n").returncode == 0
    assert fresh("tenant", "disable", "Acme").returncode == 0
    run = fresh("apikey", "verify", stdin=key + "\n")
    assert run.returncode == 8 and "blocked" in run.stderr and key not in run.stderr + run.stdout
