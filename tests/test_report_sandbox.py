"""Saved reports run in a sandbox the database enforces (issue 23, item 1): one
statement, a read-only role/connection, no secret column, no server file
functions, a time limit (also Ctrl-C) and a row cap — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import dispose_all, get_engine
from cpaas_cli.reports import sandbox
from tests.conftest import BACKEND
from tests.helpers import client, owner_le

SECRET = "S3cr3t!x"  # SMPP passwords are at most 8 characters
RUNAWAY = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) AS n FROM c"
pg_only = pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL roles (SQLite has none)")


def _define(cli, tmp_path, name, sql, *params, expect=0):
    f = tmp_path / f"{name}.sql"
    f.write_text(sql)
    args = ["report", "define", name, "--sql", str(f)]
    for p in params:
        args += ["--param", p]
    return cli(*args, expect=expect)


def _count(db_url, table):
    with get_engine(db_url).connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def _contacts(cli):
    owner_le(cli)
    client(cli)
    cli.json("contacts", "group", "add", "G", "-c", "Client A")
    for phone in ("+34612345678", "+34612345679"):
        cli.json("contacts", "add", phone, "--company", "Client A", "--group", "G")


# Both pass the text check (it sees one quoted literal and no ';'); PostgreSQL sees
# three statements: a SELECT, COMMIT (ends the read-only transaction) and a DELETE.
HIDDEN = {
    "dollar": "SELECT $$'$$ AS a; COMMIT; DELETE FROM contact; SELECT $$'$$ AS b",
    "e_string": "SELECT E'\\'' AS a; COMMIT; DELETE FROM contact; SELECT E'\\'' AS b",
}


@pytest.mark.parametrize("payload", sorted(HIDDEN))
def test_hidden_statements_after_a_quote_never_run(cli, db_url, tmp_path, report_role, payload):
    _contacts(cli)
    _define(cli, tmp_path, "hidden", HIDDEN[payload])  # no parameters: once sent as a multi-statement query
    run = cli("report", "run", "hidden", expect=None)
    assert _count(db_url, "contact") == 2
    assert run.exit_code == 4 and run.stderr.startswith("error: report 'hidden' failed: ")
    assert len(run.stderr.splitlines()) == 1
    with_param = HIDDEN[payload].replace("AS b", "AS b WHERE 1 = :one")
    _define(cli, tmp_path, "hidden2", with_param, "one:int:1")
    cli("report", "run", "hidden2", expect=4)
    assert _count(db_url, "contact") == 2


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_read_file('/etc/passwd') AS t",
        "SELECT length(pg_read_binary_file('/etc/passwd')) AS t",
        # switching back to the session's own user from inside the statement
        "SELECT set_config('session_authorization', 'postgres', true) AS a, pg_read_file('/etc/passwd') AS t",
        "SELECT set_config('role', 'postgres', true) AS a",
    ],
)
def test_server_file_functions_and_role_switches_refused(cli, tmp_path, report_role, sql):
    _define(cli, tmp_path, "peek", sql)
    run = cli("report", "run", "peek", expect=4)
    assert "root:" not in run.stdout + run.stderr and len(run.stderr.splitlines()) == 1


def test_secret_columns_never_readable(cli, db_url, tmp_path, report_role, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("CPAAS_SECRET_KEY", Fernet.generate_key().decode())  # a typed password is stored encrypted
    cli(
        "connection",
        "add-smpp",
        "v1",
        "--host",
        "127.0.0.1",
        "--port",
        "2775",
        "--system-id",
        "x",
        "--password-stdin",
        input=f"{SECRET}\n",
    )
    assert ("vendor_connection", "password") in sandbox.secret_columns()
    for table, column in sandbox.secret_columns():
        _define(cli, tmp_path, f"s_{table}_{column}", f"SELECT {column} AS v FROM {table}")
        run = cli("report", "run", f"s_{table}_{column}", expect=4)
        assert "is not allowed" in run.stderr and SECRET not in run.stdout + run.stderr, run.stderr
        assert len(run.stderr.splitlines()) == 1
    for n, sql in enumerate(
        [
            "SELECT * FROM vendor_connection",
            "SELECT name FROM vendor_connection WHERE password LIKE 'S%'",  # no guessing through WHERE either
            "SELECT v.name FROM vendor_connection v ORDER BY length(v.password)",
            "WITH x AS (SELECT password AS p FROM vendor_connection) SELECT count(*) AS n FROM x",
        ]
    ):
        _define(cli, tmp_path, f"w{n}", sql)
        run = cli("report", "run", f"w{n}", expect=4)
        assert "is not allowed" in run.stderr, run.stderr
    # the visible columns of the same table are readable
    _define(cli, tmp_path, "names", "SELECT name, host FROM vendor_connection")
    assert cli.json("report", "run", "names") == [{"name": "v1", "host": "127.0.0.1"}]
    # nor can an identifier parameter name a secret column
    _define(cli, tmp_path, "by_col", "SELECT :x_col AS v FROM vendor_connection", "x_col:ident:name")
    bad = cli("report", "run", "by_col", "--param", "x_col=password", expect=4)
    assert "not a table or column name" in bad.stderr
    # the audit log holds the change, masked
    _define(cli, tmp_path, "audit", "SELECT old, new FROM audit_log")
    assert SECRET not in cli("report", "run", "audit", "-o", "json").stdout


def test_runaway_query_stops_at_the_time_limit(cli, tmp_path, report_role):
    _define(cli, tmp_path, "runaway", RUNAWAY)
    run = cli("report", "run", "runaway", "--timeout", "1", expect=4)
    assert (
        run.stderr == "error: report 'runaway' stopped after 1 s (the report time limit: --timeout, [report] timeout)\n"
    )
    config = tmp_path / "cpaas.toml"
    config.write_text("[report]\ntimeout = 0.5\n")
    run = cli("--config", str(config), "report", "run", "runaway", expect=4)
    assert "stopped after 0.5 s" in run.stderr
    assert (
        "at most 0.5 s" in cli("--config", str(config), "report", "run", "runaway", "--timeout", "2", expect=4).stderr
    )


@pg_only
def test_time_limit_covers_every_fetch(cli, tmp_path, report_role):
    """Each FETCH of the server-side cursor is within statement_timeout; the run as a whole is not."""
    _define(cli, tmp_path, "slow", "SELECT n, pg_sleep(0.6) AS s FROM generate_series(1, 3) AS n")
    run = cli("report", "run", "slow", "--limit", "1", "--timeout", "1", expect=4)  # fetches 1 row, then 1 more
    assert "stopped after 1 s" in run.stderr


def test_row_cap_applied_and_reported(cli, tmp_path, report_role):
    rows20 = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < :upto) SELECT n FROM c"
    _define(cli, tmp_path, "numbers", rows20, "upto:int:20")
    config = tmp_path / "cpaas.toml"
    config.write_text("[report]\nmax_rows = 5\n")
    capped = cli("--config", str(config), "report", "run", "numbers", "-o", "json")
    assert [r["n"] for r in capped.json] == [1, 2, 3, 4, 5]
    assert capped.stderr == "showing 5 of more than 5; no report shows more than 5 rows ([report] max_rows)\n"
    limited = cli("--config", str(config), "report", "run", "numbers", "--limit", "3", "-o", "json")
    assert len(limited.json) == 3 and limited.stderr == "showing 3 of more than 3; use --limit N to see more\n"
    exact = cli("--config", str(config), "report", "run", "numbers", "--param", "upto=5", "-o", "json")
    assert len(exact.json) == 5 and exact.stderr == ""
    over = cli("--config", str(config), "report", "run", "numbers", "--limit", "6", expect=4)
    assert over.stderr == "error: --limit: at most 5 rows ([report] max_rows)\n"
    # a huge result is cut without being read whole
    big = cli("--config", str(config), "report", "run", "numbers", "--param", "upto=100000", "-o", "json")
    assert len(big.json) == 5 and big.stderr.startswith("showing 5 of more than 5;")
    config.write_text("[report]\nmax_rows = 0\n")
    assert "max_rows" in cli("--config", str(config), "report", "run", "numbers", expect=4).stderr


def _query_running(proc, db_url) -> bool:
    """True once the report's statement is running in the child process."""
    if BACKEND == "postgresql":
        with get_engine(db_url).connect() as conn:
            q = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
            q += " AND datname = current_database() AND (query LIKE 'FETCH%' OR query LIKE 'WITH RECURSIVE%')"
            return conn.execute(sa.text(q)).scalar_one() > 0
    path = os.path.realpath(sa.engine.make_url(db_url).database)
    fds = os.listdir(f"/proc/{proc.pid}/fd")
    opened = [
        os.path.realpath(f"/proc/{proc.pid}/fd/{fd}") for fd in fds if os.path.exists(f"/proc/{proc.pid}/fd/{fd}")
    ]
    return opened.count(path) >= 2  # the command's own connection and the report's read-only one


def test_ctrl_c_stops_a_runaway_report(cli, db_url, tmp_path, report_role):
    _define(cli, tmp_path, "runaway", RUNAWAY)
    dispose_all()
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, "report", "run", "runaway"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not _query_running(proc, db_url):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.2)  # well inside the statement, not between the connect and the execute
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=25)  # the default time limit (30 s) would give exit 4
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, out, err) == (130, "", "")  # the CLI's Ctrl-C exit (typer: 130, silent)


@pg_only
def test_refused_without_the_report_role(cli, db_url, tmp_path):
    _define(cli, tmp_path, "one", "SELECT 1 AS one")
    absent = f"cpaas_report_absent_{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(db_url).set(username=absent).render_as_string(hide_password=False)
    run = cli("report", "run", "one", env={sandbox.URL_ENV: url}, expect=1)
    assert f"read-only role '{absent}', which cannot connect" in run.stderr
    assert "cpaas db report-role" in run.stderr and len(run.stderr.splitlines()) == 1
    # a role that is a superuser (here: the test server's postgres) is not a sandbox
    run = cli("report", "run", "one", env={sandbox.URL_ENV: db_url}, expect=1)
    assert "is a superuser" in run.stderr and "cpaas db report-role" in run.stderr


@pg_only
def test_report_role_grants_and_refresh(cli, db_url, tmp_path):
    _define(cli, tmp_path, "one", "SELECT count(*) AS n FROM edr")
    engine = get_engine(db_url)
    with engine.begin() as conn:  # the cluster-wide role may exist from another database: no grants here yet
        conn.exec_driver_sql("DO $$ BEGIN CREATE ROLE cpaas_report LOGIN; EXCEPTION WHEN OTHERS THEN NULL; END $$")
    run = cli("report", "run", "one", expect=1)
    assert "has no grants in this database; run `cpaas db report-role`" in run.stderr
    out = cli.json("db", "report-role")
    assert (out["role"], out["read_only"]) == ("cpaas_report", True)
    assert {"vendor_connection.password", "vendor_connection.password_env"} <= set(out["hidden_columns"])
    assert cli.json("report", "run", "one") == [{"n": 0}]
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT rolsuper, rolcanlogin, rolconfig FROM pg_roles WHERE rolname = 'cpaas_report'")
        ).one()
    assert row[0] is False and row[1] is True and "default_transaction_read_only=on" in row[2]
    # a grant made by hand on a secret column is refused at run time, and report-role takes it back
    with engine.begin() as conn:
        conn.exec_driver_sql("GRANT SELECT ON vendor_connection TO cpaas_report")
    run = cli("report", "run", "one", expect=1)
    assert "can read vendor_connection.password" in run.stderr
    cli.json("db", "report-role")
    assert cli.json("report", "run", "one") == [{"n": 0}]
    # granted to PUBLIC, the role cannot be kept from it: both commands say so
    with engine.begin() as conn:
        conn.exec_driver_sql("GRANT SELECT ON vendor_connection TO PUBLIC")
    assert "it can read vendor_connection.password" in cli("db", "report-role", expect=1).stderr
    assert "can read vendor_connection.password" in cli("report", "run", "one", expect=1).stderr
    with engine.begin() as conn:
        conn.exec_driver_sql("REVOKE SELECT ON vendor_connection FROM PUBLIC")
    # a password comes from an environment variable, never from the command line, and is never shown
    assert "not set" in cli("db", "report-role", "--password-env", "CPAAS_TEST_NO_SUCH_VAR", expect=4).stderr
    run = cli("db", "report-role", "--password-env", "RPW", "-o", "json", env={"RPW": SECRET})
    assert json.loads(run.stdout)["password_set"] is True and SECRET not in run.stdout + run.stderr


@pg_only
def test_report_role_says_when_its_grants_do_not_take(cli, db_url):
    """Run by a user that owns no table, GRANT/REVOKE are mere warnings: the command checks and fails."""
    cli.json("db", "report-role")  # the role exists; here only the grants are at stake
    plain = f"cpaas_plain_{uuid.uuid4().hex[:8]}"
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {plain} LOGIN")
    try:
        url = sa.engine.make_url(db_url).set(username=plain).render_as_string(hide_password=False)
        run = cli("--db", url, "db", "report-role", expect=1)
        assert run.stderr.startswith("error: db report-role: ") and "own the tables" in run.stderr
    finally:
        dispose_all()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE {plain}")


@pytest.mark.skipif(BACKEND == "postgresql", reason="SQLite: the command refuses")
def test_report_role_is_postgresql_only(cli):
    assert "PostgreSQL only" in cli("db", "report-role", expect=4).stderr
