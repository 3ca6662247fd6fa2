"""Vendor cost on the dispatch path (issue 29, item 3): `serve --once` writes each
EDR with its connection and the cost at the connection's vendor plan; a submit
the SMSC refused costs nothing there; `report margin` reads it."""

from __future__ import annotations

import json
from datetime import date

from tests.test_margin import VENDOR_SKELETON
from tests.test_serve import campaign, edrs, serve_once, setup, smsc  # noqa: F401 (smsc: the fixture)


def test_serve_writes_the_vendor_cost_of_each_message(cli, db_url, smsc, tmp_path):  # noqa: F811
    setup(cli, smsc.port)
    doc = json.loads(json.dumps(VENDOR_SKELETON))
    # Vendor X: ES Vodafone 0.031 per part, France (its country row) 0.045 per part
    doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"] = {
        "depends_on": "network",
        "children": {"21401": {"price": "0.031"}, "208": {"price": "0.045"}},
    }
    (tmp_path / "vendor.json").write_text(json.dumps(doc))
    cli.json("service", "create", "Vendor X", "--type", "vendor", "--currency", "EUR")
    cli.json("service", "scope", "add", "Vendor X", "--from", "2026-01-01")
    cli("service", "tree", "apply", "Vendor X", str(tmp_path / "vendor.json"))
    cli.json("connection", "update", "sim", "--vendor-plan", "Vendor X")
    campaign(cli, tmp_path, [f"3460{i:07d}" for i in range(5)], "Hello", "es")
    out = serve_once(cli)  # alone: the SMSC's refusal below must meet the FR message, whatever the claim order
    assert out["submitted"] == 5, out
    smsc.fail_next(1, 0x0B)  # one part of the long FR message is refused for good
    campaign(cli, tmp_path, ["33612345678"], "Long message. " * 15, "fr")  # two parts
    out = serve_once(cli)
    assert out["submitted"] == 1 and out["partly_refused"] == 1, out
    smsc.fail_next(1, 0x0B)  # this one is refused whole: nothing reached the vendor
    campaign(cli, tmp_path, ["34600009999"], "Hello", "refused")
    out = serve_once(cli)
    assert out["rejected"] == 1 and out["refunded"] == 1, out

    rows = edrs(db_url)
    conn_id = cli.json("connection", "show", "sim")["id"]
    assert {r["connection_id"] for r in rows} == {conn_id}
    sent_es = [r for r in rows if r["destination"].startswith("34") and r["status"] != "failed"]
    failed = [r for r in rows if r["status"] == "failed"]
    fr = [r for r in rows if r["destination"].startswith("33")]
    assert len(sent_es) == 5 and {(r["vendor_cost"], r["vendor_currency"]) for r in sent_es} == {(31_000, "EUR")}
    assert [(r["destination"], r["vendor_cost"]) for r in failed] == [("34600009999", 0)]
    # one part of two went: charged 0.05 (0.10 less the refund), the vendor charges one part, 0.045
    assert [(r["segments"], r["cost"], r["vendor_cost"]) for r in fr] == [(1, 50_000, 45_000)]

    day = rows[0]["event_at"].date()
    window = ("--from", day.isoformat(), "--till", date.fromordinal(day.toordinal() + 1).isoformat())
    margin = cli.json("report", "margin", *window, "--by", "country")
    # ES: 5 × 0.04 = 0.20 against 5 × 0.031 = 0.155 → 0.045 = 22.50 %; FR: 0.05 − 0.045 = 0.005 = 10.00 %
    # (the refused message is not counted)
    assert [(r["country"], r["messages"], r["revenue"], r["vendor_cost"], r["margin"], r["margin_pct"],
             r["cost_unknown"]) for r in margin] == [
        ("ES", 5, "0.20", "0.155", "0.045", "22.50", 0),
        ("FR", 1, "0.05", "0.045", "0.005", "10.00", 0),
    ]  # fmt: skip
