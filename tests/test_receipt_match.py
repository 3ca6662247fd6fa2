"""Receipt matching (dispatch/receipt_match.py) with messages waiting in memory:
an id that could name two messages is never applied, and what is learned
about a vendor's receipt ids becomes fixed."""

from __future__ import annotations

import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.dispatch.gateway import DeliveryReceipt
from cpaas_cli.dispatch.multipart import Awaiting
from cpaas_cli.dispatch.receipt_match import CONVERTED, SAME, IdRelation, ReceiptMatcher, other_base
from cpaas_cli.models.dispatch import InboundMessage


def receipt(mid: str, stat: str = "DELIVRD", *, tlv: bool = False) -> DeliveryReceipt:
    status = "delivered" if stat == "DELIVRD" else "undelivered"
    return DeliveryReceipt(mid, stat, None, None, f"id:{mid} stat:{stat}", status, id_from_tlv=tlv)


def stored(session) -> list[tuple[str, str]]:
    t = InboundMessage.__table__
    return [tuple(r) for r in session.execute(sa.select(t.c.message_id, t.c.reason).order_by(t.c.id))]


def test_other_base():
    assert other_base("10") == "a" and other_base("a") == "10" and other_base("1a") == "26"
    assert other_base("7") is None and other_base("abc-1") is None and other_base("xyz") is None


def test_an_id_naming_two_messages_is_stored_with_the_reason_never_applied(session):
    """Hex ids a (EDR 1) and 10 (EDR 2); the receipt text says 10, which is 10 as
    written or a written in decimal. Nothing learned: not applied to either."""
    m = ReceiptMatcher(None, learn=IdRelation())
    m.expect(Awaiting(101, 1, ("a",), 1))
    m.expect(Awaiting(102, 2, ("10",), 1))
    out = m.match(session, [receipt("10", "UNDELIV")], clock.now(), final=True)
    assert out == {} and m.ambiguous == 1 and m.unmatched == 1
    ((mid, reason),) = stored(session)
    assert mid == "10" and reason.startswith("ambiguous id 10")
    assert "EDR #1" in reason and "EDR #2" in reason
    assert set(m.awaiting) == {"a", "10"}  # both still wait for their own receipts


def test_the_receipted_message_id_tlv_is_read_as_written(session):
    m = ReceiptMatcher(None, learn=IdRelation())
    m.expect(Awaiting(101, 1, ("a",), 1))
    m.expect(Awaiting(102, 2, ("10",), 1))
    out = m.match(session, [receipt("10", tlv=True)], clock.now(), final=True)
    assert out == {2: (102, "delivered", None)} and stored(session) == []


def test_a_receipt_id_with_a_hex_letter_fixes_same_for_hex_vendors(session):
    learn = IdRelation()
    m = ReceiptMatcher(None, learn=learn)
    m.expect(Awaiting(101, 1, ("a",), 1))
    m.expect(Awaiting(102, 2, ("10",), 1))
    out = m.match(session, [receipt("a")], clock.now())
    assert out == {1: (101, "delivered", None)} and learn.fixed == SAME
    # Fixed: "10" is now read as written only.
    out = m.match(session, [receipt("10", "UNDELIV")], clock.now())
    assert out == {2: (102, "undelivered", None)}


def test_converted_readings_wait_until_learned_then_apply(session):
    """Decimal receipt ids for hex submit ids: each receipt only matches read
    in the other base; they wait (their own message may not be acknowledged
    yet) until LEARN_AFTER of them fix the relation, then all apply, and the
    ambiguous one resolves too."""
    learn = IdRelation()
    m = ReceiptMatcher(None, learn=learn)
    for edr, key in enumerate(["a", "b", "c", "10"], start=1):
        m.expect(Awaiting(100 + edr, edr, (key,), 1))
    now = clock.now()
    assert m.match(session, [receipt("11")], now) == {}  # b, or 11 (unknown): waits
    assert learn.fixed is None and len(m.pending) == 1
    out = m.match(session, [receipt("12"), receipt("10"), receipt("16")], now)
    assert learn.fixed == CONVERTED
    assert out == {
        2: (102, "delivered", None),  # 11 -> b
        3: (103, "delivered", None),  # 12 -> c
        1: (101, "delivered", None),  # 10 -> a (not the message whose id is 10)
        4: (104, "delivered", None),  # 16 -> 10
    }
    assert stored(session) == [] and m.pending == []


def test_contradicting_evidence_learns_nothing(session):
    learn = IdRelation()
    for relation in (SAME, CONVERTED, SAME, SAME, SAME):
        learn.vote(relation)
    assert learn.fixed is None


def test_a_learned_relation_comes_back_fixed():
    assert IdRelation("converted").readings("10", False) == [("a", CONVERTED)]
    assert IdRelation("same").readings("10", False) == [("10", SAME)]
    assert IdRelation().readings("10", False) == [("10", SAME), ("a", CONVERTED)]


def test_a_second_receipt_for_one_message_is_kept_not_applied_twice(session):
    m = ReceiptMatcher(None, learn=IdRelation("same"))
    m.expect(Awaiting(101, 1, ("abc",), 1))
    out = m.match(session, [receipt("abc"), receipt("abc", "UNDELIV")], clock.now())  # keys, as the gateway folds them
    assert out == {1: (101, "delivered", None)} and m.pending == []
    assert stored(session) == [("abc", "a second receipt for message id abc")]
