"""Rerate tasks: tier scale across a price change, packs, invoices, restart, idempotence."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml

from cpaas_cli.db.engine import get_engine, make_session
from cpaas_cli.rerate import service as rerate
from tests.test_money_cli import edr_file, row, setup

TIER_A = {"type": "tier", "steps": [[3, "0.05"], [None, "0.03"]]}
TIER_B = {"type": "tier", "steps": [[2, "0.10"], [None, "0.02"]]}


def tree(scale: dict, *, es_price: str = "0.04", quantity_rule: str = "segments") -> dict:
    return {
        "service": "SMS service",
        "tree": {
            "sms": {
                "depends_on": "resource",
                "children": {
                    "sms_message": {
                        "depends_on": "direction",
                        "billing_rule": "submitted",
                        "quantity_rule": quantity_rule,
                        "children": {
                            "mo": {"price_type": "free"},
                            "mt": {
                                "depends_on": "country",
                                "children": {"ES": {"price": es_price}, "others": {"scale": scale}},
                            },
                        },
                    }
                },
            }
        },
    }


def apply(cli, tmp_path, doc: dict, service: str = "SMS service") -> None:
    p = tmp_path / "tree.yaml"
    p.write_text(yaml.safe_dump(doc))
    cli("service", "tree", "apply", service, str(p))


def french(i: int, day: int = 1, **kw) -> dict:
    return row(i, mccmnc="20801", segments=1, prepared_at=f"2026-03-{day:02d}T10:00:{i:02d}Z",
               submitted_at=f"2026-03-{day:02d}T10:00:{i:02d}Z", **kw)  # fmt: skip


def ledger_sum(cli) -> tuple[int, int]:
    eng = get_engine(cli.url)
    with eng.connect() as c:
        charged = c.execute(sa.text("SELECT COALESCE(SUM(amount), 0) FROM charge")).scalar()
        spent = c.execute(sa.text("SELECT COALESCE(SUM(spent), 0) FROM agreement_balance")).scalar()
    return int(charged), int(spent)


def create(cli, *extra: str, frm="2026-03-01T10:00:00Z", till="2026-03-01T10:00:03Z") -> dict:
    return cli.json("rerate", "create", "--from", frm, "--till", till, "--company", "Client A", "--draft", *extra)


def test_tier_price_change_mid_month_whole_period(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [french(i) for i in range(5)])))
    # tier A: 3 × 0.05 + 2 × 0.03
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.21"
    apply(cli, tmp_path, tree(TIER_B))
    t = create(cli)
    assert (t["status"], t["estimated"]) == ("draft", 5)  # widened to the whole March period
    prev = cli.json("rerate", "preview", str(t["id"]))
    ag = prev["agreements"][0]
    # tier B: 2 × 0.10 + 3 × 0.02; the threshold is crossed earlier
    assert (ag["old_cost"], ag["new_cost"], ag["delta"], ag["edrs"], ag["cost_changed"]) == (
        "0.21", "0.26", "0.05", 5, 5)  # fmt: skip
    assert prev["destinations"][0]["country"] == "FR"
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.21"  # dry run wrote nothing
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["status"], done["processed"], done["updated"], done["unchanged"], done["failed"]) == (
        "completed", 5, 5, 0, 0)  # fmt: skip
    assert done["run_by"] and done["started_at"]
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.26"
    # EDRs of the same period outside the window are re-priced too (x-4 at 10:00:04)
    outside = cli.json("edr", "show", "x-4")
    assert outside["cost"] == "0.02" and sum(float(c["amount"]) for c in outside["charges"]) == pytest.approx(0.02)
    assert [c["kind"] for c in outside["charges"]] == ["edr", "rerate"]
    charged, spent = ledger_sum(cli)
    assert charged == spent == 260_000
    # idempotent: the same window again with unchanged rates updates nothing
    again = cli.json("rerate", "run", str(create(cli)["id"]))
    assert (again["processed"], again["updated"], again["unchanged"]) == (5, 0, 5)
    assert ledger_sum(cli) == (260_000, 260_000)
    cli("rerate", "run", str(t["id"]), expect=5)  # completed
    # new EDRs rated afterwards continue from the recomputed counter (5 units: price 0.02)
    cli.json("edr", "ingest", str(edr_file(tmp_path / "f.jsonl", [french(9, day=2)])))
    assert cli.json("edr", "show", "x-9")["cost"] == "0.02"


def test_newly_no_rate_reported_and_refunded(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(0), french(1)])))
    doc = tree(TIER_A)
    doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]["ES"] = {"price_type": "not_included"}
    apply(cli, tmp_path, doc)
    t = create(cli, till="2026-03-02T00:00:00Z")
    prev = cli.json("rerate", "preview", str(t["id"]))
    assert prev["state_changed"] == 1
    assert prev["state_changes"][0]["external_id"] == "x-0"
    assert prev["state_changes"][0]["to"] == "rejected/no_rate"
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["processed"], done["updated"], done["unchanged"], done["failed"]) == (2, 0, 1, 1)
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.05"


def test_pack_exhausted_earlier(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    pack = {
        "tree": {
            "sms": {
                "children": {
                    "sms_message": {
                        "depends_on": "country",
                        "quantity_rule": "messages",
                        "children": {"ES": {"price_type": "included"}, "others": {"price_type": "not_included"}},
                    }
                }
            }
        }
    }
    cli.json("service", "create", "Spain 4", "--type", "unit-pack", "--size", "4")
    cli.json("service", "scope", "add", "Spain 4", "--from", "2026-01-01")
    apply(cli, tmp_path, pack, "Spain 4")
    cli.json("agreement", "enable", "Spain 4", "--agreement", "AG-1", "--from", "2026-02-01", "--free")
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(i) for i in range(3)])))  # 2 segments each
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.00"  # 3 of 4 messages from the pack
    pack["tree"]["sms"]["children"]["sms_message"]["quantity_rule"] = "segments"
    apply(cli, tmp_path, pack, "Spain 4")
    t = create(cli)
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["updated"], done["unchanged"]) == (3, 0)  # pack units change on all three
    third = cli.json("edr", "show", "x-2")
    assert (third["pack_enabled_id"], third["cost"]) == (None, "0.08")  # the pack ran out after two
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.08"
    s = make_session(get_engine(cli.url))
    assert s.execute(sa.text("SELECT used FROM pack_usage")).scalar() == 4
    s.close()


def test_confirmed_invoice_gets_correction_on_next(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [french(i) for i in range(5)])))
    cli.json("invoice", "run", "--as-of", "2026-04-02")
    march = next(i for i in cli.json("invoice", "list") if i["local_start_date"] == "2026-03-01")
    cli.json("invoice", "confirm", str(march["id"]), "--at", "2026-04-02")
    before = cli.json("invoice", "show", str(march["id"]))
    apply(cli, tmp_path, tree(TIER_B))
    cli.json("rerate", "run", str(create(cli)["id"]))
    assert cli.json("invoice", "show", str(march["id"])) == before  # confirmed: never changed
    cli.json("invoice", "run", "--as-of", "2026-05-02")
    april = next(i for i in cli.json("invoice", "list") if i["local_start_date"] == "2026-04-01")
    lines = cli.json("invoice", "show", str(april["id"]))["lines"]
    corr = [ln for ln in lines if "correction" in ln["description"]]
    assert len(corr) == 1 and corr[0]["exact"] == "0.05" and "re-rating" in corr[0]["description"]


def test_kill_and_rerun_equals_clean_run(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    rows = [french(i) for i in range(4)] + [french(i, day=1, mccmnc="20801") for i in ()]
    rows += [{**french(10 + i), "prepared_at": f"2026-04-0{i + 1}T10:00:00Z",
              "submitted_at": f"2026-04-0{i + 1}T10:00:00Z"} for i in range(3)]  # fmt: skip
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    apply(cli, tmp_path, tree(TIER_B))
    t = create(cli, till="2026-05-01T00:00:00Z")
    s = make_session(get_engine(cli.url), actor="test")

    def die(n: int) -> None:
        raise KeyboardInterrupt("killed after unit 1")

    with pytest.raises(KeyboardInterrupt):
        rerate.run(s, t["id"], after_unit=die)
    s.close()
    mid = cli.json("rerate", "show", str(t["id"]))
    assert mid["status"] == "running"  # the process died: no final state was written
    assert ledger_sum(cli)[0] == ledger_sum(cli)[1]
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["status"], done["processed"], done["updated"], done["report"]["units"]) == ("completed", 7, 7, 2)
    # equals the figures of a clean run: March 2×0.10+2×0.02, April 2×0.10+0.02
    assert ledger_sum(cli) == (460_000, 460_000)
    again = cli.json("rerate", "run", str(create(cli, till="2026-05-01T00:00:00Z")["id"]))
    assert again["updated"] == 0
