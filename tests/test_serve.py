"""`cpaas serve --once` end to end against the smpp34 SMSC: queue → EDRs and
charges → submit → receipts → rated EDRs, campaign completion, long messages
as UDH parts, insufficient credit, MO opt-out/opt-in."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port, parse_stat_mix
from cpaas_cli.models.billing import Charge, ScaleCounter
from cpaas_cli.models.campaigns import OutboundMessage
from cpaas_cli.models.edr import Edr
from tests.helpers import client, owner_le
from tests.test_catalog import EXAMPLE1


@pytest.fixture
def smsc():
    opts = SmscOptions(port=free_port(), id_width=10, lifetime=120)
    opts.stat_mix = parse_stat_mix("DELIVRD=3,UNDELIV=1")
    sim = SimSmsc(opts)
    sim.start()
    yield sim
    sim.stop()


def setup(
    cli,
    port: int,
    *,
    credit: str | None = None,
    window: int | None = 20,
    id_format: str | None = "hex",
    tree=EXAMPLE1,
    multipart_final: str | None = None,
) -> None:
    """Client A with agreement AG-1 on ``tree``, connection ``sim`` to ``port`` (window None:
    the connection's default), sender ACME over it."""
    owner_le(cli)
    client(cli)
    args = ["agreement", "create", "AG-1", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01"]
    if credit is not None:
        args += ["--credit-limit", credit]
    cli.json(*args)
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-01-01")
    cli("service", "tree", "apply", "SMS service", str(tree))
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")
    cli.json(
        "connection", "add-smpp", "sim", "--host", "127.0.0.1", "--port", str(port), "--system-id", "cpaas",
        "--password-env", "SIM_PW", *(["--window", str(window)] if window is not None else []),
        *(["--message-id-format", id_format] if id_format else []),
        *(["--multipart-final", multipart_final] if multipart_final else []),
    )  # fmt: skip
    cli.json("sender", "add", "ACME", "--company", "Client A", "--agreement", "AG-1", "--active", "--connection", "sim")


def campaign(cli, tmp_path, phones: list[str], text: str, name: str) -> int:
    f = tmp_path / f"{name}.csv"
    f.write_text("phone\n" + "".join(p + "\n" for p in phones))
    c = cli.json(
        "campaign", "create", "--company", "Client A", "--sender", "ACME", "--file", str(f), "--text", text,
        "--name", name,
    )  # fmt: skip
    cli.json("campaign", "send", str(c["id"]))
    return c["id"]


def serve_once(cli, *extra: str) -> dict:
    return cli.json("serve", "--once", "--receipt-timeout", "5", *extra, env={"SIM_PW": "pw"})


def edrs(db_url) -> list[dict]:
    t = Edr.__table__
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]


def queue_states(db_url) -> Counter:
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        return Counter(dict(conn.execute(sa.select(t.c.state, sa.func.count()).group_by(t.c.state)).all()))


def test_serve_once_sends_charges_and_completes(cli, db_url, smsc, tmp_path):
    setup(cli, smsc.port)
    phones = [f"3460{i:07d}" for i in range(240)]
    short = campaign(cli, tmp_path, phones, "Hello from ACME", "short")
    long_text = "Long message. " * 15  # 210 GSM-7 characters: two parts
    long = campaign(cli, tmp_path, ["33612345678", "33612345679"], long_text, "long")

    out = serve_once(cli)
    assert out["submitted"] == 242, out
    assert out["submitted"] == 242 and out["rejected"] == 0 and out["receipts"] == 242, json.dumps(out)
    assert out["receipts_unmatched"] == 0 and out["possible_duplicates"] == 0
    assert out["completed_campaigns"] == 2 and out["errors"] == []

    rows = edrs(db_url)
    assert len(rows) == 242 and len({r["external_id"] for r in rows}) == 242
    statuses = Counter(r["status"] for r in rows)  # DELIVRD=3,UNDELIV=1 over the parts' receipts
    assert statuses == out["receipt_statuses"] and statuses["undelivered"] >= 55 and statuses["delivered"] >= 175
    assert all(r["rating_state"] == "rated" and r["vendor_message_id"] for r in rows)
    assert all(r["submitted_at"] and r["prepared_at"] and r["submitted_at"] >= r["prepared_at"] for r in rows)
    assert all((r["delivered_at"] or r["undelivered_at"]) for r in rows)
    es = [r for r in rows if r["destination"].startswith("34")]
    fr = [r for r in rows if r["destination"].startswith("33")]
    # The 3460… numbers are on Vodafone Spain's range: its own leaf, 0.04 per segment (billing rule: submitted)
    assert {(r["mcc"], r["mnc"], r["network"], r["cost"]) for r in es} == {("214", "01", "Vodafone Spain", 40_000)}
    assert [r["segments"] for r in fr] == [2, 2] and {r["cost"] for r in fr} == {100_000}  # 2 x 0.05
    assert queue_states(db_url) == {"done": 242}

    # Long messages went as two UDH parts each (one EDR per message).
    fr_bodies = [(body, esm) for _mid, dest, body, esm, _dc in smsc.submitted if dest.startswith("33")]
    assert len(fr_bodies) == 4 and all(esm == 0x40 and body[:3] == b"\x05\x00\x03" for body, esm in fr_bodies)
    assert len({body[3] for body, _ in fr_bodies}) == 2  # one concatenation reference per message

    for cid, n in ((short, 240), (long, 2)):
        shown = cli.json("campaign", "show", str(cid))
        assert shown["state"] == "completed" and shown["queue"] == {"done": n} and shown["progress"] == 100.0
    bal = cli.json("balance", "show", "AG-1")
    assert bal["charges"] == f"{240 * 0.04 + 2 * 0.10:.2f}"

    # Nothing left: a second run sends nothing and charges nothing.
    again = serve_once(cli)
    assert again["submitted"] == 0 and again["workers"] == 0
    assert len(edrs(db_url)) == 242


@pytest.mark.parametrize("batch", [200, 1])
def test_insufficient_credit_fails_the_campaign_while_sending(cli, db_url, smsc, tmp_path, batch):
    setup(cli, smsc.port, credit="0.20")
    # Numbers on a Movistar range: Spain's others leaf, 0.08 each.
    a = campaign(cli, tmp_path, ["34620000001", "34620000002"], "A", "a")  # 0.16: fits alone
    b = campaign(cli, tmp_path, ["34620000003", "34620000004"], "B", "b")  # 0.16: fits alone, not after A
    out = serve_once(cli, "--batch", str(batch))
    # One batch: both of B's messages meet the credit check; one by one: the first
    # fails the campaign and the second gets its rejected EDR with the campaign.
    assert out["submitted"] == 2 and out["no_credit"] == (2 if batch > 1 else 1) and out["campaigns_failed"] == 1
    assert cli.json("campaign", "show", str(a))["state"] == "completed"
    shown = cli.json("campaign", "show", str(b))
    assert shown["state"] == "failed" and "insufficient credit" in shown["failure_reason"]
    assert shown["queue"] == {"failed": 2}
    rows = edrs(db_url)
    # Every recipient has exactly one EDR in a final state.
    assert sorted(r["destination"] for r in rows) == [f"3462000000{i}" for i in range(1, 5)]
    bad = [r for r in rows if r["campaign_id"] == b]
    assert {(r["status"], r["rating_state"], r["rating_reason"]) for r in bad} == {
        ("failed", "rejected", "insufficient_credit")
    }
    assert len(smsc.submitted) == 2
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.16"


def test_mo_opt_out_and_opt_in(cli, db_url, tmp_path):
    import threading

    opts = SmscOptions(port=free_port(), id_width=10, lifetime=60, receipt_delay=1.5)
    with SimSmsc(opts) as sim:
        setup(cli, sim.port)
        campaign(cli, tmp_path, ["34600000001"], "Hi", "c1")

        def inject(texts):
            assert sim.wait_bound(20)
            for text in texts:
                sim.inject_mo("+34600000001", "ACME", text).result(10)

        t = threading.Thread(target=inject, args=(["stop please", "Hello there"],))
        t.start()
        out = serve_once(cli)
        t.join()
        assert out["mo"] == 2 and out["opt_outs"] == 1 and out["receipts"] == 1
        blocks = cli.json("contacts", "stoplist", "list", "--company", "Client A")
        assert [(b["phone"], b["sender"]) for b in blocks] == [("34600000001", "ACME")]
        mo = cli.json("inbound", "list", "--kind", "mo")
        assert [(m["text"], m["action"], m["source"]) for m in mo] == [
            ("Hello there", None, "34600000001"),  # stored as E.164 digits
            ("stop please", "opt_out", "34600000001"),
        ]
        # The next campaign leaves the number out (stop list).
        f = tmp_path / "again.csv"
        f.write_text("phone\n34600000001\n34600000002\n")
        c2 = cli.json(
            "campaign", "create", "--company", "Client A", "--sender", "ACME", "--file", str(f), "--text", "x"
        )
        assert c2["recipients"] == 1 and c2["excluded"]["stop_list"] == 1
        cli.json("campaign", "send", str(c2["id"]))

        t = threading.Thread(
            target=inject,
            args=(
                [
                    "START",
                ],
            ),
        )
        t.start()
        out = serve_once(cli)
        t.join()
        assert out["opt_ins"] == 1
        assert cli.json("contacts", "stoplist", "list", "--company", "Client A") == []
    audit = cli.json("audit", "list")
    actions = {a["action"] for a in audit}
    assert {"opt_out", "opt_in", "block", "unblock"} <= actions


def test_a_submit_refused_by_the_smsc_gets_its_charge_back(cli, db_url, smsc, tmp_path):
    """Submitted-rule charges are taken before submit_sm; a permanent refusal in
    submit_sm_resp gives them back (one refund row each), the EDR ends failed
    with no submitted time and no cost, and the balance counts only what went out."""
    setup(cli, smsc.port, credit="10")
    smsc.fail_next(3, 0x0B)  # ESME_RINVDSTADR: not retryable
    phones = [f"3462000{i:04d}" for i in range(10)]  # Movistar range: 0.08 each
    cid = campaign(cli, tmp_path, phones, "Hello", "c")
    out = serve_once(cli)
    assert out["submitted"] == 7 and out["rejected"] == 3 and out["refunded"] == 3, out

    rows = edrs(db_url)
    assert len(rows) == 10
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 3
    for r in failed:
        assert r["submitted_at"] is None and r["cost"] == 0 and r["quantity"] == 0
        assert r["vendor_error"] == "0x0B" and "refund of 0.08 EUR" in r["rating_note"]
    sent = [r for r in rows if r["status"] != "failed"]
    assert {r["cost"] for r in sent} == {80_000}

    chg = Charge.__table__
    with get_engine(db_url).connect() as conn:
        by_edr = dict(conn.execute(sa.select(chg.c.edr_id, sa.func.sum(chg.c.amount)).group_by(chg.c.edr_id)).all())
        kinds = Counter(conn.execute(sa.select(chg.c.kind)).scalars())
    assert kinds == {"edr": 10, "refund": 3}
    assert all(by_edr[r["id"]] == r["cost"] for r in rows)  # Σ ledger rows of an EDR = its cost
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.56"
    assert cli.json("campaign", "show", str(cid))["queue"] == {"done": 7, "failed": 3}

    # Idempotent: refunding the same EDRs again changes nothing.
    from cpaas_cli.charging import refunds
    from cpaas_cli.charging.plans import Plans
    from cpaas_cli.db.engine import make_session

    s = make_session(get_engine(db_url), actor="test", command="test")
    try:
        again = refunds.refund_unsent(s, [r["id"] for r in failed], Plans(s), now=rows[0]["prepared_at"])
        s.commit()
    finally:
        s.close()
    assert again == {"edrs": 0, "refunded": 0, "amount": 0}
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.56"


def test_a_refused_submit_gives_back_its_scale_units(cli, db_url, smsc, tmp_path):
    """France is priced by a tier scale (rest of world): the refused messages'
    units leave the period's counter again."""
    setup(cli, smsc.port)
    smsc.fail_next(2, 0x0B)
    campaign(cli, tmp_path, [f"3361234{i:04d}" for i in range(6)], "Bonjour", "fr")
    out = serve_once(cli)
    assert out["submitted"] == 4 and out["refunded"] == 2, out
    cnt = ScaleCounter.__table__
    with get_engine(db_url).connect() as conn:
        counters = conn.execute(sa.select(cnt.c.node_key, cnt.c.quantity)).all()
    assert [q for _n, q in counters] == [4], counters
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.20"  # 4 x 0.05


def test_a_worker_whose_first_bind_fails_keeps_trying(cli, db_url, tmp_path):
    """Long-running serve: the SMSC is down when serve starts; the worker claims
    (and charges) nothing until it binds, then sends everything."""
    import threading

    port = free_port()
    setup(cli, port)
    campaign(cli, tmp_path, [f"3460000{i:04d}" for i in range(5)], "Hello", "late")
    opts = SmscOptions(port=port, lifetime=60)
    sim = SimSmsc(opts)
    timer = threading.Timer(1.5, sim.start)
    timer.start()
    try:
        out = cli.json("serve", "--max-seconds", "7", env={"SIM_PW": "pw"})
    finally:
        timer.cancel()
        timer.join()
        sim.stop()
    assert out["errors"] == [] and out["workers"] == 1, out
    assert out["submitted"] == 5 and out["receipts"] == 5 and out["charged"] == 5, out
    assert len(sim.submitted) == 5
    assert queue_states(db_url) == {"done": 5}


def test_a_worker_reloads_rate_plans_after_their_ttl():
    """Price changes reach a long-running serve: plans are kept plans_ttl seconds."""
    import time
    from types import SimpleNamespace

    from cpaas_cli.dispatch.worker import Worker, WorkerOptions

    w = Worker(None, SimpleNamespace(id=1, name="sim"), lambda: None, name="w", options=WorkerOptions(plans_ttl=0.2))
    w._session = SimpleNamespace()
    first = w._plans
    assert w._plans is first
    time.sleep(0.25)
    assert w._plans is not first and w._plans.session is w._session


def test_a_receipt_delivered_twice_is_applied_and_rated_once(cli, db_url, tmp_path):
    """An SMSC that delivers a receipt again (after a lost answer, or by habit):
    the EDR keeps its first final state and a delivered-rule price is charged once."""
    tree = tmp_path / "delivered.yaml"
    tree.write_text(EXAMPLE1.read_text().replace("billing_rule: submitted", "billing_rule: delivered"))
    opts = SmscOptions(port=free_port(), id_width=10, lifetime=60, receipt_copies=2)
    opts.stat_mix = parse_stat_mix("DELIVRD=1,UNDELIV=1")
    with SimSmsc(opts) as sim:
        setup(cli, sim.port, tree=tree, window=None)
        phones = [f"3460{i:07d}" for i in range(40)]
        campaign(cli, tmp_path, phones, "Twice", "twice")
        serve_once(cli)
        # Every receipt goes twice, back to back; `--once` stops once each message
        # is final, so the last copies may come after it (unanswered: the SMSC keeps
        # them for the next bind). The SMSC counts an answer when it reads it.
        end = time.monotonic() + 10
        seen = -1
        while seen != sim.counters.receipts and time.monotonic() < end:
            seen = sim.counters.receipts
            time.sleep(0.2)
        assert 40 < sim.counters.receipts <= 80, sim.counters  # copies were answered too
    rows = edrs(db_url)
    assert Counter(r["status"] for r in rows) == {"delivered": 20, "undelivered": 20}
    c = Charge.__table__
    with get_engine(db_url).connect() as conn:
        charges = Counter(conn.execute(sa.select(c.c.edr_id).where(c.c.kind == "edr")).scalars())
    delivered = {r["id"] for r in rows if r["status"] == "delivered"}
    assert set(charges) == delivered and max(charges.values()) == 1
    assert sum(r["cost"] or 0 for r in rows) == 20 * 40_000
