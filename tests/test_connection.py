"""`cpaas connection …`: CRUD, password handling (never shown, masked in the audit), `connection test`."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.fernet import Fernet

from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port

SECRET = "s3cr3t!"
KEY = {"CPAAS_SECRET_KEY": Fernet.generate_key().decode()}  # typed passwords are stored encrypted with it


def add(cli, name="acme", *extra, **kw):
    return cli.json(
        "connection", "add-smpp", name, "--host", "127.0.0.1", "--port", "2775", "--system-id", "cpaas", *extra, **kw
    )


def test_add_with_password_env_show_list_update_disable(cli):
    row = add(cli, "acme", "--password-env", "ACME_PW", "--rps", "100", "--window", "50", "--system-type", "A2P")
    assert row["password"] is None and row["password_env"] == "ACME_PW"
    assert (row["kind"], row["bind"], row["rps"], row["window"], row["tls"]) == ("smpp", "trx", 100, 50, False)
    assert cli.json("connection", "show", "acme") == row
    listed = cli.json("connection", "list")
    assert [r["name"] for r in listed] == ["acme"]
    csv = cli("connection", "list", "-o", "csv").stdout.splitlines()
    assert csv[0].startswith("id,name,kind,host,port") and len(csv) == 2
    assert len(cli("connection", "list", "-o", "jsonl").jsonl) == 1
    upd = cli.json("connection", "update", "acme", "--bind", "tx", "--tls", "--no-rps-limit", "--port", "3550")
    assert (upd["bind"], upd["tls"], upd["rps"], upd["port"], upd["window"]) == ("tx", True, None, 3550, 50)
    assert cli.json("connection", "disable", "acme")["enabled"] is False
    assert cli.json("connection", "list", "--enabled") == []
    assert cli.json("connection", "enable", "acme")["enabled"] is True


def test_prompted_password_is_never_shown_or_audited(cli):
    run = cli(
        "connection",
        "add-smpp",
        "vend",
        "--host",
        "h",
        "--port",
        "2775",
        "--system-id",
        "x",
        "-o",
        "json",
        "--password-stdin",
        input=f"{SECRET}\n",
        env=KEY,
    )
    assert run.json["password"] == "***" and run.json["password_env"] is None
    assert SECRET not in run.stdout and SECRET not in run.stderr
    for args in (["connection", "show", "vend"], ["connection", "list"], ["audit", "list"]):
        out = cli(*args, "-o", "json")
        assert SECRET not in out.stdout and SECRET not in out.stderr
    audit = cli.json("audit", "list", "--object", "vendor_connection")
    assert audit[0]["action"] == "insert" and audit[0]["new"]["password"] == "***"
    # A new source replaces the old one, and the audit still only shows the mask.
    upd = cli.json("connection", "update", "vend", "--password-env", "VEND_PW")
    assert upd["password"] is None and upd["password_env"] == "VEND_PW"
    change = cli.json("audit", "list", "--object", "vendor_connection")[0]
    assert change["old"] == {"password": "***", "password_env": None}
    assert change["new"] == {"password": None, "password_env": "***"}
    again = cli(
        "connection", "update", "vend", "--new-password", "--password-stdin", "-o", "json", input="other1\n", env=KEY
    ).json
    assert again["password"] == "***" and again["password_env"] is None


def test_bad_input_is_refused_and_nothing_written(cli, tmp_path):
    r = cli("connection", "add-smpp", "x", "--host", "h", "--password-env", "V", expect=4)
    assert "--port" in r.stderr and "--system-id" in r.stderr
    cli(
        "connection",
        "add-smpp",
        "x",
        "--host",
        "h",
        "--port",
        "70000",
        "--system-id",
        "s",
        "--password-env",
        "V",
        expect=4,
    )
    cli(
        "connection",
        "add-smpp",
        "x",
        "--host",
        "h",
        "--port",
        "1",
        "--system-id",
        "s",
        "--password-env",
        "1BAD",
        expect=4,
    )
    bad_map = tmp_path / "map.json"
    bad_map.write_text(json.dumps({"stat": {"DELIVRD": "done"}}))
    r = cli(
        "connection",
        "add-smpp",
        "x",
        "--host",
        "h",
        "--port",
        "1",
        "--system-id",
        "s",
        "--password-env",
        "V",
        "--status-map",
        str(bad_map),
        expect=4,
    )
    assert "DELIVRD" in r.stderr
    assert cli.json("connection", "list") == []
    add(cli, "dup", "--password-env", "V")
    cli(
        "connection",
        "add-smpp",
        "dup",
        "--host",
        "h",
        "--port",
        "1",
        "--system-id",
        "s",
        "--password-env",
        "V",
        expect=5,
    )
    cli("connection", "show", "nope", expect=3)


def test_status_map_file_is_stored(cli, tmp_path):
    f = tmp_path / "map.yaml"
    f.write_text("stat:\n  DELETED: expired\nerr:\n  '034': rejected\n")
    row = add(cli, "mapped", "--password-env", "V", "--status-map", str(f), "--message-id-format", "hex:dec")
    assert row["status_map"] == {"stat": {"DELETED": "expired"}, "err": {"34": "rejected"}}
    assert row["message_id_format"] == "hex:dec"


@pytest.fixture
def sim():
    s = SimSmsc(SmscOptions(port=free_port(), lifetime=60))
    s.start()
    yield s
    s.stop()


def test_connection_test_binds_and_reports_round_trip(cli, sim):
    cli.json(
        "connection",
        "add-smpp",
        "sim",
        "--host",
        "127.0.0.1",
        "--port",
        str(sim.port),
        "--system-id",
        "cpaas",
        "--password-env",
        "SIM_PW",
    )
    result = cli.json("connection", "test", "sim", env={"SIM_PW": "pw"})
    assert result["ok"] is True and result["bind_ms"] > 0 and result["enquire_link_ms"] > 0
    # The simulator counts the bind on its own thread: give it a moment under load.
    deadline = time.monotonic() + 10
    while sim.counters.binds < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.counters.binds == 1


def test_connection_test_fails_with_exit_6_when_nothing_listens(cli):
    port = free_port()
    cli(
        "connection",
        "add-smpp",
        "dead",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--system-id",
        "cpaas",
        "-o",
        "json",
        "--password-stdin",
        input="pw\n",
        env=KEY,
    )
    r = cli("connection", "test", "dead", "--timeout", "2", expect=6, env=KEY)
    assert f"cannot bind to 127.0.0.1:{port}" in r.stderr and r.stdout == ""


def test_connection_test_without_the_password_variable_is_invalid_input(cli):
    add(cli, "envless", "--password-env", "CPAAS_TEST_SURELY_UNSET")
    r = cli("connection", "test", "envless", env={"CPAAS_TEST_SURELY_UNSET": None}, expect=4)
    assert "CPAAS_TEST_SURELY_UNSET is not set" in r.stderr


def test_after_crash_is_stored_shown_and_changed(cli):
    row = add(cli, "acme", "--password-env", "ACME_PW")
    assert row["after_crash"] == "resend"  # at least once unless told otherwise
    assert add(cli, "promo", "--password-env", "P", "--after-crash", "hold")["after_crash"] == "hold"
    assert cli.json("connection", "update", "acme", "--after-crash", "hold")["after_crash"] == "hold"
    assert cli.json("connection", "show", "acme")["after_crash"] == "hold"
    assert cli.json("connection", "update", "acme", "--window", "5")["after_crash"] == "hold"  # kept
    r = cli("connection", "update", "acme", "--after-crash", "drop", expect=2)
    assert "--after-crash" in r.stderr
    assert cli.json("connection", "show", "acme")["after_crash"] == "hold"
