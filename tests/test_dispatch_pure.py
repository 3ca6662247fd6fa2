"""Pure parts of dispatch: message-id normalisation, receipt text, status map, token bucket,
reading a deliver_sm / data_sm into an event."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from cpaas_cli.dispatch.deliver_pdu import inbound_event
from cpaas_cli.dispatch.gateway import DeliveryReceipt, InboundAck, MobileOriginated
from cpaas_cli.dispatch.receipts import StatusMap, normalise_message_id, parse_id_formats, parse_receipt_text
from cpaas_cli.dispatch.throttle import Backoff, TokenBucket
from cpaas_cli.errors import InvalidInput


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        # auto: the id as written, case and leading zeros folded, never read in another base
        ("1A2B", "auto", "1a2b"),
        ("1a2b", "auto", "1a2b"),
        ("00001A2B", "auto", "1a2b"),
        (b"1a2b\x00", "auto", "1a2b"),
        ("000123", "auto", "123"),
        ("0000000A", "auto", "a"),
        ("00000010", "auto", "10"),
        ("0000", "auto", "0"),
        ("123", "dec", "123"),
        ("0123", "hex", str(0x123)),
        ("ff", "hex", "255"),
        ("FF", "hex", "255"),
        ("255", "dec", "255"),
        (" 42 ", "dec", "42"),
        ("abc-DEF-1", "auto", "abc-def-1"),
        ("ABC-def", "text", "abc-def"),
        ("00123", "text", "00123"),
        ("", "auto", None),
        ("\x00", "auto", None),
        (None, "auto", None),
    ],
)
def test_normalise_message_id(value, fmt, expected):
    assert normalise_message_id(value, fmt) == expected


def test_hex_submit_and_decimal_receipt_meet_with_explicit_formats():
    submit, receipt = parse_id_formats("hex:dec")
    assert normalise_message_id("0000FF", submit) == normalise_message_id("255", receipt)
    # Without the explicit formats the ids stay as written (the relation is learned per connection).
    assert normalise_message_id("1234", "auto") != normalise_message_id(str(0x1234), "auto")


def test_auto_never_maps_two_vendor_ids_to_one_key():
    """The old auto read digits-only ids as decimal and the others as hex:
    0000000A and 00000010 both became 10."""
    ids = [f"{n:08X}" for n in range(1, 5000)] + [f"{n:08d}" for n in range(1, 5000)]
    keys = {}
    for raw in ids:
        keys.setdefault(normalise_message_id(raw, "auto"), set()).add(raw.lstrip("0").lower())
    assert all(len(v) == 1 for v in keys.values())
    assert normalise_message_id("0000000A", "auto") != normalise_message_id("00000010", "auto")


def test_parse_id_formats():
    assert parse_id_formats(None) == ("auto", "auto")
    assert parse_id_formats("HEX") == ("hex", "hex")
    assert parse_id_formats("hex:dec") == ("hex", "dec")
    with pytest.raises(InvalidInput):
        parse_id_formats("octal")


@pytest.mark.parametrize(
    ("raw", "mid", "stat", "err", "done"),
    [
        (
            "id:1A2B sub:001 dlvrd:001 submit date:2401011200 done date:2401011205 stat:DELIVRD err:000 text:Hi",
            "1A2B",
            "DELIVRD",
            "000",
            datetime(2024, 1, 1, 12, 5, tzinfo=UTC),
        ),
        (
            "id:77 sub:001 dlvrd:000 submit date:240101120000 done date:240101120130 stat:undeliv err:034 text:",
            "77",
            "UNDELIV",
            "034",
            datetime(2024, 1, 1, 12, 1, 30, tzinfo=UTC),
        ),
        ("ID:abc STAT:EXPIRED ERR:1", "abc", "EXPIRED", "1", None),
        ("id:9 stat:REJECTD err:5 text:stat:DELIVRD in the text", "9", "REJECTD", "5", None),
        ("id:9 done date:9999999999 stat:DELIVRD", "9", "DELIVRD", None, None),
    ],
)
def test_parse_receipt_text(raw, mid, stat, err, done):
    r = parse_receipt_text(raw)
    assert (r.message_id, r.stat, r.err, r.done_at) == (mid, stat, err, done)


def test_parse_receipt_text_rejects_free_text():
    assert parse_receipt_text("hello there") is None
    assert parse_receipt_text(b"") is None


def test_status_map_defaults_and_overrides():
    default = StatusMap()
    assert default.status("DELIVRD", "000") == "delivered"
    assert default.status("undeliv", "1") == "undelivered"
    assert default.status("EXPIRED") == "expired"
    assert default.status("REJECTD") == "rejected"
    assert default.status("ACCEPTD") == "enroute"
    assert default.status("WHATEVER") == "unknown"
    assert default.status(None) == "unknown"
    custom = StatusMap.from_dict({"stat": {"DELETED": "expired", "UNDELIV/34": "rejected"}, "err": {"011": "rejected"}})
    assert custom.status("DELETED") == "expired"
    assert custom.status("UNDELIV", "034") == "rejected"
    assert custom.status("UNDELIV", "035") == "undelivered"
    assert custom.status("UNDELIV", "11") == "rejected"
    assert StatusMap.from_dict({"DELIVRD": "unknown"}).status("DELIVRD") == "unknown"


def test_status_map_refuses_unknown_statuses():
    with pytest.raises(InvalidInput) as info:
        StatusMap.from_dict({"stat": {"DELIVRD": "done"}, "err": {"1": "bogus"}, "other": {}})
    assert len(info.value.problems) == 3


def test_status_map_file(tmp_path):
    f = tmp_path / "map.yaml"
    f.write_text("stat:\n  DELETED: expired\nerr:\n  '069': rejected\n")
    m = StatusMap.load(f)
    assert m.status("DELETED") == "expired" and m.status("UNDELIV", "69") == "rejected"
    j = tmp_path / "map.json"
    j.write_text('{"stat": {"UNKNOWN": "undelivered"}}')
    assert StatusMap.load(j).status("UNKNOWN") == "undelivered"
    with pytest.raises(InvalidInput):
        StatusMap.load(tmp_path / "missing.json")


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_token_bucket_holds_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(64, burst=5, clock=clock)
    assert sum(bucket.take() for _ in range(10)) == 5  # the burst, then nothing
    assert bucket.delay() == pytest.approx(1 / 64)
    taken = 0
    for _ in range(640):  # 10 simulated seconds in 1/64 s steps (exact in binary)
        clock.t += 1 / 64
        while bucket.take():
            taken += 1
    assert taken == 640  # 64/s for 10 s


def test_token_bucket_idle_does_not_bank_more_than_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    assert bucket.burst == 1
    clock.t += 3600
    assert bucket.take() and not bucket.take()
    assert bucket.delay() == pytest.approx(0.1)


def test_unlimited_bucket():
    bucket = TokenBucket(None, clock=FakeClock())
    assert all(bucket.take() for _ in range(10_000)) and bucket.delay() == 0


def test_backoff():
    b = Backoff(0.1, 2, 1.0)
    assert [b.next() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.reset()
    assert b.next() == 0.1


def test_inbound_event_receipt_from_the_tlvs():
    # No receipt text: the id from receipted_message_id, the stat from message_state,
    # the err from network_error_code (type, then two bytes of code).
    pdu = SimpleNamespace(
        esm_class=0x04,
        short_message=b"",
        source_addr=b"34600000001",
        destination_addr="SENDER",
        receipted_message_id=b"00001A2B",
        message_state=5,
        network_error_code=b"\x03\x00\x22",
    )
    ack = InboundAck(1, 7, "data_sm")
    r = inbound_event(pdu, id_format="auto", status_map=StatusMap(), ack=ack)
    assert isinstance(r, DeliveryReceipt)
    assert (r.message_id, r.id_from_tlv, r.stat, r.err, r.status) == ("1a2b", True, "UNDELIV", "34", "undelivered")
    assert (r.source, r.destination, r.ack) == ("34600000001", "SENDER", ack)


def test_inbound_event_receipt_from_the_text():
    text = b"id:0123 sub:001 dlvrd:001 submit date:2401021530 done date:2401021531 stat:DELIVRD err:000 text:hi"
    pdu = SimpleNamespace(esm_class=0x04, short_message=text, source_addr="", destination_addr="")
    r = inbound_event(pdu, id_format="hex", status_map=StatusMap())
    assert (r.message_id, r.id_from_tlv, r.stat, r.status, r.ack) == (str(0x123), False, "DELIVRD", "delivered", None)


def test_inbound_event_mo_ucs2_behind_a_udh():
    udh = b"\x05\x00\x03\x01\x02\x01"
    pdu = SimpleNamespace(
        esm_class=0x40,
        data_coding=0x08,
        short_message=None,
        message_payload=udh + "¿Sí?".encode("utf-16-be"),
        source_addr="600000001",
        source_addr_ton=2,
        destination_addr="34600000002",
    )
    m = inbound_event(pdu, id_format="auto", status_map=StatusMap())
    assert isinstance(m, MobileOriginated)
    assert (m.text, m.data_coding, m.source_ton, m.raw[:6]) == ("¿Sí?", 0x08, 2, udh)
