"""Recurring fees: the pure scheduler, and `cpaas fee-rules run` through the ledger with retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cpaas_cli.recurring import schedule as sch
from tests.helpers import client, owner_le


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def starts(rule, n=5):
    out = []
    for s in sch.period_starts(rule):
        out.append(s)
        if len(out) == n:
            break
    return out


def test_monthly_starts_day_31_and_days_before():
    r = sch.Rule("usage", t("2026-01-15T00:00:00Z"), every="month", start_day=31, days_before=2)
    assert starts(r, 4) == [
        t("2026-01-31T00:00:00Z"),
        t("2026-02-28T00:00:00Z"),
        t("2026-03-31T00:00:00Z"),
        t("2026-04-30T00:00:00Z"),
    ]
    assert sch.due_at(r, t("2026-02-28T00:00:00Z")) == t("2026-02-26T00:00:00Z")
    due = sch.due(r, t("2026-02-26T00:00:00Z"), {})
    assert [(a.period_start, a.at, a.number) for a in due] == [
        (t("2026-01-31T00:00:00Z"), t("2026-01-29T00:00:00Z"), 1),
        (t("2026-02-28T00:00:00Z"), t("2026-02-26T00:00:00Z"), 1),
    ]


def test_weekly_in_a_zone_and_till():
    r = sch.Rule(
        "usage", t("2026-03-01T00:00:00Z"), t("2026-03-24T00:00:00Z"), every="week", start_day=1, tz="Europe/Madrid"
    )
    # Mondays at local midnight; DST starts 29 Mar (after the end).
    assert starts(r, 9) == [
        t("2026-03-01T23:00:00Z"),
        t("2026-03-08T23:00:00Z"),
        t("2026-03-15T23:00:00Z"),
        t("2026-03-22T23:00:00Z"),
    ]


def test_due_never_before_the_rule_starts():
    r = sch.Rule("usage", t("2026-01-01T00:00:00Z"), every="month", start_day=1, days_before=3)
    assert sch.due(r, t("2026-01-01T00:00:00Z"), {})[0].at == t("2026-01-01T00:00:00Z")
    assert len(sch.due(r, t("2026-01-28T23:59:59Z"), {})) == 1
    assert len(sch.due(r, t("2026-01-29T00:00:00Z"), {})) == 2


def test_setup_once_and_retry_bookkeeping():
    r = sch.Rule("setup", t("2026-01-10T12:00:00Z"), retry_hours=6, max_retries=2)
    assert starts(r, 5) == [t("2026-01-10T12:00:00Z")]
    (a1,) = sch.due(r, t("2026-02-01T00:00:00Z"), {})
    s1 = sch.after(r, a1, charged=False)
    assert (s1.status, s1.attempts, s1.next_attempt_at) == ("retrying", 1, t("2026-01-10T18:00:00Z"))
    runs = {a1.period_start: s1}
    assert sch.due(r, t("2026-01-10T17:59:59Z"), runs) == []
    (a2,) = sch.due(r, t("2026-01-10T18:00:00Z"), runs)
    assert (a2.number, a2.at) == (2, t("2026-01-10T18:00:00Z"))
    s2 = sch.after(r, a2, charged=False)
    (a3,) = sch.due(r, s2.next_attempt_at, {a1.period_start: s2})
    s3 = sch.after(r, a3, charged=False)
    assert (s3.status, s3.attempts, s3.next_attempt_at) == ("failed", 3, None)
    assert sch.due(r, t("2027-01-01T00:00:00Z"), {a1.period_start: s3}) == []
    assert sch.after(r, a3, charged=True).status == "charged"
    assert sch.due(r, t("2030-01-01T00:00:00Z"), {a1.period_start: sch.RunState("charged", 1)}) == []


def test_rule_problems():
    bad = sch.Rule(
        "usage", t("2026-01-01T00:00:00Z"), t("2025-01-01T00:00:00Z"), every="week", start_day=8, retry_hours=0
    )
    assert {f for f, _ in sch.problems(bad)} == {"start_day", "retry_hours", "effective_till"}


def test_catch_up_many_periods_in_order():
    r = sch.Rule("usage", t("2026-01-01T00:00:00Z"), every="month", start_day=1)
    got = sch.due(r, t("2026-12-31T00:00:00Z"), {})
    assert [a.period_start.month for a in got] == list(range(1, 13))
    assert all(b.at - a.at >= timedelta(days=28) for a, b in zip(got, got[1:], strict=False))


def _agreement(cli, *extra):
    owner_le(cli)
    c = client(cli)
    cli.json("agreement", "create", "AG-1", "--company", c["name"], "--currency", "EUR", "--from", "2026-01-01", *extra)


def test_fees_run_charges_retries_and_is_idempotent(cli):
    _agreement(cli, "--credit-limit", "0")
    rule = cli.json(
        "fee-rules", "add", "--agreement", "AG-1", "--subject-kind", "sender_id", "--subject-ref", "42",
        "--kind", "usage", "--every", "month", "--start-day", "1", "--days-before", "1", "--amount", "500",
        "--retry-hours", "1", "--max-retries", "2", "--from", "2026-01-15", "--description", "ACME alpha",
    )  # fmt: skip
    setup = cli.json(
        "fee-rules", "add", "--agreement", "AG-1", "--subject-kind", "sender_id", "--subject-ref", "42",
        "--kind", "setup", "--amount", "50", "--from", "2026-01-20T10:00:00Z", "--max-retries", "5",
    )  # fmt: skip
    # No funds: both due attempts fail and wait for a retry.
    got = cli.json("fee-rules", "run", "--as-of", "2026-01-31T00:00:00Z")
    assert [(a["rule_id"], a["status"], a["at"], a["next_attempt_at"]) for a in got] == [
        (rule["id"], "retrying", "2026-01-31T00:00:00Z", "2026-01-31T01:00:00Z"),
        (setup["id"], "retrying", "2026-01-20T10:00:00Z", "2026-01-20T11:00:00Z"),
    ]
    assert cli.json("fee-rules", "run", "--as-of", "2026-01-31T00:00:00Z")[0]["rule_id"] == setup["id"]
    cli.json(
        "payment",
        "add",
        "--agreement",
        "AG-1",
        "--reference",
        "P1",
        "--amount",
        "1000",
        "--confirmed",
        "--date",
        "2026-01-01",
    )
    got = cli.json("fee-rules", "run", "--as-of", "2026-01-31T02:00:00Z")
    assert sorted((a["rule_id"], a["status"], a["attempt"]) for a in got) == [
        (rule["id"], "charged", 2),
        (setup["id"], "charged", 3),
    ]
    assert cli.json("fee-rules", "run", "--as-of", "2026-01-31T02:00:00Z") == []
    assert cli.json("balance", "show", "AG-1")["balance"] == "450.00"
    runs = cli.json("fee-rules", "runs")
    assert {r["status"] for r in runs} == {"charged"} and all(r["charge_id"] for r in runs)
    # Next month: 500 more is beyond the balance (450, limit 0): retried twice, then failed.
    for at, status in (
        ("2026-02-28T00:00:00Z", "retrying"),
        ("2026-02-28T01:00:00Z", "retrying"),
        ("2026-02-28T02:00:00Z", "failed"),
    ):
        (a,) = cli.json("fee-rules", "run", "--as-of", at)
        assert (a["period_start"], a["status"]) == ("2026-03-01T00:00:00Z", status)
    assert cli.json("fee-rules", "run", "--as-of", "2026-03-10T00:00:00Z") == []
    assert cli.json("balance", "show", "AG-1")["balance"] == "450.00"
    # The charged fees are invoice lines.
    inv = cli.json("invoice", "run", "--as-of", "2026-02-01T00:00:00Z")
    lines = cli.json("invoice", "show", str(inv[0]["id"]))["lines"]
    assert sorted((ln["description"], ln["net"]) for ln in lines) == [
        ("sender id 42 setup fee", "50.00"),
        ("sender id 42 usage fee: ACME alpha", "500.00"),
    ]


def test_fees_run_dry_run_and_rule_end(cli):
    _agreement(cli)
    r = cli.json(
        "fee-rules", "add", "--agreement", "AG-1", "--subject-kind", "sender_id", "--subject-ref", "7",
        "--kind", "usage", "--every", "week", "--start-day", "1", "--amount", "5", "--from", "2026-01-01",
    )  # fmt: skip
    assert len(cli.json("fee-rules", "run", "--as-of", "2026-01-20T00:00:00Z", "--dry-run")) == 3
    assert cli.json("fee-rules", "runs") == []
    cli.json("fee-rules", "end", str(r["id"]), "--at", "2026-01-13T00:00:00Z")
    assert [a["period_start"] for a in cli.json("fee-rules", "run", "--as-of", "2026-03-01T00:00:00Z")] == [
        "2026-01-05T00:00:00Z",
        "2026-01-12T00:00:00Z",
    ]
    bad = cli("fee-rules", "add", "--agreement", "AG-1", "--subject-kind", "x", "--subject-ref", "1", "--kind", "usage",
              "--every", "week", "--start-day", "9", "--amount", "-1", "--from", "2026-01-01", expect=4)  # fmt: skip
    assert "start_day" in bad.stderr and "amount" in bad.stderr


def test_the_old_fees_spelling_still_works_hidden_with_a_warning(cli):
    """`cpaas fees` (one letter from `cpaas fee`) is now `cpaas fee-rules`; the old
    tree (`fees rule add|list|end`, `fees run|runs`) works for a release, is not
    listed, and says on stderr that it is deprecated."""
    from cpaas_cli.cli.fee_rules import LEGACY_WARNING

    _agreement(cli)
    args = ["--agreement", "AG-1", "--subject-kind", "sender_id", "--subject-ref", "42", "--kind", "usage"]
    old = cli("fees", "rule", "add", *args, "--from", "2026-01-01T00:00:00Z", "--amount", "3", "-o", "json")
    assert old.stderr == LEGACY_WARNING + "\n"
    new = cli("fee-rules", "add", *args, "--from", "2026-02-01T00:00:00Z", "--amount", "4", "-o", "json")
    assert new.stderr == ""
    listed = cli("fees", "rule", "list", "-o", "json")
    assert [r["id"] for r in listed.json] == [old.json["id"], new.json["id"]]
    assert listed.json == cli.json("fee-rules", "list")
    ran = cli("fees", "run", "--as-of", "2026-01-15T00:00:00Z", "-o", "json")
    assert ran.stderr.startswith(LEGACY_WARNING + "\n") and len(ran.json) == 1
    assert cli("fees", "runs", "-o", "json").json == cli.json("fee-rules", "runs")
    assert cli("-q", "fees", "runs", "-o", "json").stderr == ""  # --quiet silences the warning as any message
    listed_names = [line.split()[0] for line in cli("--help").stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert "fee-rules" in listed_names and "fee" in listed_names and "fees" not in listed_names
    assert "deprecated" in cli("fees", "--help").stdout.lower()
