"""Test fixtures: a fresh, migrated database per test (SQLite file, or a real
PostgreSQL database when CPAAS_TEST_PG_URL is set), and a CLI runner that
returns parsed JSON.

The migrated schema is built once per test session (a template database on
PostgreSQL, a template file on SQLite) and copied for each test.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cpaas_cli.cli.app import app
from cpaas_cli.db.engine import dispose_all, get_engine, make_session, normalise_url

PG_URL = os.environ.get("CPAAS_TEST_PG_URL")
BACKEND = "postgresql" if PG_URL else "sqlite"


def pytest_report_header(config):
    return f"cpaas database backend: {BACKEND}" + (f" ({PG_URL})" if PG_URL else "")


def _pg_admin_url() -> sa.engine.URL:
    return sa.engine.make_url(normalise_url(PG_URL or ""))


def _pg_exec(sql: str) -> None:
    engine = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def _upgrade(url: str) -> None:
    result = CliRunner().invoke(app, ["--db", url, "db", "upgrade", "-o", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Iterator[str]:
    """A migrated database (with the system owner) to copy for each test."""
    tag = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    if PG_URL:
        name = f"cpaas_tmpl_{tag}_{uuid.uuid4().hex[:8]}"
        _pg_exec(f'CREATE DATABASE "{name}"')
        url = _pg_admin_url().set(database=name).render_as_string(hide_password=False)
        _upgrade(url)
        dispose_all()
        yield name
        dispose_all()
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path_factory.mktemp("tmpl") / "template.db"
        url = f"sqlite:///{path}"
        _upgrade(url)
        dispose_all()
        yield str(path)


@pytest.fixture
def db_url(template_db, tmp_path) -> Iterator[str]:
    """A fresh migrated database for one test."""
    if PG_URL:
        name = f"cpaas_t_{uuid.uuid4().hex[:12]}"
        _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        url = _pg_admin_url().set(database=name).render_as_string(hide_password=False)
        yield url
        dispose_all()
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path / "cpaas.db"
        shutil.copyfile(template_db, path)
        yield f"sqlite:///{path}"
        dispose_all()


@pytest.fixture
def empty_db_url(tmp_path) -> Iterator[str]:
    """A database with no tables at all (for migration tests)."""
    if PG_URL:
        name = f"cpaas_e_{uuid.uuid4().hex[:12]}"
        _pg_exec(f'CREATE DATABASE "{name}"')
        yield _pg_admin_url().set(database=name).render_as_string(hide_password=False)
        dispose_all()
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        dispose_all()


@pytest.fixture
def session(db_url):
    s = make_session(get_engine(db_url), actor="pytest", command="test")
    yield s
    s.rollback()
    s.close()


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


class Cli:
    """Runs `cpaas` in-process against the test database."""

    def __init__(self, url: str):
        self.url = url
        self.runner = CliRunner()

    def __call__(self, *args: str, expect: int | None = 0, input: str | None = None, env: dict | None = None) -> Run:
        full = ["--db", self.url, "--actor", "tester", *[str(a) for a in args]]
        # no COLUMNS unless a test gives one (xdist's workers have COLUMNS=80): tables drawn as for a pipe
        env = {"COLUMNS": None, **(env or {})}
        result = self.runner.invoke(app, full, input=input, env=env, catch_exceptions=False)
        run = Run(result.exit_code, result.stdout, result.stderr)
        if expect is not None:
            assert run.exit_code == expect, (
                f"cpaas {' '.join(map(str, args))}: exit {run.exit_code}, expected {expect}\n"
                f"stdout: {run.stdout}\nstderr: {run.stderr}"
            )
        return run

    def json(self, *args: str, **kw) -> Any:
        return self(*args, "-o", "json", **kw).json


@pytest.fixture
def cli(db_url) -> Cli:
    return Cli(db_url)


@pytest.fixture
def report_role(cli) -> None:
    """The read-only role saved reports run as on PostgreSQL (`cpaas db report-role`); nothing on SQLite."""
    if PG_URL:
        cli("db", "report-role")
