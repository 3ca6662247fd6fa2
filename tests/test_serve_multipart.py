"""Long (multi-part) messages through `cpaas serve --once` against the smpp34
SMSC: a vendor that sends one receipt per long message (connection
``--multipart-final``), and a long message some of whose parts the SMSC
refuses (per-part outcome: status, segments, charge and refund)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch import multipart as mp
from cpaas_cli.dispatch.receipts import normalise_message_id
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, concatenation, free_port
from cpaas_cli.models.billing import Charge, ScaleCounter
from cpaas_cli.models.campaigns import OutboundMessage
from tests.test_catalog import EXAMPLE1
from tests.test_serve import campaign, edrs, serve_once
from tests.test_serve import setup as serve_setup

TWO_PARTS = "Long message. " * 15  # 210 GSM-7 characters
THREE_PARTS = "Long message. " * 25  # 350 GSM-7 characters

TREE = """\
service: SMS service
tree:
  sms:
    depends_on: resource
    children:
      sms_message:
        depends_on: direction
        billing_rule: {rule}
        quantity_rule: {quantity}
        children:
          mo: {{price_type: free}}
          mt:
            depends_on: country
            children:
              others: {leaf}
"""


@pytest.fixture
def smsc():
    sim = SimSmsc(SmscOptions(port=free_port(), id_width=10, lifetime=120))
    sim.start()
    yield sim
    sim.stop()


def setup(cli, port: int, *, tree=EXAMPLE1, multipart_final: str | None = None) -> None:
    """test_serve's world with the connection's default window."""
    serve_setup(cli, port, tree=tree, window=None, multipart_final=multipart_final)


def tree_file(tmp_path, rule: str, leaf: str, quantity: str = "segments"):
    f = tmp_path / f"tree-{rule}-{quantity}.yaml"
    f.write_text(TREE.format(rule=rule, leaf=leaf, quantity=quantity))
    return f


def ledger(db_url) -> tuple[Counter, dict[int, int]]:
    chg = Charge.__table__
    with get_engine(db_url).connect() as conn:
        kinds = Counter(conn.execute(sa.select(chg.c.kind)).scalars())
        by_edr = dict(conn.execute(sa.select(chg.c.edr_id, sa.func.sum(chg.c.amount)).group_by(chg.c.edr_id)).all())
    return kinds, {e: int(v) for e, v in by_edr.items()}


def queue_rows(db_url) -> list[dict]:
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]


def parts_seen(sim: SimSmsc) -> list[tuple[int, int, str, int]]:
    """(part number, parts, message id, registered_delivery) of every accepted long-message part."""
    out = []
    for mid, _dest, body, esm, _dc in sim.submitted:
        c = concatenation(esm, body)
        if c is not None:
            out.append((c[2], c[1], mid, sim.registered[mid]))
    return sorted(out)


# ---------------------------------------------------------------- item 4: one receipt per long message


@pytest.mark.parametrize(("vendor", "mode"), [("last", "last"), ("first", "any")])
def test_one_receipt_per_long_message_makes_it_final(cli, db_url, tmp_path, vendor, mode):
    """The vendor reports a long message once (for its last, or its first part):
    with the connection's matching --multipart-final the message ends delivered
    (under ``all`` it would wait for receipts that never come)."""
    opts = SmscOptions(port=free_port(), id_width=10, lifetime=120, receipt_parts=vendor)
    with SimSmsc(opts) as sim:
        setup(cli, sim.port, multipart_final=mode)
        assert cli.json("connection", "show", "sim")["multipart_final"] == mode
        phones = [f"3361234{i:04d}" for i in range(3)]
        cid = campaign(cli, tmp_path, phones, TWO_PARTS, "long")
        out = serve_once(cli)
        seen = parts_seen(sim)
        receipts_sent = sim.counters.receipts
    assert out["submitted"] == 3 and out["receipts"] == 3 and out["receipts_unmatched"] == 0, out
    assert out["receipt_statuses"] == {"delivered": 3} and receipts_sent == 3  # one per message
    rows = edrs(db_url)
    assert [(r["status"], r["segments"], r["segments_refused"]) for r in rows] == [("delivered", 2, None)] * 3
    assert all(r["delivered_at"] and r["cost"] == 100_000 for r in rows)  # 2 x 0.05
    assert cli.json("campaign", "show", str(cid))["queue"] == {"done": 3}
    # registered_delivery: under `last` on the last part only, under `any` on every part.
    assert [(n, total, rd) for n, total, _mid, rd in seen] == [(1, 2, 0 if mode == "last" else 1)] * 3 + [(2, 2, 1)] * 3
    # The id stored (for matching after a restart) is the part whose receipt is expected.
    want = 2 if mode == "last" else 1
    stored = {normalise_message_id(mid, "hex") for n, _t, mid, _rd in seen if n == want}
    assert {r["vendor_message_id"] for r in rows} == stored


def test_under_any_the_other_parts_receipts_are_extra_not_unmatched(cli, db_url, smsc, tmp_path):
    """A vendor that does report every part, on an ``any`` connection: the first
    receipt decides, the other parts' receipts are counted as extra (not stored
    as unknown receipts)."""
    setup(cli, smsc.port, multipart_final="any")
    campaign(cli, tmp_path, [f"3361234{i:04d}" for i in range(3)], THREE_PARTS, "long")
    out = serve_once(cli)
    assert out["receipts"] == 3 and out["receipts_unmatched"] == 0, out
    assert [r["status"] for r in edrs(db_url)] == ["delivered"] * 3
    assert cli.json("inbound", "list", "--kind", "receipt") == []
    # The first receipt of each message ends it, so `--once` may stop before the
    # other parts' receipts come (they stay unanswered at the SMSC). Every receipt
    # serve did answer (after storing what it made of it) was the deciding one or
    # an extra: none was taken for an unknown one. The SMSC counts an answer when
    # it reads it, which may be just after serve exits.
    end = time.monotonic() + 10
    while smsc.counters.receipts < out["receipts"] + out["receipts_extra"] and time.monotonic() < end:
        time.sleep(0.02)
    assert smsc.counters.receipts == out["receipts"] + out["receipts_extra"] <= 9, (smsc.counters, out)


def test_multipart_final_is_checked_and_kept(cli, db_url):
    setup(cli, free_port())
    assert cli.json("connection", "show", "sim")["multipart_final"] == "all"
    run = cli("connection", "update", "sim", "--multipart-final", "middle", expect=2)
    assert "--multipart-final" in run.stderr
    assert cli.json("connection", "update", "sim", "--multipart-final", "last")["multipart_final"] == "last"
    assert cli.json("connection", "list")[0]["multipart_final"] == "last"


def test_dev_smsc_refuses_an_unknown_receipt_mode(cli):
    run = cli("dev", "smsc", "--port", str(free_port()), "--receipt-parts", "middle", expect=4)
    assert run.stderr.startswith("error: --receipt-parts")


# ---------------------------------------------------------------- item 5: partly refused long messages


@pytest.mark.parametrize("refused_part", [1, 2])
def test_a_partly_refused_long_message_pays_for_the_parts_sent(cli, db_url, smsc, tmp_path, refused_part):
    """1 of 3 parts refused: the message was submitted with 2 parts, is charged
    for 2 (a refund row gives the third back, exact), and the receipts of the 2
    accepted parts make it delivered."""
    smsc.options.refuse_part = refused_part
    setup(cli, smsc.port)
    fr = ["33612340001", "33612340002"]  # rest of world: tier 0.05 per segment
    es = ["34600000001"]  # Vodafone Spain: flat 0.04 per segment
    cid = campaign(cli, tmp_path, fr + es, THREE_PARTS, "long")
    out = serve_once(cli)
    assert out["submitted"] == 3 and out["rejected"] == 0 and out["partly_refused"] == 3, out
    assert out["receipts"] == 3 and out["receipts_unmatched"] == 0 and out["receipt_statuses"] == {"delivered": 3}
    assert smsc.counters.accepted == 6 and smsc.counters.rejected == 3 and smsc.counters.receipts == 6

    rows = edrs(db_url)
    assert [(r["status"], r["segments"], r["segments_refused"], r["quantity"]) for r in rows] == [
        ("delivered", 2, 1, 2)
    ] * 3
    assert [r["cost"] for r in rows] == [100_000, 100_000, 80_000]
    assert all(r["submitted_at"] and r["delivered_at"] for r in rows)
    assert rows[0]["rating_note"].startswith(f"2 of 3 parts sent; part {refused_part} refused by the SMSC: 0x45 ")
    assert rows[0]["rating_note"].endswith("; refund of 0.05 EUR")
    assert "refund of 0.04 EUR" in rows[2]["rating_note"]
    kinds, by_edr = ledger(db_url)
    assert kinds == {"edr": 3, "refund": 3}
    assert all(by_edr[r["id"]] == r["cost"] for r in rows)  # Σ ledger rows of an EDR = its cost
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.28"  # 2 x 0.10 + 0.08
    cnt = ScaleCounter.__table__
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(cnt.c.quantity)).scalars().all() == [4]  # the French parts sent
    q = queue_rows(db_url)
    assert {r["state"] for r in q} == {"done"}
    assert all(r["error"].startswith("1 of 3 parts refused: 0x45") for r in q)
    assert cli.json("campaign", "show", str(cid))["queue"] == {"done": 3}

    # Idempotent: recording the same refusal again changes nothing.
    from cpaas_cli.charging import refunds
    from cpaas_cli.charging.plans import Plans
    from cpaas_cli.db.engine import make_session

    s = make_session(get_engine(db_url), actor="test", command="test")
    try:
        again = refunds.refund_refused_parts(
            s, {r["id"]: (2, 1, "again") for r in rows}, Plans(s), now=rows[0]["prepared_at"]
        )
        s.commit()
    finally:
        s.close()
    assert again == {"edrs": 0, "refunded": 0, "amount": 0}
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.28"


def test_last_part_refused_under_last_closes_the_message(cli, db_url, tmp_path):
    """Under ``last`` only the last part asks for a receipt: when the SMSC refuses
    it, no receipt can come, and the message is closed at once as undelivered
    with the refusal's code; the 2 parts sent are charged."""
    opts = SmscOptions(port=free_port(), id_width=10, lifetime=120, receipt_parts="last", refuse_part=3)
    with SimSmsc(opts) as sim:
        setup(cli, sim.port, multipart_final="last")
        campaign(cli, tmp_path, ["33612340001"], THREE_PARTS, "long")
        out = serve_once(cli)
        assert sim.counters.receipts == 0 and sim.counters.rejected == 1
    assert out["submitted"] == 1 and out["partly_refused"] == 1 and out["receipts"] == 0, out
    (r,) = edrs(db_url)
    assert (r["status"], r["vendor_error"], r["segments"], r["segments_refused"]) == ("undelivered", "0x45", 2, 1)
    assert r["undelivered_at"] and r["cost"] == 100_000
    assert [q["state"] for q in queue_rows(db_url)] == ["done"]
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.10"


def test_delivered_rule_charges_the_parts_sent_at_delivery(cli, db_url, smsc, tmp_path):
    """Billing rule delivered: nothing is charged at submit, so nothing comes back;
    the receipt rates the parts that were sent."""
    smsc.options.refuse_part = 2
    setup(cli, smsc.port, tree=tree_file(tmp_path, "delivered", '{price: "0.05"}'))
    campaign(cli, tmp_path, ["33612340001"], THREE_PARTS, "long")
    out = serve_once(cli)
    assert out["submitted"] == 1 and out["partly_refused"] == 1 and out["receipts"] == 1, out
    (r,) = edrs(db_url)
    assert (r["status"], r["segments"], r["segments_refused"]) == ("delivered", 2, 1)
    assert (r["billing_rule"], r["quantity"], r["cost"]) == ("delivered", 2, 100_000)
    kinds, by_edr = ledger(db_url)
    assert kinds == {"edr": 1} and by_edr[r["id"]] == 100_000


def test_billed_per_message_a_partly_sent_message_keeps_its_charge(cli, db_url, smsc, tmp_path):
    smsc.options.refuse_part = 3
    setup(cli, smsc.port, tree=tree_file(tmp_path, "submitted", '{price: "0.05"}', quantity="messages"))
    campaign(cli, tmp_path, ["33612340001"], THREE_PARTS, "long")
    out = serve_once(cli)
    assert out["submitted"] == 1 and out["partly_refused"] == 1 and out["receipts"] == 1, out
    (r,) = edrs(db_url)
    assert (r["status"], r["segments"], r["segments_refused"], r["quantity"], r["cost"]) == (
        "delivered",
        2,
        1,
        1,
        50_000,
    )
    assert r["rating_note"].endswith("; billed per message")
    assert ledger(db_url)[0] == {"edr": 1}


def test_every_part_refused_fails_and_refunds_the_whole_message(cli, db_url, smsc, tmp_path):
    smsc.fail_next(3, 0x0B)
    setup(cli, smsc.port)
    campaign(cli, tmp_path, ["33612340001"], THREE_PARTS, "long")
    out = serve_once(cli)
    assert out["submitted"] == 0 and out["rejected"] == 1 and out["refunded"] == 1 and out["partly_refused"] == 0
    (r,) = edrs(db_url)
    assert (r["status"], r["segments"], r["segments_refused"], r["cost"]) == ("failed", 3, None, 0)
    assert ledger(db_url)[0] == {"edr": 1, "refund": 1}
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.00"


def test_back_to_first_is_priced_again_for_the_parts_sent(cli, db_url, smsc, tmp_path):
    """A back-to-first scale: 3 units at 0.05, then a 3-part message crosses the
    step (all 6 at 0.03: its charge 0.09 and −0.06 for the earlier 3). One part
    refused: 5 units do not reach the step, so the period costs 5 x 0.05 and the
    difference is charged (the ledger holds the exact price of what was sent)."""
    leaf = '{scale: {type: back_to_first, steps: [[5, "0.05"], [null, "0.03"]]}}'
    setup(cli, smsc.port, tree=tree_file(tmp_path, "submitted", leaf))
    campaign(cli, tmp_path, ["33612340001"], THREE_PARTS, "first")
    assert serve_once(cli)["submitted"] == 1
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.15"
    smsc.options.refuse_part = 2
    campaign(cli, tmp_path, ["33612340002"], THREE_PARTS, "second")
    out = serve_once(cli)
    assert out["submitted"] == 1 and out["partly_refused"] == 1, out
    first, second = edrs(db_url)
    assert (second["segments"], second["segments_refused"], second["cost"]) == (2, 1, 100_000)
    kinds, by_edr = ledger(db_url)
    assert kinds == {"edr": 2, "scale_adjustment": 1, "refund": 1}
    assert by_edr[first["id"]] == 150_000 and by_edr[second["id"]] == 100_000
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.25"  # 5 x 0.05
    cnt = ScaleCounter.__table__
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(cnt.c.quantity)).scalars().all() == [5]


# ---------------------------------------------------------------- the bookkeeping, without a network


def test_receipt_flags_per_mode():
    assert mp.receipt_flags("all", 3) == mp.receipt_flags("any", 3) == (True, True, True)
    assert mp.receipt_flags("last", 3) == (False, False, True)
    assert mp.receipt_flags("last", 1) == (True,)


def test_settle_and_count_receipts():
    a = mp.Answers(1, 10, 3)
    assert not a.accept(0, "a") and not a.refuse(1, 0x45, "submit failed") and a.accept(2, "c")
    got = mp.settle("all", a)
    assert (got.sent, got.partial, got.failed, got.key_id, got.error) == (
        2,
        True,
        False,
        "a",
        ("0x45", "submit failed"),
    )
    assert got.awaiting.ids == ("a", "c") and got.awaiting.needed == 2
    assert (got.summary(), got.why()) == (
        "1 of 3 parts refused: 0x45 submit failed",
        "part 2 refused by the SMSC: 0x45 submit failed",
    )
    assert not got.awaiting.count("undelivered", "001") and got.awaiting.count("delivered", None)
    assert (got.awaiting.worst, got.awaiting.err) == ("undelivered", "001")
    anyone = mp.settle("any", a).awaiting
    assert anyone.count("delivered", None) and not anyone.count("delivered", None)  # final once
    closed = mp.settle("last", a)
    assert closed.key_id == "c" and closed.awaiting.ids == ("c",)
    b = mp.Answers(2, 20, 2)
    b.accept(0, "x")
    b.refuse(1, 0x0B, "bad")
    assert mp.settle("last", b).closed and mp.settle("last", b).awaiting is None
    c = mp.Answers(3, 30, 2)
    c.refuse(0, 0x0B, "bad")
    c.refuse(1, 0x45, "fail")
    assert mp.settle("all", c).failed and mp.settle("all", c).error == ("0x0B", "bad")


def test_finished_parts_are_recognised_once():
    w = mp.Awaiting(1, 10, ("a", "b", "c"), 1)
    awaiting = {"b": w, "c": w}  # "a" was just taken by its receipt
    done = mp.Finished(size=2)
    mp.close(awaiting, done, w, "a")
    assert awaiting == {} and done.take("b") and not done.take("b") and done.take("c")
    done.add(("1", "2", "3"))
    assert not done.take("1") and done.take("3")  # bounded: the oldest went
