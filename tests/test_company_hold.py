"""A disabled (blocked) company sends nothing: its campaigns cannot be created
or started, its queued messages are held (not claimed) with the reason shown,
and they go once the company is enabled again."""

from __future__ import annotations

from tests.helpers import reseller
from tests.test_serve import campaign, queue_states, serve_once, setup, smsc  # noqa: F401  (smsc: fixture)

HELD = "company 'Client A' is disabled"


def _draft(cli, tmp_path, name="draft") -> int:
    f = tmp_path / f"{name}.csv"
    f.write_text("phone\n34600000001\n34600000002\n")
    c = cli.json(
        "campaign", "create", "--company", "Client A", "--sender", "ACME", "--file", str(f), "--text", "Hi",
        "--name", name,
    )  # fmt: skip
    return c["id"]


def test_a_disabled_company_cannot_create_or_start_campaigns(cli, tmp_path, smsc):  # noqa: F811
    setup(cli, smsc.port)
    draft = _draft(cli, tmp_path)
    cli.json("tenant", "disable", "Client A")
    f = tmp_path / "new.csv"
    f.write_text("phone\n34600000003\n")
    run = cli(
        "campaign", "create", "--company", "Client A", "--sender", "ACME", "--file", str(f), "--text", "Hi",
        "-o", "json", expect=5,
    )  # fmt: skip
    assert run.stdout == "" and run.stderr.startswith(f"error: {HELD}: campaign create refused")
    for action in (["send"], ["schedule", "--at", "2099-01-01 10:00"]):
        run = cli("campaign", action[0], str(draft), *action[1:], "-o", "json", expect=5)
        assert run.stderr.startswith(f"error: {HELD}: campaign {action[0]} refused"), run.stderr
    assert [(c["id"], c["state"]) for c in cli.json("campaign", "list")] == [(draft, "draft")]
    assert queue_states(cli.url) == {}
    # enabled again: the same draft goes
    cli.json("tenant", "enable", "Client A")
    assert cli.json("campaign", "send", str(draft))["state"] == "in_progress"


def test_a_disabled_reseller_holds_the_companies_under_it(cli, tmp_path, smsc):  # noqa: F811
    setup(cli, smsc.port)
    reseller(cli, "R1")
    cli.json("tenant", "update", "Client A", "--parent", "R1")
    draft = _draft(cli, tmp_path)
    cli.json("tenant", "disable", "R1")
    run = cli("campaign", "send", str(draft), "-o", "json", expect=5)
    assert run.stderr.startswith("error: company 'R1', above 'Client A', is disabled: campaign send refused")


def test_queued_messages_of_a_disabled_company_are_held_then_go(cli, db_url, smsc, tmp_path):  # noqa: F811
    setup(cli, smsc.port)
    cid = campaign(cli, tmp_path, [f"3460000{i:04d}" for i in range(5)], "Hello", "c1")
    assert queue_states(db_url) == {"queued": 5}
    cli.json("tenant", "disable", "Client A")
    out = serve_once(cli)
    assert (out["submitted"], out["workers"], out["completed_campaigns"]) == (0, 0, 0)
    assert out["held"] == [{"company": "Client A", "campaigns": 1, "messages": 5, "reason": HELD}]
    assert queue_states(db_url) == {"queued": 5} and smsc.submitted == []
    shown = cli.json("campaign", "show", str(cid))
    assert (shown["state"], shown["queue"], shown["held"]) == (
        "in_progress",
        {"queued": 5},
        {"messages": 5, "reason": HELD},
    )
    # resume of a paused campaign is a start too
    cli.json("campaign", "pause", str(cid))
    assert cli("campaign", "resume", str(cid), "-o", "json", expect=5).stderr.startswith(f"error: {HELD}")
    cli.json("tenant", "enable", "Client A")
    cli.json("campaign", "resume", str(cid))
    out = serve_once(cli)
    assert (out["submitted"], out["completed_campaigns"], out["held"]) == (5, 1, [])
    shown = cli.json("campaign", "show", str(cid))
    assert (shown["state"], shown["queue"], shown["held"]) == ("completed", {"done": 5}, None)


def test_a_scheduled_campaign_of_a_disabled_company_fails_with_the_reason(cli, smsc, tmp_path):  # noqa: F811
    setup(cli, smsc.port)
    cid = _draft(cli, tmp_path)
    cli.json("campaign", "schedule", str(cid), "--at", "2099-01-01 10:00")
    cli.json("tenant", "disable", "Client A")
    out = cli.json(
        "serve", "--once", "--receipt-timeout", "1", env={"SIM_PW": "pw", "CPAAS_NOW": "2099-01-02T00:00:00+00:00"}
    )
    assert (out["started_campaigns"], out["submitted"]) == (0, 0)
    shown = cli.json("campaign", "show", str(cid))
    assert shown["state"] == "failed" and shown["failure_reason"].startswith(f"{HELD}: campaign start refused")
