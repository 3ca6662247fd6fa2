"""Audit trail (002 §12): every change writes a row with actor, action, object, old and new values."""

from __future__ import annotations

from cpaas_cli.audit.service import MASK, mask
from tests.helpers import client, owner_le


def test_changes_are_audited_with_actor_and_values(cli):
    owner_le(cli)
    c = client(cli, "Audited")
    cli.json("tenant", "update", "Audited", "--description", "v2")
    cli.json("tenant", "disable", "Audited")
    rows = cli.json("audit", "list", "--object", "company", "--object-id", str(c["id"]))
    actions = [(r["action"], r["command"]) for r in rows]
    assert actions == [("update", "tenant disable"), ("update", "tenant update"), ("insert", "tenant create")]
    assert all(r["actor"] == "tester" for r in rows)
    update = rows[1]
    assert update["old"] == {"description": None} and update["new"] == {"description": "v2"}
    assert rows[0]["old"] == {"enabled": True} and rows[0]["new"] == {"enabled": False}
    assert rows[2]["new"]["name"] == "Audited" and rows[2]["company_id"] == c["id"]


def test_filters(cli):
    owner_le(cli)
    client(cli, "One")
    cli("--actor", "alice", "tenant", "create", "Two")
    # --actor given twice: the later one wins, as with any option.
    mine = cli.json("audit", "list", "--actor", "alice")
    assert len(mine) == 1 and mine[0]["new"]["name"] == "Two"
    assert cli.json("audit", "list", "--from", "2100-01-01") == []
    assert len(cli.json("audit", "list", "--till", "2100-01-01")) >= 4
    deletes = cli.json("audit", "list", "--action", "delete")
    assert deletes == []
    by_company = cli.json("audit", "list", "--company", "One")
    assert {r["object_type"] for r in by_company} == {"company", "legal_entity"}


def test_failed_commands_leave_no_audit_rows(cli):
    owner_le(cli)
    before = len(cli.json("audit", "list"))
    cli("agreement", "create", "X", "--company", "1", "--currency", "EUR", expect=4)
    cli("tenant", "create", "Bad", "--parent", "Nope", expect=3)
    assert len(cli.json("audit", "list")) == before


def test_import_writes_one_summary_row(cli, tmp_path):
    owner_le(cli)
    f = tmp_path / "t.csv"
    f.write_text("name,type,le_name,le_legal_name,le_country\nImp,client,Imp LE,Imp SA,FR\n")
    cli.json("tenant", "import", str(f))
    rows = cli.json("audit", "list", "--action", "import")
    assert len(rows) == 1 and rows[0]["new"]["companies"] == 1


def test_secrets_are_masked():
    masked = mask(
        {"password": "hunter2", "api_token": "abc", "name": "x", "nested": {"client_secret": "s"}, "token": None}
    )
    assert masked == {
        "password": MASK,
        "api_token": MASK,
        "name": "x",
        "nested": {"client_secret": MASK},
        "token": None,
    }


def test_a_session_of_a_fresh_process_is_audited(cli, db_url):
    """The flush hooks do not depend on which modules a process imported: a
    session made with only the engine and one model module loaded still writes
    the audit row and moves ``updated_at``."""
    import subprocess
    import sys

    from cpaas_cli.db.engine import dispose_all

    owner_le(cli)
    c = client(cli, "Fresh")
    dispose_all()
    code = (
        "import sys\n"
        "from cpaas_cli.db.engine import get_engine, session_scope\n"
        "from cpaas_cli.models.tenancy import Company\n"
        "with session_scope(get_engine(sys.argv[1]), actor='script', command='fix') as s:\n"
        f"    s.get(Company, {c['id']}).description = 'from a script'\n"
    )
    done = subprocess.run([sys.executable, "-c", code, db_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = cli.json("audit", "list", "--object", "company", "--object-id", str(c["id"]))
    assert (rows[0]["actor"], rows[0]["command"], rows[0]["new"]) == ("script", "fix", {"description": "from a script"})
    shown = cli.json("tenant", "show", "Fresh")
    assert shown["updated_at"] != c["updated_at"]
