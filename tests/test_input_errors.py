"""User mistakes at the edges of the input (issue 23, item 9): huge amounts,
over-long CSV cells, deeply nested documents, files that are not UTF-8, times
at the ends of the calendar, bad zones. Each is one `error: …` line on stderr
and the documented exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pytest
import sqlalchemy as sa

from cpaas_cli.campaigns.lifecycle import resolve_local
from cpaas_cli.errors import InvalidInput
from cpaas_cli.imports.readers import CSV_READ_LIMIT, MAX_FIELD_CHARS
from cpaas_cli.money import MAX_AMOUNT, MAX_MICROS, MoneyError, to_micros
from cpaas_cli.timeutil import TimeError, parse_date, parse_time
from tests.conftest import PG_URL
from tests.helpers import client, owner_le

MAX_TEXT = "9,223,372,036,854.775807"


def one_line(run) -> str:
    """The single stderr line of a failed command (no traceback, no more lines)."""
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    "text", ["1e30", "1e400", "-1e400", "12345678901234567890123", "9223372036854.775808", "1" * 500]
)
def test_amount_past_the_64_bit_range_is_refused_naming_the_maximum(text):
    with pytest.raises(MoneyError) as err:
        to_micros(text)
    assert MAX_TEXT in str(err.value)
    assert len(str(err.value)) < 120  # a 500-digit number is not echoed whole


def test_largest_amount_is_accepted():
    assert str(MAX_AMOUNT) == "9223372036854.775807" and MAX_MICROS == 2**63 - 1
    assert to_micros("9223372036854.775807") == MAX_MICROS
    assert to_micros("-9223372036854.775807") == -MAX_MICROS


@pytest.mark.parametrize("text", ["1e30", "1e400", "12345678901234567890123", "9223372036854.775808"])
def test_huge_credit_limit_and_payment_are_exit_4_naming_field_and_maximum(cli, text):
    owner_le(cli)
    client(cli)
    line = one_line(
        cli("agreement", "create", "AG", "--company", "Client A", "--currency", "EUR", "--credit-limit", text, expect=4)
    )
    assert "credit_limit" in line and MAX_TEXT in line
    cli.json("agreement", "create", "AG", "--company", "Client A", "--currency", "EUR")
    line = one_line(
        cli("payment", "add", "--agreement", "AG", "--reference", "P1", "--amount", text, "--confirmed", expect=4)
    )
    assert "amount" in line and MAX_TEXT in line
    assert cli.json("payment", "list") == []


# ---------------------------------------------------------------- CSV cells


def _contacts_file(tmp_path, cell: str):
    f = tmp_path / "contacts.csv"
    f.write_text(f"phone,first_name\n+34600000001,Ann\n+34600000002,{cell}\n", encoding="utf-8")
    return f


@pytest.mark.parametrize(
    ("size", "named"),
    [(MAX_FIELD_CHARS + 1, "first_name"), (CSV_READ_LIMIT + 10, "a cell")],
)
def test_over_long_csv_cell_is_a_row_problem(cli, tmp_path, size, named):
    owner_le(cli)
    client(cli)
    f = _contacts_file(tmp_path, "x" * size)
    args = ["contacts", "import", str(f), "-c", "Client A", "-g", "G", "--create-group", "-m", "phone=phone"]
    line = one_line(cli(*args, "-m", "first_name=first_name", expect=4))
    assert f"row 3: {named}:" in line and f"{MAX_FIELD_CHARS:,}" in line
    # every importer reads CSV through the same reader
    assert f"row 3: {named}:" in one_line(cli("edr", "ingest", str(f), expect=4))
    t = tmp_path / "tenants.csv"
    head = "name,type,le_name,le_legal_name,le_country"
    t.write_text(f"{head}\nA,client,A,A SL,ES\nB,client,B,B SL,{'x' * size}\n", encoding="utf-8")
    assert "row 3:" in one_line(cli("tenant", "import", str(t), expect=4))
    assert [c["name"] for c in cli.json("tenant", "list")] == ["System owner", "Client A"]


def test_csv_cell_at_the_limit_is_read(cli, tmp_path):
    owner_le(cli)
    client(cli)
    f = _contacts_file(tmp_path, "y" * MAX_FIELD_CHARS)
    args = ["contacts", "import", str(f), "-c", "Client A", "-g", "G", "--create-group", "-m", "phone=phone"]
    out = cli.json(*args, "-m", "comments=first_name")
    assert out["inserted"] == 2, out


def test_over_long_header_cell_is_row_1(cli, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("name," + "h" * (MAX_FIELD_CHARS + 1) + "\nA,client\n", encoding="utf-8")
    assert "row 1: column 2:" in one_line(cli("tenant", "import", str(f), expect=4))


# ---------------------------------------------------------------- nested and non-UTF-8 documents


def test_deeply_nested_jsonl_line_is_exit_4_naming_the_line(cli, tmp_path):
    owner_le(cli)
    client(cli)
    f = tmp_path / "c.jsonl"
    f.write_text('{"phone": "34600000001"}\n{"phone": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    args = ["contacts", "import", str(f), "-c", "Client A", "-g", "G", "--create-group", "-m", "phone=phone"]
    assert one_line(cli(*args, expect=4)) == "error: c.jsonl: line 2 is nested too deeply"
    assert one_line(cli("edr", "ingest", str(f), expect=4)) == "error: c.jsonl: line 2 is nested too deeply"


@pytest.fixture
def service(cli):
    cli.json("service", "create", "S", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "S", "--from", "2026-01-01")
    return "S"


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: " + "[" * 5000 + "]" * 5000 + "\n", 1), ("root:\n  child:\n    x: " + "[" * 150 + "]" * 150 + "\n", 3)],
)
def test_deeply_nested_yaml_tree_is_exit_4_naming_the_line(cli, tmp_path, service, text, line):
    f = tmp_path / "tree.yaml"
    f.write_text(text, encoding="utf-8")
    got = one_line(cli("service", "tree", "apply", service, str(f), expect=4))
    assert got == f"error: tree.yaml: line {line}: nested deeper than 100 levels"


def test_deeply_nested_json_tree_is_exit_4(cli, tmp_path, service):
    f = tmp_path / "tree.json"
    f.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert one_line(cli("service", "tree", "apply", service, str(f), expect=4)) == "error: tree.json: nested too deeply"


def test_yaml_tree_not_utf8_names_file_and_offset(cli, tmp_path, service):
    f = tmp_path / "tree.yaml"
    f.write_bytes(b"# caf\xe9\n")
    line = one_line(cli("service", "tree", "apply", service, str(f), expect=4))
    assert "tree.yaml is not UTF-8" in line and "offset 5" in line and "0xe9" in line


def test_status_map_not_utf8_or_nested_is_exit_4(tmp_path):
    from cpaas_cli.dispatch.receipts import StatusMap

    f = tmp_path / "map.yaml"
    f.write_bytes(b"stat:\n  DELIVRD: delivered # \xff\n")
    with pytest.raises(InvalidInput, match=r"--status-map: map.yaml is not UTF-8 .*offset 29"):
        StatusMap.load(f)
    f.write_text("stat: " + "[" * 3000 + "]" * 3000, encoding="utf-8")
    with pytest.raises(InvalidInput, match="line 1: nested deeper than 100 levels"):
        StatusMap.load(f)


def test_latin1_sql_file_names_file_and_offset(cli, tmp_path):
    f = tmp_path / "r.sql"
    f.write_bytes(b"SELECT 1 AS caf\xe9\n")
    line = one_line(cli("report", "define", "R", "--sql", str(f), expect=4))
    assert line == "error: --sql: r.sql is not UTF-8 text (byte 0xe9 at offset 15); save it as UTF-8"
    f.write_bytes(b"\xef\xbb\xbfSELECT 1 AS one\n")  # a BOM is fine
    cli.json("report", "define", "R", "--sql", str(f))


# ---------------------------------------------------------------- times at the ends of the calendar


@pytest.fixture
def whole_calendar(tmp_path, monkeypatch):
    """Business dates allowed from year 1 to 9999 ([limits], in process and for the
    CLI), so that what is tested is the guard against the calendar's ends (no
    OverflowError), not the business-date range (tests/test_input_limits.py)."""
    from cpaas_cli import timeutil

    cfg = tmp_path / "wide.toml"
    cfg.write_text('[limits]\nmin_date = "0001-01-01"\nmax_date = "9999-12-31"\n')
    monkeypatch.setenv("CPAAS_CONFIG", str(cfg))
    timeutil.set_date_range(lambda: (date(1, 1, 1), date(9999, 12, 31)))
    yield
    timeutil.set_date_range(None)


@pytest.mark.parametrize(
    ("text", "tz"),
    [
        ("0001-01-01", "Asia/Tokyo"),
        ("0001-01-01", "UTC"),
        ("0001-01-01", "America/New_York"),
        ("9999-12-31T23:00", "America/New_York"),
        ("9999-12-31T23:00", "UTC"),
        ("9999-12-31T23:59:59-05:00", "UTC"),
    ],
)
def test_time_at_year_1_or_9999_is_a_time_error(text, tz, whole_calendar):
    with pytest.raises(TimeError, match="out of range"):
        parse_time(text, tz)


def test_date_at_year_1_or_9999_is_a_time_error(whole_calendar):
    for text in ("0001-01-01", "9999-12-31"):
        with pytest.raises(TimeError, match="out of range"):
            parse_date(text)
    assert parse_date("9998-12-31").year == 9998


@pytest.mark.parametrize(
    "args",
    [
        ("agreement", "create", "X", "--company", "Client A", "--currency", "EUR", "--from", "0001-01-01",
         "--tz", "Asia/Tokyo"),
        ("audit", "list", "--from", "0001-01-01T00:00+09:00"),
        ("audit", "list", "--from", "9999-12-31T23:59-05:00"),
        ("invoice", "run", "--as-of", "9999-12-31T23:59:59"),
        ("invoice", "list", "--from", "0001-01-01T00:00+09:00"),
        ("fee-rules", "run", "--as-of", "9999-12-31T23:00-05:00"),
    ],
)  # fmt: skip
def test_time_options_at_the_ends_of_the_calendar_are_exit_4_naming_the_option(cli, args, whole_calendar):
    owner_le(cli)
    client(cli)
    line = one_line(cli(*args, expect=4))
    option = next(a for a in args if a in ("--from", "--as-of"))
    assert line.startswith(f"error: {option}: out of range")


@pytest.mark.parametrize(("text", "tz"), [("0001-01-01 00:00", "Asia/Tokyo"), ("9999-12-31 23:00", "America/Lima")])
def test_campaign_schedule_at_the_ends_of_the_calendar(text, tz, whole_calendar):
    with pytest.raises(InvalidInput, match="^at: out of range"):
        resolve_local(text, tz)


def test_bad_tz_is_reported_against_tz(cli):
    owner_le(cli)
    client(cli)
    base = ("agreement", "create", "X", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    assert one_line(cli(*base, "--tz", "Mars/Base", expect=4)) == "error: --tz: not an IANA time zone: 'Mars/Base'"
    line = one_line(cli(*base, "--till", "2027-01-01", "--till-tz", "Mars/Base", expect=4))
    assert line == "error: --till-tz: not an IANA time zone: 'Mars/Base'"


# ---------------------------------------------------------------- database URLs (fresh processes)


def _fresh(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CPAAS_DATABASE_URL", "CPAAS_CONFIG")}
    return subprocess.run([sys.executable, "-m", "cpaas_cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("port", ["abc", "99999", "0"])
@pytest.mark.parametrize("command", [("tenant", "list"), ("db", "upgrade")])
def test_db_url_with_a_bad_port_is_exit_1_one_line(port, command):
    run = _fresh("--db", f"postgresql://someone:s3cret@127.0.0.1:{port}/cpaas", *command)
    assert run.returncode == 1, run.stderr
    assert run.stderr == "error: database URL is not valid: the port must be a number from 1 to 65535\n"
    assert "s3cret" not in run.stderr


@pytest.mark.skipif(not PG_URL, reason="needs the PostgreSQL server (CPAAS_TEST_PG_URL)")
@pytest.mark.parametrize("command", [("tenant", "list"), ("db", "upgrade"), ("serve", "--once")])
def test_missing_postgresql_role_says_cannot_connect(command):
    url = sa.engine.make_url(PG_URL).set(username="cpaas_no_such_role", password=None)
    run = _fresh("--db", url.render_as_string(hide_password=False), *command)
    assert run.returncode == 1, run.stderr
    assert run.stderr == 'error: cannot connect: role "cpaas_no_such_role" does not exist\n'


# ---------------------------------------------------------------- tenant delete


def test_tenant_delete_names_what_blocks_it(cli, tmp_path):
    owner_le(cli)
    client(cli, "Busy")
    f = tmp_path / "c.csv"
    f.write_text("phone\n+34600000001\n+34600000002\n", encoding="utf-8")
    cli.json("contacts", "import", str(f), "-c", "Busy", "-g", "G", "--create-group", "-m", "phone=phone")
    for args in (("tenant", "delete", "Busy", "--yes"), ("tenant", "delete", "Busy", "--dry-run")):
        line = one_line(cli(*args, expect=5))
        assert line.startswith("error: 'Busy' still has ")
        for what in ("contacts (2)", "contact groups (1)", "contact imports (1)"):
            assert what in line
        assert "FOREIGN KEY" not in line and "foreign key" not in line
    assert "Busy" in [c["name"] for c in cli.json("tenant", "list")]
    client(cli, "Idle")
    cli.json("tenant", "delete", "Idle", "--yes")
    assert "Idle" not in [c["name"] for c in cli.json("tenant", "list")]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_edr_times_past_the_calendar_in_utc_are_row_problems(cli, tmp_path, suffix):
    from tests.test_money_cli import edr_file, row, setup

    setup(cli)
    rows = [row(1), row(2, prepared_at="0001-01-01T00:00:00+05:00"), row(3, submitted_at="9999-12-31T23:00:00-05:00")]
    if suffix == "jsonl":
        f = edr_file(tmp_path / "e.jsonl", rows)
    else:
        f = tmp_path / "e.csv"
        f.write_text(",".join(rows[0]) + "\n" + "".join(",".join(r.values()) + "\n" for r in rows), encoding="utf-8")
    run = cli("edr", "ingest", str(f), expect=4)
    assert "Traceback" not in run.stderr
    first = 2 if suffix == "csv" else 1
    assert f"row {first + 1}: prepared_at: out of range" in run.stderr
    assert f"row {first + 2}: submitted_at: out of range" in run.stderr
    assert cli.json("edr", "list") == []


def test_huge_tax_rate_is_named_as_a_percentage(cli):
    owner_le(cli)
    client(cli)
    base = ("agreement", "create", "AG", "--company", "Client A", "--currency", "EUR")
    line = one_line(cli(*base, "--tax-rate", "1e400", expect=4))
    assert "tax_rate: a tax rate is a percentage from 0 to 100, got '1e400'" in line


def test_huge_number_in_a_custom_field_is_a_row_problem(cli, tmp_path):
    owner_le(cli)
    client(cli)
    cli.json("contacts", "field", "add", "Score", "--type", "number", "-c", "Client A")
    f = tmp_path / "c.csv"
    f.write_text("phone,score\n+34600000001,12\n+34600000002,1e400\n", encoding="utf-8")
    args = ["contacts", "import", str(f), "-c", "Client A", "-g", "G", "--create-group", "-m", "phone=phone"]
    line = one_line(cli(*args, "-m", "field:Score=score", expect=4))
    assert "row 3:" in line and "'1e400' is out of range" in line


def test_config_file_not_utf8_is_one_line(db_url, tmp_path):
    f = tmp_path / "cpaas.toml"
    f.write_bytes(b'actor = "caf\xe9"\n')
    run = _fresh("--config", str(f), "--db", db_url, "tenant", "list")
    assert run.returncode == 4, run.stderr
    assert run.stderr == "error: config file: cpaas.toml is not UTF-8 text (byte 0xe9 at offset 12); save it as UTF-8\n"
