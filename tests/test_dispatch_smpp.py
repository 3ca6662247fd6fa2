"""The SMPP gateway against a real SMSC (the smpp34 server on 127.0.0.1).

Every loop is bounded by a deadline; nothing asserts on speed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from cpaas_cli.dispatch.gateway import (
    DeliveryReceipt,
    Gateway,
    LinkChanged,
    MobileOriginated,
    Part,
    SubmitAccepted,
    SubmitRejected,
    WireMessage,
)
from cpaas_cli.dispatch.smpp import ESME_RMSGQFUL, ESME_RTHROTTLED, SmppGateway, SmppSettings
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port, parse_stat_mix
from cpaas_cli.dispatch.throttle import Backoff

DEADLINE = 30.0


@pytest.fixture
def smsc():
    sim = SimSmsc(SmscOptions(port=free_port(), id_width=12, lifetime=120))
    sim.start()
    yield sim
    sim.stop()


def settings(port: int, **kw) -> SmppSettings:
    kw.setdefault("window", 10)
    kw.setdefault("reconnect", Backoff(0.05, 2.0, 0.5))
    return SmppSettings(name="sim", host="127.0.0.1", port=port, system_id="cpaas", password="pw", **kw)


def message(i: int, text: bytes = b"Hello") -> WireMessage:
    return WireMessage.single("CPAAS", f"3361{i:07d}", text + b" %d" % i, data_coding=3, ref=i)


def drive(gw, until, *, feed=None, deadline: float = DEADLINE) -> list:
    """Poll (and feed) until ``until(events)`` holds; fails at the deadline."""
    events: list = []
    end = time.monotonic() + deadline
    while not until(events):
        assert time.monotonic() < end, f"gave up after {deadline}s: {Counter(type(e).__name__ for e in events)}"
        if feed:
            feed()
        events.extend(gw.poll(0.05))
    return events


def count(events, kind) -> int:
    return sum(isinstance(e, kind) for e in events)


def test_it_is_a_gateway(smsc):
    assert isinstance(SmppGateway(settings(smsc.port)), Gateway)


def test_500_messages_window_10_all_accepted_with_receipts(smsc):
    gw = SmppGateway(settings(smsc.port, window=10))
    gw.open()
    tickets = {gw.submit(message(i)): i for i in range(500)}
    events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 500 and count(ev, DeliveryReceipt) == 500)
    gw.close()
    accepted = [e for e in events if isinstance(e, SubmitAccepted)]
    receipts = [e for e in events if isinstance(e, DeliveryReceipt)]
    assert {e.ticket for e in accepted} == set(tickets)
    # The SMSC writes zero-padded upper-case hex; both sides normalise to the same key.
    assert all(e.raw_message_id.startswith("0000") for e in accepted)
    assert {e.message_id for e in accepted} == {r.message_id for r in receipts}
    assert {r.status for r in receipts} == {"delivered"} and all(r.done_at for r in receipts)
    assert gw.stats.peak_inflight == 10 and gw.stats.accepted == 500
    assert gw.pending() == [] and gw.backlog() == 0
    assert count(events, SubmitRejected) == 0


def test_receipts_by_text_with_hex_submit_and_decimal_receipt_ids():
    opts = SmscOptions(port=free_port(), receipt_tlv=False, receipt_id_format="dec", first_id=0xABCD, lifetime=60)
    opts.stat_mix = parse_stat_mix("DELIVRD=2,UNDELIV=1,EXPIRED=1")
    with SimSmsc(opts) as sim:
        gw = SmppGateway(settings(sim.port, id_formats=("hex", "dec")))
        gw.open()
        for i in range(8):
            gw.submit(message(i))
        # Both counts: the SMSC may send a receipt before its submit_sm_resp reaches us.
        events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 8 and count(ev, DeliveryReceipt) == 8)
        gw.close()
    accepted = {e.message_id for e in events if isinstance(e, SubmitAccepted)}
    receipts = [e for e in events if isinstance(e, DeliveryReceipt)]
    assert {r.message_id for r in receipts} == accepted
    assert str(0xABCD) in accepted
    assert Counter(r.status for r in receipts) == {"delivered": 4, "undelivered": 2, "expired": 2}
    assert all(r.raw.startswith(f"id:{int(r.message_id)} ") for r in receipts)


def test_two_part_message_goes_as_two_submits_with_udh(smsc):
    udh1, udh2 = bytes([5, 0, 3, 0x42, 2, 1]), bytes([5, 0, 3, 0x42, 2, 2])
    msg = WireMessage("CPAAS", "33612345678", (Part(b"A" * 153, udh1, 0), Part(b"B" * 10, udh2, 0)))
    gw = SmppGateway(settings(smsc.port))
    gw.open()
    ticket = gw.submit(msg)
    assert gw.pending() == [ticket]
    events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 2)
    gw.close()
    parts = sorted((e.part, e.parts) for e in events if isinstance(e, SubmitAccepted))
    assert parts == [(0, 2), (1, 2)] and gw.pending() == []
    bodies = sorted((body, esm) for _, _, body, esm, _ in smsc.submitted)  # the SMSC may see them in any order
    assert bodies == [(udh1 + b"A" * 153, 0x40), (udh2 + b"B" * 10, 0x40)]


def test_throttled_and_queue_full_are_retried_until_accepted(smsc):
    smsc.fail_next(5, ESME_RTHROTTLED)
    smsc.fail_next(5, ESME_RMSGQFUL)
    gw = SmppGateway(settings(smsc.port, window=4, throttle_initial=0.01, throttle_max=0.05))
    gw.open()
    tickets = {gw.submit(message(i)) for i in range(40)}
    events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 40)
    gw.close()
    assert count(events, SubmitRejected) == 0
    assert {e.ticket for e in events if isinstance(e, SubmitAccepted)} == tickets
    assert gw.stats.retried == 10 and smsc.counters.rejected == 10 and smsc.counters.accepted == 40


def test_other_errors_are_given_back(smsc):
    smsc.fail_next(1, 0x0B)  # ESME_RINVDSTADR
    gw = SmppGateway(settings(smsc.port, window=1))  # one at a time, so the first one is the rejected one
    gw.open()
    bad = gw.submit(message(1))
    good = gw.submit(message(2))
    events = drive(gw, lambda ev: count(ev, SubmitAccepted) + count(ev, SubmitRejected) == 2)
    gw.close()
    (rej,) = [e for e in events if isinstance(e, SubmitRejected)]
    assert (rej.ticket, rej.status, rej.retryable) == (bad, 0x0B, False)
    assert [e.ticket for e in events if isinstance(e, SubmitAccepted)] == [good]


def test_mo_arrives_as_mobile_originated(smsc):
    gw = SmppGateway(settings(smsc.port))
    gw.open()
    assert smsc.wait_bound()
    smsc.inject_mo("33698765432", "CPAAS", "Stop, merci")
    smsc.inject_mo("33698765432", "CPAAS", "Привет")
    events = drive(gw, lambda ev: count(ev, MobileOriginated) == 2)
    gw.close()
    mo = [e for e in events if isinstance(e, MobileOriginated)]
    assert sorted((m.source, m.dest, m.text, m.data_coding) for m in mo) == [
        ("33698765432", "CPAAS", "Stop, merci", 3),
        ("33698765432", "CPAAS", "Привет", 8),
    ]


def test_enquire_link_keeps_an_idle_link_up(smsc):
    gw = SmppGateway(settings(smsc.port, enquire_every=0.05))
    gw.open()
    end = time.monotonic() + DEADLINE
    events: list = []
    while gw.stats.enquire_links < 3:
        assert time.monotonic() < end
        events.extend(gw.poll(0.05))
    assert count(events, LinkChanged) == 0 and gw.connected
    gw.submit(message(1))
    drive(gw, lambda ev: count(ev, SubmitAccepted) == 1)
    gw.close()


def test_open_fails_clearly_when_nothing_listens():
    from cpaas_cli.errors import Upstream

    port = free_port()
    with pytest.raises(Upstream, match=f"cannot bind to 127.0.0.1:{port}"):
        SmppGateway(settings(port, connect_timeout=2)).open()


def _dev_smsc(port: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cpaas_cli", "dev", "smsc", "--port", str(port), "--lifetime", "60", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            assert proc.poll() is None, "cpaas dev smsc exited"
            assert time.monotonic() < end, "cpaas dev smsc did not start listening"
            time.sleep(0.05)


def test_peer_killed_mid_stream_reconnects_and_requeues_unacknowledged():
    port = free_port()
    first = _dev_smsc(port, "--hold-after", "100", "--no-receipts")
    second = None
    try:
        gw = SmppGateway(settings(port, window=10))
        gw.open()
        tickets = {gw.submit(message(i)) for i in range(200)}
        # The SMSC answers 100 submits, then holds the next ones: the window fills up.
        events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 100 and gw.inflight() == 10)
        first.kill()
        first.wait(10)
        events += drive(gw, lambda ev: any(isinstance(e, LinkChanged) and not e.up for e in ev))
        second = _dev_smsc(port, "--no-receipts")
        events += drive(gw, lambda ev: count(ev, SubmitAccepted) == 100)
        gw.close()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    drops = [e for e in events if isinstance(e, LinkChanged) and not e.up]
    assert drops[0].requeued == 10 and sum(d.requeued for d in drops) == 10
    assert gw.stats.requeued == 10 and gw.stats.accepted == 200
    accepted = [e.ticket for e in events if isinstance(e, SubmitAccepted)]
    assert sorted(accepted) == sorted(tickets)  # each exactly once
    assert any(isinstance(e, LinkChanged) and e.up for e in events)


def test_receipts_in_data_sm_are_read_and_answered_with_data_sm_resp():
    """Some vendors send receipts as data_sm: each is answered with
    data_sm_resp (not deliver_sm_resp) and read like a deliver_sm receipt."""
    with SimSmsc(SmscOptions(port=free_port(), id_width=8, receipt_pdu="data_sm", lifetime=60)) as sim:
        gw = SmppGateway(settings(sim.port))
        gw.open()
        for i in range(20):
            gw.submit(message(i))
        events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 20 and count(ev, DeliveryReceipt) == 20)
        end = time.monotonic() + DEADLINE
        while sim.counters.data_sm_resp + sim.counters.wrong_resp < 20:  # the last responses are on their way
            assert time.monotonic() < end
            gw.poll(0.05)
        gw.close()
    accepted = {e.message_id for e in events if isinstance(e, SubmitAccepted)}
    receipts = [e for e in events if isinstance(e, DeliveryReceipt)]
    assert {r.message_id for r in receipts} == accepted and all(r.status == "delivered" for r in receipts)
    assert (sim.counters.data_sm, sim.counters.data_sm_resp, sim.counters.wrong_resp) == (20, 20, 0)


def test_an_mo_says_the_type_of_number_of_its_source(smsc):
    gw = SmppGateway(settings(smsc.port))
    gw.open()
    assert smsc.wait_bound()
    smsc.inject_mo("600000001", "CPAAS", "STOP", source_ton=2)
    smsc.inject_mo("34600000001", "CPAAS", "STOP", source_ton=1)
    events = drive(gw, lambda ev: count(ev, MobileOriginated) == 2)
    gw.close()
    assert sorted((m.source, m.source_ton) for m in events if isinstance(m, MobileOriginated)) == [
        ("34600000001", 1),
        ("600000001", 2),
    ]


def test_deferred_answers_wait_for_ack_and_unanswered_ones_come_again_after_a_rebind(smsc):
    """defer_acks: a deliver_sm is answered only by ack(); a link that drops
    before it leaves it unanswered, and the SMSC sends it again on the next bind.
    An ack never answers on a later link than the PDU's."""
    gw = SmppGateway(settings(smsc.port, defer_acks=True))
    gw.open()
    assert smsc.wait_bound()
    smsc.inject_mo("33600000001", "CPAAS", "STOP")
    (first,) = [e for e in drive(gw, lambda ev: count(ev, MobileOriginated) == 1) if isinstance(e, MobileOriginated)]
    assert first.ack is not None and first.ack.command == "deliver_sm"
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # polling alone never answers it
        gw.poll(0.05)
    assert smsc.counters.mo == 0 and gw.stats.acked == 0

    gw.close()  # as if serve died before storing it
    gw.open()
    (again,) = [e for e in drive(gw, lambda ev: count(ev, MobileOriginated) == 1) if isinstance(e, MobileOriginated)]
    assert (again.source, again.text) == (first.source, first.text)
    assert smsc.counters.unanswered == 1 and smsc.counters.redelivered == 1
    assert gw.ack([first]) == 0  # the first link's sequence number means nothing now
    assert gw.ack([again]) == 1
    end = time.monotonic() + DEADLINE
    while smsc.counters.mo < 1:
        assert time.monotonic() < end, "the SMSC never got the answer"
        gw.poll(0.05)
    gw.close()
    assert smsc.counters.mo == 1 and smsc.counters.unanswered == 1


def test_the_doorbell_ends_a_poll_waiting_on_the_bind(smsc):
    """A worker waits for receipts inside ``poll``, selecting on its bind and its
    doorbell: a ring ends that wait (an hour here), and the bell is left for its
    owner to clear. The deadline only bounds a failure."""
    import threading

    from cpaas_cli.dispatch import doorbell

    gw = SmppGateway(settings(smsc.port))
    gw.open()
    bell = doorbell.register()
    try:
        done = threading.Event()

        def wait() -> None:
            gw.poll(3600, wake=bell)
            done.set()

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        doorbell.ring()
        assert done.wait(DEADLINE), "the ring did not end the poll"
        waiter.join()
        assert bell.is_set()  # watched, not read: the worker clears it before its next look at the queue
        assert gw.poll(3600, wake=bell) == []  # still rung: returns at once
        bell.clear()
        gw.submit(message(1))
        events = drive(gw, lambda ev: count(ev, SubmitAccepted) == 1)  # the bind works as before
        assert count(events, SubmitAccepted) == 1
    finally:
        doorbell.unregister(bell)
        gw.close()
