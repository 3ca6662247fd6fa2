"""The command groups load lazily: `cpaas --help` lists them all without importing them,
each loads when invoked, and a fresh process still audits every change."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cpaas_cli.cli.app import ENTRIES, app, load
from tests.helpers import client, owner_le


def _fresh(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """Run cpaas (or ``code``) in a new interpreter, so nothing is imported yet."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "cpaas_cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"})


def test_help_lists_every_group_with_its_help():
    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    listed = out.split("Commands:")[1].splitlines()
    rows = {line.split()[0]: line.split(None, 1)[1].strip() for line in listed if line.strip()}
    assert list(rows) == list(ENTRIES)
    assert rows["edr"] == "EDRs: ingest, rate, list, show, export, export tasks."
    assert rows["report"] == "Traffic summaries, charts, campaign reports, saved SQL reports."


@pytest.mark.parametrize("name", list(ENTRIES))
def test_stored_help_is_the_commands_own(name):
    """What `cpaas --help` shows without loading a group is what the group says once loaded."""
    cmd = load(name)
    stored = ENTRIES[name][3]
    assert stored == cmd.help.split("\n\n")[0].strip()
    run = CliRunner().invoke(app, [name, "--help"])
    assert run.exit_code == 0, run.output
    assert stored.split(" (")[0] in " ".join(run.stdout.split())


def test_groups_that_other_modules_extend_keep_those_commands():
    assert "periods" in load("agreement").commands
    assert {"export", "export-task"} <= set(load("edr").commands)


@pytest.mark.parametrize(("group", "command"), [("agreement", "periods"), ("edr", "export"), ("edr", "export-task")])
def test_commands_other_modules_add_exist_in_a_fresh_process(group, command):
    """The registration happens on import: `ENTRIES` must import those modules with the group."""
    run = _fresh(group, command, "--help")
    assert run.returncode == 0, run.stderr
    assert f" {group} {command} [OPTIONS]" in run.stdout.splitlines()[0]


def test_help_and_version_import_no_group_and_no_database_code():
    code = (
        "import sys; from cpaas_cli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'pandas', 'openpyxl', 'rich',"
        " 'cpaas_cli.cli.campaign', 'cpaas_cli.campaigns') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    for args in (["--help"], ["--version"]):
        run = _fresh(*args, code=code)
        assert run.returncode == 0, run.stderr
        assert "HEAVY []" in run.stdout, run.stdout


def test_a_command_imports_its_own_group_only(db_url):
    code = (
        "import sys; from cpaas_cli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('cpaas_cli.cli.')))\n"
        "print('HEAVY', [m for m in ('alembic', 'pandas', 'jinja2', 'cpaas_cli.campaigns') if m in sys.modules])\n"
    )
    run = _fresh("-q", "--db", db_url, "report", "summary", "--from", "2026-03-01", "--till", "2026-04-01", code=code)
    assert run.returncode == 0, run.stderr
    loaded = run.stdout.split("LOADED ")[1].splitlines()[0]
    assert "cpaas_cli.cli.report" in loaded and "cpaas_cli.cli.campaign'" not in loaded
    assert "HEAVY []" in run.stdout, run.stdout


def test_tenant_list_loads_no_other_domain(db_url):
    """The start-up path benchmarks/startup.py times: `tenant list` imports the
    tenancy models, not the agreements' (only `tenant delete` and `tenant show`
    need them) and not pycountry (only a country being checked needs it)."""
    code = (
        "import sys; from cpaas_cli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('LOADED', [m for m in ('cpaas_cli.models.tenancy', 'cpaas_cli.models.agreements', 'pycountry',"
        " 'alembic', 'cpaas_cli.campaigns') if m in sys.modules])\n"
    )
    run = _fresh("-q", "--db", db_url, "tenant", "list", "-o", "json", code=code)
    assert run.returncode == 0, run.stderr
    assert "LOADED ['cpaas_cli.models.tenancy']" in run.stdout, run.stdout


def test_unknown_command_still_suggests_a_name():
    run = CliRunner().invoke(app, ["reprot"])
    assert run.exit_code == 2
    assert "report" in run.output


def test_a_fresh_process_audits_changes_of_any_group(cli, db_url):
    """The audit flush hooks are registered by every command's session, not by
    whichever group happened to import the audit module (here: agreement)."""
    owner_le(cli)
    c = client(cli)
    run = _fresh(
        "--db",
        db_url,
        "--actor",
        "fresh",
        "agreement",
        "create",
        "AG-F",
        "--company",
        c["name"],
        "--currency",
        "EUR",
        "-o",
        "json",
    )
    assert run.returncode == 0, run.stderr
    ag = json.loads(run.stdout)
    rows = cli.json("audit", "list", "--actor", "fresh")
    assert ("insert", "agreement", str(ag["id"])) in [(r["action"], r["object_type"], r["object_id"]) for r in rows]


def test_a_fresh_process_checks_text_on_every_path(cli, db_url):
    """The text checks of db/checks.py are installed by the engine and session
    factory, not by whichever module a process imported first: a script that
    imports only the engine and one model module is refused a 300-character
    name through the ORM and through a Core INSERT alike."""
    from cpaas_cli.db.engine import dispose_all

    owner_le(cli)
    before = cli.json("tenant", "list")
    dispose_all()
    code = (
        "import sys\n"
        "import sqlalchemy as sa\n"
        "from cpaas_cli.db.engine import get_engine, make_session\n"
        "from cpaas_cli.errors import InvalidInput\n"
        "from cpaas_cli.models.tenancy import Company\n"
        "engine = get_engine(sys.argv[1])\n"
        "assert 'cpaas_cli.db.checks' in sys.modules and 'cpaas_cli.audit.service' in sys.modules\n"
        "for how in ('orm', 'core'):\n"
        "    s = make_session(engine, actor='script')\n"
        "    try:\n"
        "        if how == 'orm':\n"
        "            s.add(Company(name='x' * 300, kind='client'))\n"
        "            s.flush()\n"
        "        else:\n"
        "            s.execute(sa.insert(Company.__table__), [{'name': 'x' * 300, 'kind': 'client'}])\n"
        "    except InvalidInput as exc:\n"
        "        print(how, 'REFUSED', exc.problems[0])\n"
        "    finally:\n"
        "        s.rollback()\n"
        "        s.close()\n"
    )
    run = _fresh(db_url, code=code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "orm REFUSED name: is longer than 200 characters (300 given)",
        "core REFUSED name: is longer than 200 characters (300 given)",
    ]
    assert cli.json("tenant", "list") == before
