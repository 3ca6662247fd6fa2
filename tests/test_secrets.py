"""Secrets at rest: a password typed at the prompt is stored only as a Fernet
token made with a key kept outside the database; it still binds (`connection
test`, `serve`) against an SMSC that checks it; `secrets rotate` moves it to a
new key; a wrong or missing key fails in one line naming the connection;
migration 0024 encrypts the clear-text passwords stored before it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from cpaas_cli.db.engine import dispose_all, get_engine
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from tests.conftest import Cli

SECRET = "pw9Xq!"  # at most 8 characters (SMPP 3.4)


def new_key() -> str:
    return Fernet.generate_key().decode()


def key_env(key: str) -> dict:
    return {"CPAAS_SECRET_KEY": key}


def key_file(path: Path, *keys: str) -> Path:
    path.write_text("# test keys\n" + "".join(k + "\n" for k in keys))
    path.chmod(0o600)
    return path


def add_prompted(cli, name: str, port: int, *, env: dict | None, expect: int = 0, secret: str = SECRET):
    return cli(
        "connection", "add-smpp", name, "--host", "127.0.0.1", "--port", str(port), "--system-id", "cpaas",
        "-o", "json", "--password-stdin", input=f"{secret}\n", env=env, expect=expect,
    )  # fmt: skip


def stored(db_url: str) -> dict[str, str | None]:
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT name, password FROM vendor_connection ORDER BY id")).all()
    return dict(rows)


@pytest.fixture
def smsc():
    """The project's SMSC, refusing any bind whose password is not SECRET."""
    sim = SimSmsc(SmscOptions(port=free_port(), lifetime=120, password=SECRET))
    sim.start()
    yield sim
    sim.stop()


def test_a_typed_password_is_stored_encrypted_and_still_binds(cli, db_url, smsc):
    key = new_key()
    run = add_prompted(cli, "vend", smsc.port, env=key_env(key))
    assert run.json["password"] == "***" and run.json["password_env"] is None
    token = stored(db_url)["vend"]
    assert token is not None and SECRET not in token and token.startswith("gAAAAA")
    assert Fernet(key.encode()).decrypt(token.encode()).decode() == SECRET  # only with the key
    assert key not in run.stdout + run.stderr and SECRET not in run.stdout + run.stderr

    ok = cli.json("connection", "test", "vend", env=key_env(key))
    assert ok["ok"] is True and smsc.counters.binds_refused == 0
    # `connection update --new-password` stores the new one encrypted too.
    smsc.options.password = "n3w!"
    cli(
        "connection",
        "update",
        "vend",
        "--new-password",
        "--password-stdin",
        "-o",
        "json",
        input="n3w!\n",
        env=key_env(key),
    )
    assert "n3w!" not in stored(db_url)["vend"]
    assert cli.json("connection", "test", "vend", env=key_env(key))["ok"] is True


def test_without_a_key_a_typed_password_is_refused_before_the_prompt(cli, monkeypatch):
    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    run = add_prompted(cli, "vend", 2775, env=None, expect=4)
    assert run.stderr.startswith("error: connection 'vend': no secret key") and len(run.stderr.splitlines()) == 1
    assert "CPAAS_SECRET_KEY" in run.stderr and "--password-env" in run.stderr
    assert "SMPP password" not in run.stderr  # refused before asking
    assert cli.json("connection", "list") == []
    # An environment variable name needs no key.
    cli.json("connection", "add-smpp", "byenv", "--host", "h", "--port", "1", "--system-id", "x", "--password-env", "V")


def test_a_wrong_or_missing_key_fails_in_one_line_naming_the_connection(cli, smsc, monkeypatch):
    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    key, other = new_key(), new_key()
    add_prompted(cli, "vend", smsc.port, env=key_env(key))
    wrong = cli("connection", "test", "vend", env=key_env(other), expect=4)
    assert wrong.stdout == "" and len(wrong.stderr.splitlines()) == 1
    assert wrong.stderr.startswith("error: connection 'vend': the stored password does not decrypt")
    assert other not in wrong.stderr and key not in wrong.stderr
    missing = cli("connection", "test", "vend", env={"CPAAS_SECRET_KEY": None}, expect=4)
    assert "connection 'vend'" in missing.stderr and "no secret key" in missing.stderr
    bad = cli("connection", "test", "vend", env=key_env("not-a-key-at-all"), expect=4)
    assert "not a Fernet key" in bad.stderr and "not-a-key-at-all" not in bad.stderr
    assert smsc.counters.binds == 0 and smsc.counters.binds_refused == 0  # no bind was even tried
    checked = cli("secrets", "check", env=key_env(other), expect=4)
    assert "connection 'vend'" in checked.stderr


def test_key_sources_flag_then_environment_then_config_file(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    monkeypatch.delenv("CPAAS_CONFIG", raising=False)
    (tmp_path / "keys").mkdir()
    made = cli.json("secrets", "new-key", "--out", str(tmp_path / "keys" / "main.key"))
    path = Path(made["key_file"])
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip().splitlines()[-1] not in made["key_file"]
    again = cli("secrets", "new-key", "--out", str(path), expect=5)  # never replaced
    assert "already exists" in again.stderr
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text('[secrets]\nkey_file = "keys/main.key"\n')  # relative to the config file
    add_prompted(cli, "vend", 2775, env={"CPAAS_CONFIG": str(cfg)})
    assert cli.json("secrets", "check", env={"CPAAS_CONFIG": str(cfg)})["key_source"].startswith("[secrets] key_file")
    # The environment beats the config file, and the flag beats both.
    env_first = cli("secrets", "check", env={"CPAAS_CONFIG": str(cfg), **key_env(new_key())}, expect=4)
    assert "CPAAS_SECRET_KEY" in env_first.stderr
    flag = cli.json(
        "--secret-key-file", str(path), "secrets", "check", env={"CPAAS_CONFIG": str(cfg), **key_env(new_key())}
    )
    assert flag["key_source"] == f"--secret-key-file {path}" and flag["connections"] == ["vend"]
    # A key file other users can read is refused.
    path.chmod(0o644)
    loose = cli("secrets", "check", env={"CPAAS_CONFIG": str(cfg)}, expect=4)
    assert "chmod 600" in loose.stderr


def test_serve_binds_with_the_encrypted_password(cli, db_url, smsc, tmp_path, monkeypatch):
    from tests.test_serve import campaign, setup

    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    setup(cli, smsc.port)  # connection "sim" with --password-env; the sender sends through it
    key = new_key()
    cli(
        "connection",
        "update",
        "sim",
        "--new-password",
        "--password-stdin",
        "-o",
        "json",
        input=f"{SECRET}\n",
        env=key_env(key),
    )
    assert SECRET not in stored(db_url)["sim"]
    campaign(cli, tmp_path, ["34600000001", "34600000002"], "Hello", "c1")
    wrong = cli("serve", "--once", "--receipt-timeout", "2", env=key_env(new_key()), expect=4)
    assert wrong.stderr.startswith("error: connection 'sim': the stored password does not decrypt")
    assert len(wrong.stderr.splitlines()) == 1 and wrong.stdout == "" and smsc.counters.binds == 0
    out = cli.json("serve", "--once", "--receipt-timeout", "5", env=key_env(key))
    assert out["submitted"] == 2 and out["errors"] == [], out
    assert smsc.counters.binds_refused == 0 and len(smsc.submit_log) == 2


def test_rotate_moves_every_secret_to_the_new_key_and_binding_still_works(cli, db_url, smsc, tmp_path, monkeypatch):
    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    old, new = new_key(), new_key()
    add_prompted(cli, "vend", smsc.port, env=key_env(old))
    add_prompted(cli, "spare", smsc.port, env=key_env(old), secret="other1")
    cli.json("connection", "add-smpp", "byenv", "--host", "h", "--port", "1", "--system-id", "x", "--password-env", "V")
    before = stored(db_url)
    new_file = key_file(tmp_path / "new.key", new)
    out = cli.json("secrets", "rotate", "--new-key-file", str(new_file), env=key_env(old))
    assert out == {
        "rotated": 2, "connections": ["vend", "spare"], "api_keys": [], "otp_integrations": [], "totp_users": [],
        "encrypted_with": f"key file {new_file}",
    }  # fmt: skip
    after = stored(db_url)
    assert after["byenv"] is None and all(after[n] != before[n] for n in ("vend", "spare"))
    assert Fernet(new.encode()).decrypt(after["vend"].encode()).decode() == SECRET
    assert cli.json("connection", "test", "vend", env=key_env(new))["ok"] is True
    assert cli.json("--secret-key-file", str(new_file), "connection", "test", "vend")["ok"] is True
    stale = cli("connection", "test", "vend", env=key_env(old), expect=4)
    assert "connection 'vend'" in stale.stderr
    # A key file whose first line is a newer key: `rotate` alone moves everything to it.
    newest = new_key()
    both = key_file(tmp_path / "both.key", newest, new)
    assert cli.json("--secret-key-file", str(both), "secrets", "rotate")["rotated"] == 2
    assert cli.json("connection", "test", "vend", env=key_env(newest))["ok"] is True
    assert cli("secrets", "check", env=key_env(new), expect=4).stderr.startswith("error: connection 'vend'")
    assert smsc.counters.binds_refused == 0


def test_rotate_with_a_key_that_opens_not_every_secret_changes_nothing(cli, db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    first, second = new_key(), new_key()
    add_prompted(cli, "a-one", 2775, env=key_env(first))
    add_prompted(cli, "b-two", 2775, env=key_env(second))  # stored with another key
    before = stored(db_url)
    target = key_file(tmp_path / "t.key", new_key())
    run = cli("secrets", "rotate", "--new-key-file", str(target), env=key_env(first), expect=4)
    assert run.stderr.startswith("error: connection 'b-two': the stored password does not decrypt")
    assert len(run.stderr.splitlines()) == 1 and stored(db_url) == before  # one transaction


def test_no_key_or_secret_reaches_output_audit_or_other_columns(cli, db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    key = new_key()
    f = key_file(tmp_path / "k", key)
    outs = [add_prompted(cli, "vend", 2775, env=key_env(key))]
    outs.append(cli("--secret-key-file", str(f), "secrets", "check", "-o", "json"))
    outs.append(cli("--secret-key-file", str(f), "secrets", "rotate", "-o", "json"))
    for args in (["connection", "show", "vend"], ["connection", "list"], ["audit", "list"]):
        outs.append(cli(*args, "-o", "json"))
    text = "".join(o.stdout + o.stderr for o in outs)
    assert key not in text and SECRET not in text
    token = stored(db_url)["vend"]
    assert token not in text  # not even the ciphertext
    with get_engine(db_url).connect() as conn:
        dump = repr(conn.execute(sa.text("SELECT * FROM vendor_connection")).all())
        dump += repr(conn.execute(sa.text("SELECT * FROM audit_log")).all())
    assert key not in dump and SECRET not in dump


def _insert_clear_connection(url: str, name: str, password: str, port: int) -> None:
    now = "2026-01-01 00:00:00"
    with get_engine(url).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO vendor_connection (name, kind, host, port, system_id, password, system_type, tls, "
                "bind_mode, window_size, message_id_format, status_map, multipart_final, dest_ton, dest_npi, "
                "gsm7_coding, concat, enquire_link, response_timeout, bind_retry_after, after_crash, enabled, "
                "created_at, updated_at) VALUES (:name, 'smpp', '127.0.0.1', :port, 'cpaas', :pw, '', false, "
                "'trx', 10, 'auto', '{}', 'all', 1, 1, 'gsm7', 'udh8', 30, 10, 300, 'resend', true, :now, :now)"
            ),
            {"name": name, "port": port, "pw": password, "now": now},
        )


def test_migration_0024_encrypts_clear_text_passwords_or_refuses_without_a_key(empty_db_url, smsc, monkeypatch):
    monkeypatch.delenv("CPAAS_SECRET_KEY", raising=False)
    cli = Cli(empty_db_url)
    cli.json("db", "upgrade", "0023")
    _insert_clear_connection(empty_db_url, "legacy", SECRET, smsc.port)
    dispose_all()
    refused = cli("db", "upgrade", expect=4)
    assert refused.stderr.startswith("error: migration 0024 encrypts the stored SMPP passwords of 1 connection(s)")
    assert "'legacy'" in refused.stderr and "CPAAS_SECRET_KEY" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    dispose_all()
    assert cli.json("db", "current")["current"] == ["0023"] and stored(empty_db_url) == {"legacy": SECRET}

    key = new_key()
    up = cli.json("db", "upgrade", env=key_env(key))
    assert up["from"] == ["0023"] and cli.json("db", "current")["up_to_date"] is True
    token = stored(empty_db_url)["legacy"]
    assert SECRET not in token and Fernet(key.encode()).decrypt(token.encode()).decode() == SECRET
    assert cli.json("connection", "test", "legacy", env=key_env(key))["ok"] is True

    # Downgrade puts the clear text back (what the schema before expects), with the key only.
    dispose_all()
    assert cli("db", "downgrade", "0023", "--yes", expect=4).stderr.startswith("error: migration 0024 decrypts")
    cli.json("db", "downgrade", "0023", "--yes", env=key_env(key))
    assert stored(empty_db_url) == {"legacy": SECRET}


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_new_key_file_is_owner_only_and_holds_a_usable_key(cli, tmp_path):
    out = cli.json("secrets", "new-key", "--out", str(tmp_path / "k"))
    path = Path(out["key_file"])
    keys = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert len(keys) == 1 and Fernet(keys[0].encode())
    assert path.stat().st_mode & 0o777 == 0o600
