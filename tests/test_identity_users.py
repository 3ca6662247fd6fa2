"""Users, departments, roles and the password policy (SPEC USR-01..04, USR-07)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cpaas_cli import clock
from cpaas_cli.db import migrate
from cpaas_cli.db.engine import get_engine
from tests.conftest import Cli
from tests.helpers import client, owner_le
from tests.identity_helpers import PASSWORD, identity_env, make_user, ready_user  # noqa: F401
from tests.smtp import smtp_server  # noqa: F401


def test_create_backoffice_and_portal_users(cli):
    owner_le(cli)
    c = client(cli, "Acme")
    bo = make_user(cli, "alice", email="alice@hub.example", phone="+34 600 000 001", timezone="Europe/Madrid")
    assert bo["kind"] == "backoffice" and bo["roles"] == ["Admin"] and bo["phone"] == "34600000001"
    assert bo["must_change_password"] is True and bo["department"] is None
    pu = make_user(cli, "carol", str(c["id"]), role="Broadcast manager", department="First line support")
    assert pu["kind"] == "portal" and pu["department"] == "First line support"
    new_dep = make_user(cli, "dave", str(c["id"]), role=None, department="Night shift")
    assert new_dep["department"] == "Night shift"  # typing a new name creates the department
    listed = cli.json("user", "list", "--company", str(c["id"]))
    assert [u["login"] for u in listed] == ["carol", "dave"]
    assert cli.json("user", "show", "alice")["email"] == "alice@hub.example"


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        ({"phone": "12"}, "phone"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "not-an-address"}, "email"),
        ({"role": "No such role"}, "role"),
        ({"role": "Broadcast manager"}, "role"),  # a portal role for a BackOffice user
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(cli, opts, field):
    args = ["user", "create", "bob", "--company", "1", "--first-name", "Bob", "--last-name", "B"]
    for key, value in opts.items():
        args += [f"--{key}", value]
    run = cli(*args, "--password-stdin", input=PASSWORD + "\n", expect=4)
    assert field in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert cli.json("user", "list") == []


def test_long_name_and_duplicate_login(cli):
    run = cli(
        "user",
        "create",
        "bob",
        "--company",
        "1",
        "--first-name",
        "x" * 61,
        "--last-name",
        "B",
        "--password-stdin",
        input=PASSWORD + "\n",
        expect=4,
    )
    assert "first_name" in run.stderr
    make_user(cli, "bob")
    run = cli(
        "user",
        "create",
        "bob",
        "--company",
        "1",
        "--first-name",
        "B",
        "--last-name",
        "B",
        "--password-stdin",
        input=PASSWORD + "\n",
        expect=5,
    )
    assert "already exists" in run.stderr


def test_portal_user_needs_department_and_backoffice_has_none(cli):
    owner_le(cli)
    c = client(cli, "Acme")
    run = cli(
        "user",
        "create",
        "p1",
        "--company",
        str(c["id"]),
        "--first-name",
        "P",
        "--last-name",
        "Q",
        "--password-stdin",
        input=PASSWORD + "\n",
        expect=4,
    )
    assert "department" in run.stderr
    run = cli(
        "user",
        "create",
        "b1",
        "--company",
        "1",
        "--first-name",
        "P",
        "--last-name",
        "Q",
        "--department",
        "Admin",
        "--password-stdin",
        input=PASSWORD + "\n",
        expect=4,
    )
    assert "department" in run.stderr


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Ab1!", "shorter than 8"),
        ("abcdefgh1", "2 of the 4"),
        ("ABCDEFGHIJ", "1 of the 4"),
    ],
)
def test_weak_password_names_the_rule(cli, password, rule):
    run = cli(
        "user",
        "create",
        "bob",
        "--company",
        "1",
        "--first-name",
        "B",
        "--last-name",
        "B",
        "--password-stdin",
        input=password + "\n",
        expect=4,
    )
    assert rule in run.stderr
    assert cli.json("user", "list") == []


def test_password_history_interval_and_age(cli):
    make_user(cli, "alice")
    # first own change is allowed at once (forced change), then not again within 24 h
    cli.json("user", "set-password", "alice", "--own", "--password-stdin", input=f"{PASSWORD}\nSecond-pass2\n")
    run = cli(
        "user", "set-password", "alice", "--own", "--password-stdin", input="Second-pass2\nThird-pass3\n", expect=5
    )
    assert "24 hours" in run.stderr
    # an operator may; the last 7 passwords are refused
    run = cli("user", "set-password", "alice", "--password-stdin", input=f"{PASSWORD}\n", expect=4)
    assert "last 7" in run.stderr
    for n in range(7):
        cli.json("user", "set-password", "alice", "--password-stdin", input=f"Rotate-pass{n}\n")
    cli.json("user", "set-password", "alice", "--password-stdin", input=f"{PASSWORD}\n")  # 8 back: allowed again
    # 60 days old: a forced change
    base = clock.now()
    try:
        clock.set_clock(lambda: base + timedelta(days=61))
        shown = cli.json("user", "show", "alice")
    finally:
        clock.set_clock(None)
    assert shown["must_change_password"] is True


def test_generate_password_is_strong_and_set(cli):
    make_user(cli, "alice")
    out = cli.json("user", "generate-password", "alice")
    pw = out["password"]
    assert len(pw) == 16 and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw)
    assert cli.json("user", "show", "alice")["must_change_password"] is True
    cli.json("user", "set-password", "alice", "--own", "--password-stdin", input=f"{pw}\nAfter-gen9\n")


def test_password_never_on_the_command_line(cli):
    run = cli(
        "user",
        "create",
        "bob",
        "--company",
        "1",
        "--first-name",
        "B",
        "--last-name",
        "B",
        "--password",
        PASSWORD,
        expect=2,
    )
    assert "--password" in run.stderr


def test_user_cannot_disable_or_delete_itself(cli):
    make_user(cli, "tester")  # the fixture's --actor is "tester"
    assert "itself" in cli("user", "disable", "tester", expect=5).stderr
    assert "itself" in cli("user", "delete", "tester", expect=5).stderr
    make_user(cli, "other")
    assert cli.json("user", "disable", "other")["enabled"] is False
    assert cli.json("user", "enable", "other")["enabled"] is True
    assert cli.json("user", "delete", "other")["deleted"] == "other"
    cli("user", "show", "other", expect=3)


def test_roles_system_custom_grant_revoke(cli):
    owner_le(cli)
    c = client(cli, "Acme")
    listed = cli.json("role", "list")
    names = {(r["side"], r["name"]) for r in listed if r["system"]}
    assert {
        ("backoffice", n) for n in ("Admin", "Client manager", "Finance manager", "NOC engineer", "Rate manager")
    } <= names
    assert {("portal", n) for n in ("Admin", "Broadcast manager", "Finance manager", "NOC engineer")} <= names
    run = cli("role", "update", "Rate manager", "--allow", "edr=view", expect=5)
    assert "system role" in run.stderr
    role = cli.json(
        "role",
        "create",
        "Auditor",
        "--side",
        "backoffice",
        "--template",
        "Rate manager",
        "--permission",
        "audit=view",
        "--permission",
        "rates=none",
    )
    assert role["permissions"]["audit"] == "view" and "rates" not in role["permissions"]
    assert "service" in role["permissions"]  # from the template
    assert cli("role", "create", "X" * 41, "--side", "backoffice", "--permission", "audit=view", expect=4)
    assert (
        "not a backoffice area"
        in cli("role", "create", "Bad", "--side", "backoffice", "--permission", "dashboard=view", expect=4).stderr
    )
    make_user(cli, "bob", role=None)
    make_user(cli, "pat", str(c["id"]), role=None, department="Admin")
    assert cli.json("role", "grant", "Auditor", "--user", "bob")["roles"] == ["Auditor"]
    run = cli("role", "grant", "Broadcast manager", "--user", "bob", expect=4)
    assert "portal role" in run.stderr and "backoffice user" in run.stderr
    assert cli.json("role", "grant", "Admin", "--user", "pat")["roles"] == ["Admin"]  # the portal Admin
    assert cli.json("role", "show", "Auditor")["users"] == 1
    assert cli.json("role", "revoke", "Auditor", "--user", "bob")["roles"] == []


def test_invite_emails_a_token_and_activation(cli, smtp_server):  # noqa: F811
    out = cli.json(
        "user",
        "invite",
        "ivy",
        "--company",
        "1",
        "--first-name",
        "Ivy",
        "--last-name",
        "I",
        "--email",
        "ivy@hub.example",
        "--role",
        "NOC engineer",
    )
    assert out["enabled"] is False and out["activation_emailed"] is True and "activation_token" not in out
    (msg,) = smtp_server.messages
    assert msg["To"] == "ivy@hub.example"
    body = msg.get_payload(decode=True).decode()
    token = body.split("cpaas user activate ", 1)[1].split()[0]
    run = cli("user", "activate", "wrong-token", "--password-stdin", input="Green-pass-123\n", expect=8)
    assert "unknown" in run.stderr
    active = cli.json("user", "activate", token, "--password-stdin", input="Green-pass-123\n")
    assert active["enabled"] is True
    cli("user", "activate", token, "--password-stdin", input="Green-pass-456\n", expect=8)  # once only
    # the token is in no audit row
    assert token not in cli("audit", "list", "-o", "json").stdout


def test_invite_without_email_shows_the_token_once(cli):
    out = cli.json("user", "invite", "joe", "--company", "1", "--first-name", "J", "--last-name", "O")
    assert out["activation_emailed"] is False and out["activation_token"]
    assert out["activation_token"] not in cli("audit", "list", "-o", "json").stdout
    assert out["activation_token"] not in cli("user", "show", "joe", "-o", "json").stdout


def test_migration_0025_up_and_down(empty_db_url):
    migrate.upgrade(empty_db_url, "0024")
    migrate.upgrade(empty_db_url, "0025")
    import sqlalchemy as sa

    with get_engine(empty_db_url).connect() as conn:
        names = sa.inspect(conn).get_table_names()
        assert {"app_user", "role", "api_key", "user_token", "identity_generation"} <= set(names)
        assert conn.execute(sa.text("SELECT count(*) FROM role WHERE system")).scalar() == 9
    migrate.downgrade(empty_db_url, "0024")
    with get_engine(empty_db_url).connect() as conn:
        assert "app_user" not in sa.inspect(conn).get_table_names()
    migrate.upgrade(empty_db_url, "head")
    Cli(empty_db_url).json("role", "list")
