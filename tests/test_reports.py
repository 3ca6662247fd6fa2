"""Reports: summary (messages vs parts, shares, cost), charts, campaign report, saved SQL reports."""

from __future__ import annotations

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.edr import Edr
from tests.test_edr_export import WINDOW, add_edrs


def test_summary_counts_messages_and_parts_apart(cli, db_url):
    add_edrs(db_url, 10)
    (total,) = cli.json("report", "summary", *WINDOW)
    # segments alternate 1,2 → 15 parts for 10 messages; statuses cycle over 5 values
    assert (total["messages"], total["parts"]) == (10, 15)
    assert (total["delivered"], total["undelivered"], total["failed"], total["pending"]) == (4, 2, 2, 2)
    assert (total["delivered_pct"], total["failed_pct"]) == ("40.0", "20.0")
    assert (total["cost"], total["currency"]) == ("0.60", "EUR")  # 5 × 0.04 + 5 × 0.08


def test_summary_by_day_in_zone_and_country(cli, db_url):
    add_edrs(db_url, 4)  # 22:30Z, 23:30Z on 1 March, then 00:30Z, 01:30Z on 2 March
    utc = cli.json("report", "summary", *WINDOW, "--by", "day")
    assert [(r["day"], r["messages"]) for r in utc] == [("2026-03-01", 2), ("2026-03-02", 2)]
    madrid = cli.json("report", "summary", *WINDOW, "--by", "day", "--tz", "Europe/Madrid")
    assert [(r["day"], r["messages"]) for r in madrid] == [("2026-03-01", 1), ("2026-03-02", 3)]
    kolkata = cli.json("report", "summary", *WINDOW, "--by", "day", "--tz", "Asia/Kolkata")  # +05:30
    assert [(r["day"], r["messages"]) for r in kolkata] == [("2026-03-02", 4)]
    rows = cli.json("report", "summary", *WINDOW, "--by", "month,country")
    assert [(r["month"], r["country"], r["messages"], r["parts"]) for r in rows] == [
        ("2026-03", "ES", 2, 3),
        ("2026-03", "FR", 2, 3),
    ]
    week = cli.json("report", "summary", *WINDOW, "--by", "week", "--by", "status", "--status", "delivered")
    assert [(r["week"], r["status"], r["messages"]) for r in week] == [("2026-02-23", "delivered", 1)]


def test_summary_keeps_currencies_apart_and_folds_unrated(cli, db_url):
    add_edrs(db_url, 2, tag="a")
    add_edrs(db_url, 1, tag="u", cost=None, currency=None, rating_state="unrated")
    add_edrs(db_url, 1, tag="g", currency="GBP", cost=1_000_000, company_id=1)
    rows = cli.json("report", "summary", *WINDOW, "--by", "country")
    # ES: e-a0 (EUR 0.04), e-u0 (unrated), e-g0 (GBP 1.00): two currencies, the unrated row stays apart
    es = [(r["currency"], r["messages"], r["cost"]) for r in rows if r["country"] == "ES"]
    assert es == [("EUR", 1, "0.04"), ("GBP", 1, "1.00"), (None, 1, None)]
    assert [(r["currency"], r["messages"]) for r in rows if r["country"] == "FR"] == [("EUR", 1)]
    assert cli("report", "summary", *WINDOW, "--agreement", "NOPE", expect=3).exit_code == 3


def test_summary_bad_input(cli):
    assert "unknown dimension" in cli("report", "summary", *WINDOW, "--by", "planet", expect=4).stderr
    assert cli("report", "summary", "--from", "2026-03-01", expect=4).exit_code == 4
    assert cli("report", "summary", *WINDOW, "--by", "day,week", expect=4).exit_code == 4


def test_chart_terminal_and_files(cli, db_url, tmp_path):
    add_edrs(db_url, 30)
    run = cli("report", "chart", "--metric", "count", "--by", "day", *WINDOW, "--width", "80")
    assert "Messages by day" in run.stdout
    png = tmp_path / "c.png"
    cli("report", "chart", "--metric", "cost", *WINDOW, "--out", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "c.svg"
    cli("report", "chart", "--by", "country", *WINDOW, "--out", str(svg))
    assert "<svg" in svg.read_text()[:400]
    assert cli("report", "chart", *WINDOW, "--out", str(tmp_path / "c.gif"), expect=4).exit_code == 4
    assert cli("report", "chart", "--metric", "volume", *WINDOW, expect=4).exit_code == 4


def test_campaign_report(cli, db_url):
    add_edrs(db_url, 10)
    got = cli.json("report", "campaign", "7")  # e-0, e-2, e-4, e-6, e-8
    (total,) = got["totals"]
    assert (total["messages"], total["parts"], total["cost"]) == (5, 5, "0.20")
    assert {r["status"]: r["messages"] for r in got["by_status"]} == {
        "delivered": 1,
        "failed": 1,
        "seen": 1,
        "submitted": 1,
        "undelivered": 1,
    }
    assert {r["country"]: r["messages"] for r in got["by_country"]} == {"ES": 2, "FR": 3}
    assert cli("report", "campaign", "99", expect=3).exit_code == 3


# ------------------------------------------------------------ saved SQL reports

TRAFFIC = """-- messages per country in a window
SELECT country, count(*) AS messages, sum(segments) AS parts
FROM edr
WHERE event_at >= :since AND event_at < :till AND status <> :skip_status  -- a ':literal' in a comment
GROUP BY country
ORDER BY country
"""


def _define(cli, tmp_path, name, sql, *params, expect=0):
    f = tmp_path / f"{name}.sql"
    f.write_text(sql)
    args = ["report", "define", name, "--sql", str(f)]
    for p in params:
        args += ["--param", p]
    if expect == 0:
        return cli.json(*args)
    return cli(*args, expect=expect)


def test_saved_report_binds_and_csv(cli, db_url, tmp_path, report_role):
    add_edrs(db_url, 10)
    r = _define(cli, tmp_path, "traffic", TRAFFIC, "since!:datetime", "till:datetime:2026-04-01", "skip_status:text:x")
    assert [p["name"] for p in r["params"]] == ["since", "till", "skip_status"]
    rows = cli.json("report", "run", "traffic", "--param", "since=2026-03-01T23:00:00Z")
    assert rows == [{"country": "ES", "messages": 3, "parts": 5}, {"country": "FR", "messages": 6, "parts": 9}]
    # a value is a bind, never SQL: the quote is just part of the text compared
    rows = cli.json("report", "run", "traffic", "--param", "since=2026-03-01", "--param", "skip_status=x' OR '1'='1")
    assert sum(r["messages"] for r in rows) == 10
    out = cli("report", "run", "traffic", "--param", "since=2026-03-01", "--param", "skip_status=seen", "-o", "csv")
    assert out.stdout.splitlines() == ["country,messages,parts", "ES,3,4", "FR,5,8"]
    assert "required" in cli("report", "run", "traffic", expect=4).stderr
    assert cli("report", "run", "traffic", "--param", "since=yesterday-ish", expect=4).exit_code == 4
    assert cli("report", "run", "traffic", "--param", "nope=1", expect=4).exit_code == 4
    listed = cli.json("report", "list", "--category", "traffic")
    assert [x["name"] for x in listed] == ["traffic"] and "sql" not in listed[0]
    assert cli.json("report", "show", "traffic")["sql"] == TRAFFIC
    _define(cli, tmp_path, "traffic", TRAFFIC, "since:datetime", "till:datetime", "skip_status", expect=5)  # exists
    assert cli.json("report", "delete", "traffic")["name"] == "traffic"
    assert cli("report", "show", "traffic", expect=3).exit_code == 3


def test_identifier_params_only_from_allow_list(cli, db_url, tmp_path, report_role):
    add_edrs(db_url, 4)
    _define(
        cli,
        tmp_path,
        "by_col",
        "SELECT :x_col AS k, count(*) AS n FROM edr GROUP BY :x_col ORDER BY 1",
        "x_col:ident:country",
    )
    assert cli.json("report", "run", "by_col") == [{"k": "ES", "n": 2}, {"k": "FR", "n": 2}]
    assert [r["k"] for r in cli.json("report", "run", "by_col", "--param", "x_col=sender")] == ["ACME", "INFO"]
    bad = cli("report", "run", "by_col", "--param", "x_col=country; DROP TABLE edr", expect=4)
    assert "not a table or column" in bad.stderr
    _define(cli, tmp_path, "bad_ident", "SELECT :col FROM edr", "col:ident", expect=4)


def test_write_refused_by_text_check(cli, tmp_path, report_role):
    for sql in ("DELETE FROM edr", "SELECT 1; DELETE FROM edr", "UPDATE edr SET cost = 0", "PRAGMA query_only=OFF"):
        _define(cli, tmp_path, "w", sql, expect=4)
    _define(cli, tmp_path, "u", "SELECT * FROM edr WHERE id = :id", expect=4)  # undeclared bind
    _define(cli, tmp_path, "v", "SELECT 1", "id:int", expect=4)  # declared, unused
    # a ';' inside a literal is not a second statement
    assert cli.json("report", "run", _define(cli, tmp_path, "semi", "SELECT 'a;b' AS t")["name"]) == [{"t": "a;b"}]


def test_write_refused_by_read_only_transaction(cli, db_url, tmp_path, report_role):
    add_edrs(db_url, 3)
    engine = get_engine(db_url)
    if engine.dialect.name == "postgresql":
        sql = "WITH gone AS (DELETE FROM edr RETURNING id) SELECT count(*) AS n FROM gone"
    else:
        sql = "WITH ids AS (SELECT id FROM edr) DELETE FROM edr WHERE id IN (SELECT id FROM ids)"
    _define(cli, tmp_path, "sneaky", sql)  # passes the text check: starts with WITH
    run = cli("report", "run", "sneaky", expect=4)
    assert "read-only" in run.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Edr.__table__)).scalar() == 3


def test_local_days_cut_the_window_at_local_midnights():
    from datetime import UTC, datetime

    from cpaas_cli.reports.summary import local_days

    since, till = datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 31, 6, tzinfo=UTC)
    madrid = list(local_days(since, till, "Europe/Madrid"))
    assert [(lo.isoformat(), d.isoformat(), shift) for lo, _, d, shift in madrid] == [
        ("2026-03-28T12:00:00+00:00", "2026-03-28", False),
        ("2026-03-28T23:00:00+00:00", "2026-03-29", True),  # clocks go forward at 02:00 that night
        ("2026-03-29T22:00:00+00:00", "2026-03-30", False),
        ("2026-03-30T22:00:00+00:00", "2026-03-31", False),
    ]
    for pieces in (madrid, list(local_days(since, till, "Asia/Kolkata")), list(local_days(since, till, "UTC"))):
        assert pieces[0][0] == since and pieces[-1][1] == till
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))  # no gap, no overlap
    assert [lo.strftime("%H:%M") for lo, *_ in local_days(since, till, "Asia/Kolkata")][1:] == ["18:30"] * 3


def test_summary_by_local_day_across_a_dst_night(cli, db_url):
    from datetime import UTC, datetime

    # Madrid: 28 March is +01:00, 30 March +02:00; the clocks go forward in the night of the 29th
    for tag, at in (
        ("a", datetime(2026, 3, 28, 22, 59, tzinfo=UTC)),  # 23:59 on the 28th
        ("b", datetime(2026, 3, 28, 23, 0, tzinfo=UTC)),  # 00:00 on the 29th
        ("c", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # 03:30 (summer time) on the 29th
        ("d", datetime(2026, 3, 29, 21, 59, tzinfo=UTC)),  # 23:59 on the 29th
        ("e", datetime(2026, 3, 29, 22, 0, tzinfo=UTC)),  # 00:00 on the 30th
    ):
        add_edrs(db_url, 1, tag=tag, event_at=at)
    window = ["--from", "2026-03-28", "--till", "2026-04-01", "--tz", "Europe/Madrid"]
    rows = cli.json("report", "summary", *window, "--by", "day,country")
    assert [(r["day"], r["messages"]) for r in rows] == [("2026-03-28", 1), ("2026-03-29", 3), ("2026-03-30", 1)]
    weeks = cli.json("report", "summary", *window, "--by", "week")  # Monday 30 March starts a week
    assert [(r["week"], r["messages"]) for r in weeks] == [("2026-03-23", 4), ("2026-03-30", 1)]
    utc = cli.json("report", "summary", "--from", "2026-03-29", "--till", "2026-03-30", "--by", "day")
    assert [(r["day"], r["messages"]) for r in utc] == [("2026-03-29", 3)]
    assert cli.json("report", "summary", "--from", "2026-05-01", "--till", "2026-06-01", "--by", "day") == []


def test_identifier_allow_list_is_the_whole_schema_in_a_fresh_process(cli, db_url, tmp_path, report_role):
    """`report run` in a new process loads only a few model modules: a column of
    another table (campaign.recipients) is still a name of the schema."""
    import json
    import subprocess
    import sys

    from cpaas_cli.db.engine import dispose_all

    _define(cli, tmp_path, "by_ident", "SELECT :x_col AS v FROM campaign", "x_col:ident:id")
    dispose_all()
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, "-o", "json", "report", "run", "by_ident"]
    done = subprocess.run([*cmd, "--param", "x_col=recipients"], capture_output=True, text=True, timeout=120)
    assert (done.returncode, json.loads(done.stdout or "null")) == (0, []), done.stderr
    bad = subprocess.run([*cmd, "--param", "x_col=no_such_column"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 4 and "not a table or column name of the schema" in bad.stderr
