"""`cpaas doctor`: one row per check, JSON like every command, exit 1 when a check fails."""

from __future__ import annotations

import pytest

from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from tests.smtp import smtp_server  # noqa: F401


def _config(tmp_path, min_free: str = "") -> str:
    path = tmp_path / "cpaas.toml"
    path.write_text(f'[export]\ndir = "{tmp_path / "exports"}"\n')
    return str(path)


def _checks(cli, tmp_path, *extra, expect=0, env=None):
    run = cli("--config", _config(tmp_path), "doctor", "-o", "json", *extra, expect=expect, env=env)
    return {r["check"]: r for r in run.json}, run


def test_a_fresh_database_passes_with_smtp_skipped_and_no_connection_warned(cli, tmp_path):
    rows, run = _checks(cli, tmp_path, env={"CPAAS_SMTP_HOST": None})
    rows = {k: v for k, v in rows.items() if not k.startswith("pg ")}  # PostgreSQL's own rows: test_doctor_pg.py
    assert [r["status"] for r in rows.values()] == ["ok", "ok", "ok", "warn", "ok", "skip", "ok"]
    assert list(rows) == ["database", "migrations", "owner", "connections", "scheduler", "smtp", "disk"]
    assert "at head" in rows["migrations"]["detail"]
    assert str(tmp_path / "exports") in rows["disk"]["detail"]
    assert "all checks passed (with warnings)" in run.stderr


def test_smtp_reachable_and_unreachable(cli, tmp_path, smtp_server):  # noqa: F811
    rows, _ = _checks(cli, tmp_path)
    assert rows["smtp"]["status"] == "ok" and f"127.0.0.1:{smtp_server.port}" in rows["smtp"]["detail"]
    port = free_port()
    rows, run = _checks(cli, tmp_path, "--timeout", "2", expect=1, env={"CPAAS_SMTP_PORT": str(port)})
    assert rows["smtp"]["status"] == "fail" and "not reachable" in rows["smtp"]["detail"]
    assert "1 check(s) failed: smtp" in run.stderr


def test_disk_below_the_minimum_fails(cli, tmp_path):
    rows, _ = _checks(cli, tmp_path, "--min-free-mb", str(10**12), expect=1, env={"CPAAS_SMTP_HOST": None})
    assert rows["disk"]["status"] == "fail" and "less than" in rows["disk"]["detail"]


def test_unmigrated_database_fails_and_skips_what_needs_it(empty_db_url, tmp_path):
    from tests.conftest import Cli

    rows, _ = _checks(Cli(empty_db_url), tmp_path, expect=1, env={"CPAAS_SMTP_HOST": None})
    assert rows["database"]["status"] == "ok"
    assert rows["migrations"]["status"] == "fail" and "cpaas db upgrade" in rows["migrations"]["detail"]
    assert {rows[c]["status"] for c in ("owner", "connections", "scheduler")} == {"skip"}


def test_unreachable_database_fails(tmp_path):
    from tests.conftest import Cli

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    rows, run = _checks(Cli(url), tmp_path, expect=1, env={"CPAAS_SMTP_HOST": None})
    assert rows["database"]["status"] == "fail" and "cannot connect" in rows["database"]["detail"]
    assert rows["migrations"]["status"] == "skip"


@pytest.fixture
def sim():
    s = SimSmsc(SmscOptions(port=free_port(), lifetime=60))
    s.start()
    yield s
    s.stop()


def test_connections_password_and_bind(cli, tmp_path, sim):
    add = ("connection", "add-smpp", "--host", "127.0.0.1", "--port", str(sim.port), "--system-id", "cpaas")
    cli(*add[:2], "sim", *add[2:], "--password-env", "SIM_PW", "-o", "json")
    cli(*add[:2], "off", *add[2:], "--password-env", "OFF_PW", "-o", "json")
    cli("connection", "disable", "off")
    env = {"CPAAS_SMTP_HOST": None, "SIM_PW": None}
    rows, _ = _checks(cli, tmp_path, expect=1, env=env)
    assert rows["connection sim"]["status"] == "fail" and "SIM_PW is not set" in rows["connection sim"]["detail"]
    assert rows["connection off"]["status"] == "skip"
    env["SIM_PW"] = "pw"
    rows, _ = _checks(cli, tmp_path, env=env)
    assert rows["connection sim"]["status"] == "ok"
    assert "last submit never, last inbound never" in rows["connection sim"]["detail"]
    rows, _ = _checks(cli, tmp_path, "--bind", env=env)
    assert rows["connection sim"]["status"] == "ok" and "bound in" in rows["connection sim"]["detail"]
    sim.stop()
    rows, _ = _checks(cli, tmp_path, "--bind", "--timeout", "2", expect=1, env=env)
    assert rows["connection sim"]["status"] == "fail" and "bind failed" in rows["connection sim"]["detail"]


def test_overdue_export_task_warns_that_serve_is_not_running(cli, tmp_path, db_url):
    import sqlalchemy as sa

    from cpaas_cli.db.engine import get_engine

    rows, _ = _checks(cli, tmp_path, env={"CPAAS_SMTP_HOST": None})
    assert rows["scheduler"]["status"] == "ok" and "none overdue" in rows["scheduler"]["detail"]
    cli("edr", "export", "--from", "2026-01-01", "--till", "2026-02-01", "--background", "-o", "json")
    rows, _ = _checks(cli, tmp_path, env={"CPAAS_SMTP_HOST": None})
    assert rows["scheduler"]["status"] == "ok"  # just recorded: not overdue yet
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.text("UPDATE edr_export_task SET created_at = :t"), {"t": "2026-01-01 00:00:00"})
    rows, run = _checks(cli, tmp_path, env={"CPAAS_SMTP_HOST": None})
    assert rows["scheduler"]["status"] == "warn" and "1 export tasks" in rows["scheduler"]["detail"]
    assert "cpaas serve" in rows["scheduler"]["detail"] and run.exit_code == 0


def test_table_output(cli, tmp_path):
    run = cli("--config", _config(tmp_path), "doctor", env={"CPAAS_SMTP_HOST": None})
    assert "migrations" in run.stdout and "ok" in run.stdout
