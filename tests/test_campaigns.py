"""Sender IDs, templates, campaign creation, estimate, scheduling and every lifecycle transition."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.campaigns import OutboundMessage
from tests.helpers import client, owner_le
from tests.test_catalog import EXAMPLE1

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# Spanish numbers on a Movistar range (priced as the rest of Spain, 0.08 in EXAMPLE1) and a French one.
ES1, ES2, FR1 = "34620111222", "34620111333", "33612345678"


@pytest.fixture(autouse=True)
def pinned_clock():
    clock.set_clock(lambda: NOW)
    yield
    clock.set_clock(None)


def setup(cli, *, credit: str | None = None, moderation: bool = False) -> None:
    owner_le(cli)
    client(cli)
    if moderation:
        cli.json("tenant", "update", "Client A", "--moderation")
    args = ["agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01"]
    if credit is not None:
        args += ["--credit-limit", credit]
    cli.json(*args)
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-01-01")
    cli("service", "tree", "apply", "SMS service", str(EXAMPLE1))
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    cli.json("sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", "--active")


def create(cli, *args, expect=0):
    run = cli("campaign", "create", "--company", "Client A", "--sender", "ACME", *args, "-o", "json", expect=expect)
    return run.json if expect == 0 else run


def queue(db_url, campaign_id):
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        q = sa.select(t.c.phone, t.c.text, t.c.encoding, t.c.segments, t.c.state, t.c.sender, t.c.country)
        return [dict(r._mapping) for r in conn.execute(q.where(t.c.campaign_id == campaign_id).order_by(t.c.id))]


# ---------------------------------------------------------------- sender IDs


def test_sender_ids(cli):
    setup(cli)
    d = cli.json("sender", "add", "INFO", "--company", "Client A", "--agreement", "AG-1", "--name", "Info")
    assert (d["status"], d["channel"], d["type"], d["agreement"]) == ("draft", "sms", "alphanumeric", "AG-1")
    # only an active sender ID can be used
    run = create(cli, "--to", ES1, "--text", "hi", expect=None)
    assert run.exit_code == 0
    run = cli("campaign", "create", "--company", "Client A", "--sender", "INFO", "--to", ES1, "--text", "x", expect=4)
    assert "draft" in run.stderr
    cli.json("sender", "activate", "INFO")
    assert cli.json("sender", "disable", "INFO")["status"] == "disabled"
    cli("sender", "disable", "INFO", expect=5)
    # formats per type; duplicate; agreement of another company
    cli("sender", "add", "TOOLONGSENDER1", "--company", "Client A", "--agreement", "AG-1", expect=4)
    cli("sender", "add", "12", "--company", "Client A", "--agreement", "AG-1", "--type", "short_code", expect=4)
    s = cli.json(
        "sender", "add", "+34 600 000 999", "--company", "Client A", "--agreement", "AG-1", "--type", "long_code"
    )
    assert s["sender"] == "34600000999"
    cli("sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", expect=5)
    client(cli, "Client B")
    cli("sender", "add", "BEE", "--company", "Client B", "--agreement", "AG-1", expect=4)
    # No gateway serves Viber yet: its sender IDs are refused rather than sent as SMS.
    viber = cli(
        "sender", "add", "Acme Viber", "--company", "Client A", "--agreement", "AG-1", "--channel", "viber", expect=5
    )
    assert "no gateway serves channel viber" in viber.stderr
    assert [r["sender"] for r in cli.json("sender", "list", "--company", "Client A", "--channel", "sms")] == [
        "ACME",
        "INFO",
        "34600000999",
    ]


# ---------------------------------------------------------------- recipients


def test_sources_combine_dedupe_and_exclusions(cli, tmp_path, db_url):
    setup(cli)
    cli.json("contacts", "group", "add", "VIP", "--company", "Client A")
    cli.json("contacts", "add", f"+{ES1}", "--company", "Client A", "--group", "VIP", "--first-name", "Ana")
    cli.json("contacts", "add", f"+{ES2}", "--company", "Client A", "--group", "VIP", "--first-name", "Luis")
    cli.json("contacts", "stoplist", "add", f"+{ES2}", "--company", "Client A", "--sender", "ACME")
    f = tmp_path / "r.csv"
    f.write_text(f"number,city\n+{ES1},Madrid\n+{FR1},Paris\nnot a number,X\n+{FR1},Lyon\n")
    c = create(cli, "--group", "VIP", "--file", str(f), "--to", f"+{ES1},+999", "--text", "Hello")
    assert c["state"] == "draft" and c["recipients"] == 2
    assert c["excluded"] == {"stop_list": 1, "invalid": 2, "duplicate": 3}
    e = cli.json("campaign", "estimate", str(c["id"]))
    assert e["recipients"] == {
        "total": 8,
        "sendable": 2,
        "excluded": {"stop_list": 1, "invalid": 2, "duplicate": 3},
    }
    assert e["segment_histogram"] == {"1": 2} and e["encoding"] == {"GSM7": 2, "UCS2": 0}
    by = {d["country"]: d for d in e["destinations"]}
    assert (by["ES"]["mcc"], by["ES"]["cost"], by["ES"]["matched"]) == ("214", "0.08", "sms/sms_message/mt/ES/others*")
    assert (by["FR"]["cost"], by["FR"]["matched"]) == ("0.05", "sms/sms_message/mt/others*")
    assert (e["estimated_cost"], e["currency"], e["fits"], e["unlimited_credit"]) == ("0.13", "EUR", True, True)
    # the stop list is checked again at start
    cli.json("contacts", "stoplist", "add", f"+{FR1}", "--company", "Client A", "--sender", "ALL")
    s = cli.json("campaign", "send", str(c["id"]))
    assert (s["state"], s["messages"], s["recipients"], s["excluded"]["stop_list"]) == ("in_progress", 1, 1, 2)
    q = queue(db_url, c["id"])
    assert [(m["phone"], m["text"], m["sender"], m["state"], m["country"]) for m in q] == [
        (ES1, "Hello", "ACME", "queued", "ES")
    ]


def test_stop_list_blocks_for_the_sender_or_all_only(cli, db_url):
    """One rule at creation and at start: a block for the campaign's sender or for ALL stops a number;
    a block for another sender of the company does not."""
    setup(cli)
    block = ["contacts", "stoplist", "add", "--company", "Client A", "--sender"]
    cli.json(*block, "INFO", f"+{ES1}")  # another sender
    cli.json(*block, "ACME", f"+{ES2}")
    c = create(cli, "--to", f"+{ES1},+{ES2},+{FR1}", "--text", "Hi")
    assert (c["recipients"], c["excluded"]["stop_list"]) == (2, 1)
    cli.json(*block, "INFO", f"+{FR1}")  # another sender again: still sent
    s = cli.json("campaign", "send", str(c["id"]))
    assert (s["recipients"], s["excluded"]["stop_list"]) == (2, 1)
    assert [m["phone"] for m in queue(db_url, c["id"])] == [ES1, FR1]
    d = create(cli, "--to", f"+{ES1},+{FR1}", "--text", "Hi")
    cli.json(*block, "ALL", f"+{ES1}")
    s = cli.json("campaign", "send", str(d["id"]))
    assert (s["recipients"], s["excluded"]["stop_list"]) == (1, 1)
    assert [m["phone"] for m in queue(db_url, d["id"])] == [FR1]


def test_personalisation(cli, tmp_path, db_url):
    setup(cli)
    cli.json("contacts", "group", "add", "VIP", "--company", "Client A")
    cli.json("contacts", "add", f"+{ES1}", "--company", "Client A", "--group", "VIP", "--first-name", "Ana")
    f = tmp_path / "p.csv"
    f.write_text(f"phone,First Name,code\n{FR1},Jean,X1\n{ES1},Ana-file,X2\n")
    # an unknown variable is refused at creation, with nothing written
    run = create(cli, "--group", "VIP", "--text", "Hi {{ nickname }}", expect=4)
    assert "unknown variable: nickname" in run.stderr
    assert cli.json("campaign", "list") == []
    run = create(cli, "--group", "VIP", "--text", "Hi {{ first_name ", expect=4)
    assert "template" in run.stderr
    # contact fields and file columns (file values win; missing values render empty)
    c = create(cli, "--group", "VIP", "--file", str(f), "--text", "Hi {{ first_name }} {{ code }} ({{ phone }})")
    assert c["personalised"] and c["variables"] == ["code", "first_name", "phone"]
    cli.json("campaign", "send", str(c["id"]))
    texts = {m["phone"]: m["text"] for m in queue(db_url, c["id"])}
    assert texts == {ES1: f"Hi Ana  ({ES1})", FR1: f"Hi Jean X1 ({FR1})"}
    # explicit maps: only mapped columns are variables
    run = create(
        cli, "--file", str(f), "--map", "phone=phone", "--map", "name=First Name", "--text", "{{ code }}", expect=4
    )
    assert "code" in run.stderr
    create(cli, "--file", str(f), "--map", "x=code", "--map", "y=code", "--text", "a", expect=4)
    # a personalised text that grows to two segments and UCS-2
    g = create(cli, "--file", str(f), "--text", "{{ first_name }} " + "x" * 156)
    e = cli.json("campaign", "estimate", str(g["id"]))
    assert e["segment_histogram"] == {"2": 2} and e["segments"] == 4


def test_file_rows_with_their_own_text(cli, tmp_path, db_url):
    setup(cli)
    f = tmp_path / "m.csv"
    f.write_text(f"msisdn;sms\n{ES1};Tu código: 1234\n{FR1};Your code: 5678\n", encoding="utf-8")
    c = create(cli, "--file", str(f), "--map", "phone=msisdn", "--map", "text=sms")
    assert c["text"] is None and not c["personalised"]
    e = cli.json("campaign", "estimate", str(c["id"]))
    assert e["encoding"] == {"GSM7": 1, "UCS2": 1}
    cli.json("campaign", "send", str(c["id"]))
    assert {m["phone"]: (m["text"], m["encoding"]) for m in queue(db_url, c["id"])} == {
        ES1: ("Tu código: 1234", "UCS2"),
        FR1: ("Your code: 5678", "GSM7"),
    }
    bad = tmp_path / "bad.csv"
    bad.write_text(f"msisdn,sms\n{ES1},\n")
    run = create(cli, "--file", str(bad), "--map", "phone=msisdn", "--map", "text=sms", expect=4)
    assert "row" in run.stderr and "empty message" in run.stderr
    create(cli, "--file", str(f), "--map", "phone=msisdn", "--map", "text=sms", "--text", "x", expect=4)


# ---------------------------------------------------------------- templates


def test_templates(cli):
    setup(cli)
    t = cli.json(
        "campaign",
        "template",
        "add",
        "Promo",
        "--company",
        "Client A",
        "--sender",
        "ACME",
        "--text",
        "Hi {{ first_name }}",
    )
    assert (t["channel"], t["sender"], t["variables"]) == ("sms", "ACME", ["first_name"])
    cli(
        "campaign",
        "template",
        "add",
        "Promo2",
        "--company",
        "Client A",
        "--sender",
        "ACME",
        "--text",
        "Hi {{ first_name }}",
        expect=5,
    )
    cli(
        "campaign",
        "template",
        "add",
        "Bad",
        "--company",
        "Client A",
        "--sender",
        "ACME",
        "--text",
        "{{ x | nope }}",
        expect=4,
    )
    assert [r["name"] for r in cli.json("campaign", "template", "list", "--channel", "sms")] == ["Promo"]
    c = create(cli, "--to", ES1, "--template", "Promo")
    assert c["template_id"] == t["id"] and c["text"] == "Hi {{ first_name }}"
    cli("campaign", "template", "delete", "Promo", "--yes")
    run = cli("campaign", "send", str(c["id"]), expect=5)
    assert "template" in run.stderr and "deleted" in run.stderr
    assert cli.json("campaign", "show", str(c["id"]))["state"] == "draft"


# ---------------------------------------------------------------- lifecycle


def state(cli, cid):
    return cli.json("campaign", "show", str(cid))["state"]


def test_every_transition(cli, session):
    setup(cli)
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    for action in ("start", "pause", "resume", "cancel", "repeat", "approve", "reject"):
        run = cli("campaign", action, str(c), expect=5)
        assert "is draft" in run.stderr
    # draft -> scheduled -> canceled -> repeat (new draft) ; delete
    cli.json("campaign", "schedule", str(c), "--at", "2026-06-02 09:00", "--tz", "Europe/Madrid")
    assert state(cli, c) == "scheduled"
    for action in ("send", "pause", "resume", "repeat", "approve"):
        assert "is scheduled" in cli("campaign", action, str(c), expect=5).stderr
    run = cli("campaign", "schedule", str(c), "--at", "2026-06-03 09:00", expect=5)
    assert "is scheduled; schedule is allowed only when it is draft" in run.stderr
    cli.json("campaign", "cancel", str(c), "--yes")
    assert state(cli, c) == "canceled"
    cli("campaign", "resume", str(c), expect=5)
    r = cli.json("campaign", "repeat", str(c))
    assert (r["state"], r["repeat_of_id"], r["recipients"]) == ("draft", c, 1)
    cli.json("campaign", "delete", str(c), "--yes")
    cli("campaign", "show", str(c), expect=3)
    # draft -> in_progress -> paused -> in_progress; no delete while running
    d = r["id"]
    assert cli.json("campaign", "send", str(d))["state"] == "in_progress"
    assert "is in_progress" in cli("campaign", "delete", str(d), "--yes", expect=5).stderr
    cli("campaign", "cancel", str(d), expect=5)
    assert cli.json("campaign", "pause", str(d))["state"] == "paused"
    assert cli.json("campaign", "resume", str(d))["state"] == "in_progress"
    cli.json("campaign", "pause", str(d))
    cx = cli.json("campaign", "cancel", str(d), "--yes")
    assert cx["state"] == "canceled" and cx["queue"] == {"failed": 1}
    # scheduled -> start now; in_progress -> completed when the queue is done
    e = create(cli, "--to", ES1, "--text", "y")["id"]
    cli.json("campaign", "schedule", str(e), "--at", "2026-07-01T00:00:00Z")
    assert cli.json("campaign", "start", str(e))["state"] == "in_progress"
    from cpaas_cli.campaigns import lifecycle as campaigns

    t = OutboundMessage.__table__
    session.connection().execute(sa.update(t).where(t.c.campaign_id == e).values(state="done"))
    assert campaigns.complete_finished(session) == [e]
    session.commit()
    shown = cli.json("campaign", "show", str(e))
    assert (shown["state"], shown["progress"]) == ("completed", 100.0)
    cli("campaign", "pause", str(e), expect=5)
    assert cli.json("campaign", "repeat", str(e))["state"] == "draft"
    listed = cli.json("campaign", "list", "--state", "completed")
    assert [x["id"] for x in listed] == [e]


def test_scheduled_campaigns_start_when_due(cli, session):
    setup(cli)
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    cli.json("campaign", "schedule", str(c), "--at", "2026-06-01 15:00", "--tz", "Europe/Madrid")  # 13:00Z
    from cpaas_cli.campaigns import lifecycle as campaigns

    assert campaigns.start_due(session, now=datetime(2026, 6, 1, 12, 59, tzinfo=UTC)) == []
    out = campaigns.start_due(session, now=datetime(2026, 6, 1, 13, 0, tzinfo=UTC))
    assert [(o.campaign.id, o.started) for o in out] == [(c, True)]


def test_insufficient_credit_fails_the_campaign(cli, db_url):
    setup(cli, credit="0.10")
    c = create(cli, "--to", ES1, "--to", FR1, "--text", "x")["id"]  # 0.08 + 0.05
    e = cli.json("campaign", "estimate", str(c))
    assert (e["estimated_cost"], e["available"], e["fits"]) == ("0.13", "0.10", False)
    run = cli("campaign", "send", str(c), "-o", "json", expect=7)
    assert "insufficient credit" in run.stderr
    shown = cli.json("campaign", "show", str(c))
    assert shown["state"] == "failed" and "insufficient credit" in shown["failure_reason"]
    assert queue(db_url, c) == []
    # personalised campaigns too (rendered, then rolled back)
    p = create(cli, "--to", ES1, "--to", FR1, "--text", "{{ phone }}")["id"]
    cli("campaign", "send", str(p), expect=7)
    assert queue(db_url, p) == [] and state(cli, p) == "failed"
    ok = create(cli, "--to", ES1, "--text", "{{ phone }}")["id"]
    assert cli.json("campaign", "send", str(ok))["estimated_cost"] == "0.08"


def test_moderation(cli):
    setup(cli, moderation=True)
    assert cli.json("tenant", "show", "Client A")["moderation"] is True
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    assert cli.json("campaign", "send", str(c))["state"] == "pending_moderation"
    for action in ("start", "pause", "cancel", "send"):
        assert "is pending_moderation" in cli("campaign", action, str(c), expect=5).stderr
    a = cli.json("campaign", "approve", str(c))
    assert (a["state"], a["moderated_by"]) == ("in_progress", "tester")
    d = create(cli, "--to", ES1, "--text", "y")["id"]
    cli.json("campaign", "schedule", str(d), "--at", "2026-12-01 09:00", "--tz", "Europe/Madrid")
    assert state(cli, d) == "pending_moderation"
    assert cli.json("campaign", "approve", str(d))["state"] == "scheduled"
    r = create(cli, "--to", ES1, "--text", "z")["id"]
    cli.json("campaign", "send", str(r))
    rej = cli.json("campaign", "reject", str(r), "--reason", "spam")
    assert rej["state"] == "failed" and rej["failure_reason"] == "rejected in moderation: spam"
    cli.json("tenant", "update", "Client A", "--no-moderation")
    assert cli.json("campaign", "send", str(cli.json("campaign", "repeat", str(r))["id"]))["state"] == "in_progress"


# ---------------------------------------------------------------- scheduling


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2026-12-01 09:00", "2026-12-01T08:00:00Z"),  # winter, +01:00
        ("2026-03-28 09:00", "2026-03-28T08:00:00Z"),  # the day before spring forward
        ("2026-03-29 01:30", "2026-03-29T00:30:00Z"),  # before the jump
        ("2026-03-29 03:30", "2026-03-29T01:30:00Z"),  # after the jump, +02:00
        ("2026-03-29 09:00", "2026-03-29T07:00:00Z"),
        ("2026-10-25 02:30", "2026-10-25T00:30:00Z"),  # happens twice: the first one (+02:00)
        ("2026-10-25 09:00", "2026-10-25T08:00:00Z"),  # after falling back, +01:00
    ],
)
def test_schedule_across_dst(cli, local, utc):
    clock.set_clock(lambda: datetime(2026, 1, 1, tzinfo=UTC))
    setup(cli)
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    d = cli.json("campaign", "schedule", str(c), "--at", local, "--tz", "Europe/Madrid")
    assert (d["scheduled_at"], d["schedule_tz"], d["state"]) == (utc, "Europe/Madrid", "scheduled")


def test_schedule_refusals(cli):
    setup(cli)
    c = create(cli, "--to", ES1, "--text", "x")["id"]
    clock.set_clock(lambda: datetime(2026, 3, 1, tzinfo=UTC))
    run = cli("campaign", "schedule", str(c), "--at", "2026-03-29 02:30", "--tz", "Europe/Madrid", expect=4)
    assert "does not exist in Europe/Madrid" in run.stderr
    run = cli("campaign", "schedule", str(c), "--at", "2026-02-28 09:00", "--tz", "Europe/Madrid", expect=4)
    assert "in the past" in run.stderr
    cli("campaign", "schedule", str(c), "--at", "2026-04-01 09:00", "--tz", "Mars/Olympus", expect=4)
    cli("campaign", "schedule", str(c), "--at", "tomorrow", expect=4)
    assert state(cli, c) == "draft"


def test_create_refusals(cli):
    setup(cli)
    create(cli, "--text", "x", expect=4)  # no recipients source
    create(cli, "--to", ES1, expect=4)  # no text
    create(cli, "--to", ES1, "--text", "   ", expect=4)
    # A Viber sender (which could carry no flash message) cannot even be added: no gateway serves Viber.
    cli("sender", "add", "Acme V", "--company", "Client A", "--agreement", "AG-1", "--channel", "viber", expect=5)
    c = create(cli, "--to", ES1, "--text", "x", "--flash", "--name", "Flashy")
    assert (c["flash"], c["name"]) == (True, "Flashy")
    assert create(cli, "--to", ES1, "--text", "x")["name"] == "Campaign 2026-06-01 12:00"
