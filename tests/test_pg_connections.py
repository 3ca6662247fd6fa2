"""PostgreSQL connection use (db/pool.py): pool sizes from config and environment,
``application_name`` per process kind as `pg_stat_activity` shows it, the statement
timeout of interactive commands (not bulk ones), and doctor's PostgreSQL rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from cpaas_cli.config import load_settings
from cpaas_cli.db import pool
from cpaas_cli.db.engine import get_engine, normalise_url
from tests.conftest import BACKEND

pg_only = pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL connections (SQLite has no pool settings)")


@pytest.fixture
def profiles():
    """Profiles a test sets are gone after it."""
    yield pool
    for part in (None, "http", "scheduler"):
        pool.set_profile(None, part=part)


def _admin(url: str) -> sa.engine.Engine:
    return sa.create_engine(normalise_url(url), poolclass=sa.pool.NullPool)


def _cpaas(url: str, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cpaas_cli", "--db", url, *args],
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw,
    )  # fmt: skip


# ---------------------------------------------------------------- which commands are bulk (both backends)


@pytest.mark.parametrize(
    ("command", "bulk"),
    [
        ("tenant list", False),
        ("campaign show", False),
        ("report summary", False),
        ("doctor", False),
        ("serve", True),
        ("db upgrade", True),
        ("init", True),
        ("edr ingest", True),
        ("edr export", True),
        ("rates import", True),
        ("contacts stoplist import", True),
        ("rerate run", True),
        ("invoice run", True),
        ("campaign send", True),
    ],
)
def test_bulk_commands_have_no_statement_timeout(tmp_path, command, bulk):
    settings = load_settings(config=str(_config(tmp_path, "statement_timeout = 15")))
    profile = pool.cli_profile(settings, command)
    assert profile.statement_timeout == (0 if bulk else 15)
    assert profile.application_name == f"cpaas-cli:{command}"


def _config(tmp_path, text: str):
    path = tmp_path / "cpaas.toml"
    path.write_text(f"[database]\n{text}\n")
    return path


def test_pool_settings_from_config_then_environment(tmp_path, monkeypatch):
    settings = load_settings(config=str(_config(tmp_path, "pool_size = 6\nmax_overflow = 1\npool_timeout = 5")))
    got = pool.pool_settings(settings)
    assert (got.pool_size, got.max_overflow, got.pool_timeout, got.statement_timeout) == (6, 1, 5.0, 60.0)
    monkeypatch.setenv("CPAAS_DB_POOL_SIZE", "9")
    monkeypatch.setenv("CPAAS_DB_STATEMENT_TIMEOUT", "0")
    got = pool.pool_settings(settings)
    assert (got.pool_size, got.max_overflow, got.statement_timeout) == (9, 1, 0.0)
    assert pool.serve_profile(settings, threads=6).pool_size == 9  # a setting beats every default
    monkeypatch.delenv("CPAAS_DB_POOL_SIZE")
    plain = load_settings(config=str(_config(tmp_path, "")))
    assert pool.serve_profile(plain, threads=6).pool_size == 6 + pool.SERVE_EXTRA
    assert (pool.cli_profile(plain, "tenant list").pool_size, pool.http_profile(plain).pool_size) == (2, 10)


# ---------------------------------------------------------------- PostgreSQL


@pg_only
def test_engine_pool_follows_config_and_env(db_url, tmp_path, monkeypatch, profiles):
    settings = load_settings(db=db_url, config=str(_config(tmp_path, "pool_size = 3\nmax_overflow = 4")))
    profiles.set_profile(pool.cli_profile(settings, "tenant list"))
    engine = get_engine(db_url)
    assert engine.pool.size() == 3 and engine.pool.timeout() == 30.0
    monkeypatch.setenv("CPAAS_DB_POOL_SIZE", "5")
    profiles.set_profile(pool.cli_profile(settings, "tenant list"))
    other = get_engine(db_url)
    assert other is not engine and other.pool.size() == 5
    with other.connect() as conn:
        assert conn.execute(sa.text("SHOW application_name")).scalar() == "cpaas-cli:tenant list"
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "1min"


@pg_only
def test_a_bad_pool_setting_is_invalid_input(cli):
    run = cli("tenant", "list", "-o", "json", expect=4, env={"CPAAS_DB_POOL_SIZE": "0"})
    assert "CPAAS_DB_POOL_SIZE must be a whole number, at least 1, got 0" in run.stderr


@pg_only
def test_statement_timeout_cancels_a_slow_statement_in_process(db_url, profiles):
    profiles.set_profile(pool.Profile(application_name="cpaas-cli:test", statement_timeout=0.2))
    engine = get_engine(db_url)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="statement timeout"), engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_sleep(5)"))
    assert time.monotonic() - started < 3


@pg_only
def test_interactive_command_seen_in_pg_stat_activity_then_cut_by_its_statement_timeout(db_url):
    """A fresh `cpaas tenant list` waits on a table this test locks: pg_stat_activity names it,
    and its statement timeout ends it with one line on stderr and exit 1, no traceback."""
    admin = _admin(db_url)
    with admin.connect() as holder:
        holder.execute(sa.text("LOCK TABLE company IN ACCESS EXCLUSIVE MODE"))
        proc = _cpaas(db_url, "tenant", "list", "-o", "json", env={"CPAAS_DB_STATEMENT_TIMEOUT": "4"})
        seen, end = None, time.monotonic() + 20
        with admin.connect() as watcher:
            while seen is None and time.monotonic() < end and proc.poll() is None:
                seen = watcher.execute(
                    sa.text(
                        "SELECT wait_event_type FROM pg_stat_activity "
                        "WHERE application_name = 'cpaas-cli:tenant list' AND state = 'active'"
                    )
                ).scalar()
                watcher.rollback()  # pg_stat_activity is a snapshot per transaction
                time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
        holder.rollback()
    admin.dispose()
    assert seen == "Lock", (proc.returncode, out, err)
    assert proc.returncode == 1, err
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("error: the database stopped a statement after 4 s")
    assert "CPAAS_DB_STATEMENT_TIMEOUT" in err and "rolled back" in err


@pg_only
def test_bulk_command_gets_no_statement_timeout(cli, profiles):
    """`rates import` (bulk) and `doctor` (interactive) as the server sees them."""
    run = cli("doctor", "-o", "json", expect=None, env={"CPAAS_DB_STATEMENT_TIMEOUT": "2.5"})
    row = {r["check"]: r for r in run.json}["pg connection"]
    assert row["value"]["statement_timeout"] == "2500ms"
    settings = load_settings(db=cli.url)
    profiles.set_profile(pool.cli_profile(settings, "rates import"))
    with get_engine(cli.url).connect() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"
        assert conn.execute(sa.text("SHOW application_name")).scalar() == "cpaas-cli:rates import"


@pg_only
def test_serve_http_parts_named_in_pg_stat_activity(db_url):
    from tests.test_api_serve import start_serve, stop

    proc, _base = start_serve(db_url)
    try:
        admin = _admin(db_url)
        names, end = set(), time.monotonic() + 20
        wanted = {"cpaas-serve:dispatch", "cpaas-serve:http", "cpaas-serve:scheduler"}
        with admin.connect() as conn:
            while not wanted <= names and time.monotonic() < end:
                names = set(
                    conn.execute(
                        sa.text("SELECT application_name FROM pg_stat_activity WHERE datname = current_database()")
                    ).scalars()
                )
                conn.rollback()
                time.sleep(0.2)
        admin.dispose()
    finally:
        stop(proc)
    assert wanted <= names, names


@pg_only
def test_serve_pool_sized_from_its_worker_threads(cli, profiles):
    from cpaas_cli.cli.serve import _pool_profiles

    for name in ("a", "b"):
        cli("connection", "add-smpp", name, "--host", "127.0.0.1", "--port", "1", "--system-id", "x",
            "--password-env", "PW", "-o", "json")  # fmt: skip
    _pool_profiles(load_settings(db=cli.url), workers=3, http=True)
    assert pool.current_profile().pool_size == 2 * 3 + pool.SERVE_EXTRA
    assert pool.current_profile().statement_timeout == 0
    assert get_engine(cli.url).pool.size() == 10
    assert get_engine(cli.url, part="http").pool.size() == pool.HTTP_POOL[0]


@pg_only
def test_doctor_postgresql_rows(cli, db_url, tmp_path):
    with _admin(db_url).begin() as conn:
        conn.execute(sa.text("ALTER TABLE edr SET (autovacuum_vacuum_scale_factor = 0.01)"))
    run = cli("--config", str(_config(tmp_path, "pool_size = 3")), "doctor", "-o", "json", expect=None)
    assert run.exit_code == 0, run.stderr  # advice is a warning, never a failure
    rows = {r["check"]: r for r in run.json if r["check"].startswith("pg ")}
    assert list(rows) == [
        "pg connection",
        "pg max_connections",
        "pg shared_buffers",
        "pg max_wal_size",
        "pg checkpoint_timeout",
        "pg work_mem",
        "pg synchronous_commit",
        "pg autovacuum",
        "pg autovacuum outbound_message",
        "pg autovacuum agreement_balance",
        "pg autovacuum edr",
        "pg autovacuum charge",
    ]
    for row in rows.values():
        assert set(row) == {"check", "status", "detail", "value", "recommended", "advice"}
        assert row["status"] in ("ok", "warn")
        assert bool(row["advice"]) == (row["status"] == "warn"), row
    conn_row = rows["pg connection"]["value"]
    assert conn_row["application_name"] == "cpaas-cli:doctor"
    assert conn_row["statement_timeout"] == "1min" and conn_row["pool_size"] == 3
    need = rows["pg max_connections"]["value"]
    assert need["one_serve_and_cli"] == (3 + 10) + (3 + 10) + (1 + 2) + (3 + 2)  # serve, http, scheduler, CLI
    edr = rows["pg autovacuum edr"]
    assert edr["status"] == "ok" and edr["value"]["vacuum_scale_factor"] == 0.01
    charge = rows["pg autovacuum charge"]
    if charge["value"]["vacuum_scale_factor"] > 0.05:
        assert charge["status"] == "warn" and "ALTER TABLE charge SET" in charge["advice"]
    sync = rows["pg synchronous_commit"]
    assert sync["value"] in ("on", "off", "local", "remote_write", "remote_apply")


def test_sqlite_doctor_has_no_postgresql_rows(cli, tmp_path):
    if BACKEND != "sqlite":
        pytest.skip("the SQLite pass")
    run = cli("--config", str(_config(tmp_path, "")), "doctor", "-o", "json", expect=None)
    assert not [r for r in run.json if r["check"].startswith("pg ")]
