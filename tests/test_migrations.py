"""Tables exist only through migrations; migrations and models agree; the
migrations work from an installed wheel, not only from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cpaas_cli.db import migrate
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.all import metadata
from tests.conftest import BACKEND, Cli

ROOT = Path(__file__).resolve().parent.parent


def _diff(url: str) -> list:
    with get_engine(url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return compare_metadata(ctx, metadata)


def test_migrations_and_models_agree(db_url):
    assert _diff(db_url) == []


def test_upgrade_downgrade_upgrade(empty_db_url):
    cli = Cli(empty_db_url)
    up = cli.json("db", "upgrade")
    assert up["from"] == [] and up["to"] == migrate.heads(empty_db_url)
    assert up["owner_created"] is True
    again = cli.json("db", "upgrade")
    assert again["owner_created"] is False  # idempotent
    current = cli.json("db", "current")
    assert current["up_to_date"] is True
    history = cli.json("db", "history")
    assert history[-1]["down_revision"] is None
    assert any(h["current"] for h in history)
    down = cli.json("db", "downgrade", "base", "--yes")
    assert down["to"] == []
    assert cli.json("db", "current")["current"] == []
    cli.json("db", "upgrade")
    assert _diff(empty_db_url) == []


def test_upgrade_keeps_rows_that_refer_to_a_rebuilt_table(empty_db_url):
    """SQLite rebuilds a table to alter it (copy, DROP, rename): with foreign keys
    enforced the DROP of vendor_connection failed while an inbound message or a
    queue row referred to a connection. The upgrade keeps every row, and foreign
    keys are enforced again afterwards."""
    import sqlalchemy as sa

    migrate.upgrade(empty_db_url, "0018")
    t0 = "2026-01-01 00:00:00"
    with get_engine(empty_db_url).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO vendor_connection (name, kind, host, port, system_type, tls, bind_mode, window_size,"
                " message_id_format, status_map, enabled, created_at, updated_at)"
                " VALUES ('v', 'smpp', 'h', 2775, '', false, 'trx', 10, 'auto', '{}', true, :t, :t)"
            ),
            {"t": t0},
        )
        conn.execute(
            sa.text(
                "INSERT INTO inbound_message (kind, connection_id, source, destination, text, data_coding, received_at)"
                " SELECT 'mo', id, '34600000001', 'CPAAS', 'STOP', 0, :t FROM vendor_connection"
            ),
            {"t": t0},
        )
    migrate.upgrade(empty_db_url, "head")
    with get_engine(empty_db_url).begin() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM inbound_message WHERE connection_id IS NOT NULL")).scalar() == 1
        )
        assert conn.execute(sa.text("SELECT name FROM vendor_connection")).scalars().all() == ["v"]
    with pytest.raises(sa.exc.IntegrityError), get_engine(empty_db_url).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO inbound_message (kind, connection_id, source, destination, text, data_coding, received_at)"
                " VALUES ('mo', 999, 'a', 'b', 't', 0, :t)"
            ),
            {"t": t0},
        )


def test_downgrade_needs_yes_off_a_terminal(db_url):
    run = Cli(db_url)("db", "downgrade", "base", expect=2)
    assert "--yes" in run.stderr


def test_init_names_the_owner(empty_db_url):
    cli = Cli(empty_db_url)
    out = cli.json("init", "--owner", "Acme Hub")
    assert out["owner"]["name"] == "Acme Hub"
    assert [r["name"] for r in cli.json("tenant", "list", "--type", "owner")] == ["Acme Hub"]


@pytest.mark.skipif(BACKEND != "sqlite", reason="packaging is backend-independent; run once, on the SQLite pass")
def test_migrations_run_from_the_built_wheel(tmp_path):
    """Build the wheel, unpack it away from the checkout and upgrade a database with it."""
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next(dist.glob("cpaas_cli-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "cpaas_cli/_migrations/env.py" in names
    assert any(n.startswith("cpaas_cli/_migrations/versions/0001") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "wheel.db"
    env = {**os.environ, "PYTHONPATH": str(site), "CPAAS_DATABASE_URL": f"sqlite:///{db}"}
    code = (
        "import cpaas_cli, cpaas_cli.db.migrate as m; "
        f"assert str(m.script_location()).startswith({str(site)!r}), m.script_location(); "
        "from cpaas_cli.cli.app import main; main()"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, "db", "upgrade", "-o", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert '"owner_created": true' in run.stdout
    assert db.exists()


def test_init_never_renames_another_owner(empty_db_url):
    cli = Cli(empty_db_url)
    cli.json("init", "--owner", "Acme Hub")
    assert cli.json("init", "--owner", "Acme Hub")["owner"]["name"] == "Acme Hub"  # same name: a no-op
    run = cli("init", "--owner", "Other Hub", "-o", "json", expect=5)
    assert "'Acme Hub'" in run.stderr and "'Other Hub'" in run.stderr and run.stdout == ""
    assert [r["name"] for r in cli.json("tenant", "list", "--type", "owner")] == ["Acme Hub"]


def test_init_names_the_owner_a_plain_upgrade_made(empty_db_url):
    cli = Cli(empty_db_url)
    assert cli.json("db", "upgrade")["owner"]["name"] == "System owner"
    assert cli.json("init", "--owner", "Acme Hub")["owner"]["name"] == "Acme Hub"
