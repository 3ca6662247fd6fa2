"""A long-running dispatch worker woken by the doorbell while it waits for
receipts (``dispatch/doorbell.py``), against the smpp34 SMSC.

The worker's waits are an hour long here (its pauses, and the slices in which
it looks at its stop event) and the SMSC holds its receipts, so the worker sits
in one ``poll`` of its bind: a message queued then is sent only because the
ring ends that wait (with the bell not watched by the poll, the test fails at
its deadline). The deadlines only bound a failure; nothing asserts on speed.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch import doorbell
from cpaas_cli.dispatch.connections import smpp_settings
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from cpaas_cli.dispatch.txrx import make_gateway
from cpaas_cli.dispatch.worker import Worker, WorkerOptions
from cpaas_cli.models.campaigns import OutboundMessage
from cpaas_cli.models.dispatch import VendorConnection
from tests.test_serve import campaign, setup

DEADLINE = 30.0
HOUR = 3600.0


@pytest.fixture
def smsc():
    sim = SimSmsc(SmscOptions(port=free_port(), id_width=10, lifetime=120, receipt_delay=HOUR))
    sim.start()
    yield sim
    sim.stop()


def until(what, check) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)


def submitted(engine) -> list[str]:
    t = OutboundMessage.__table__
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.c.phone).where(t.c.state == "submitted").order_by(t.c.id)).scalars())


def test_a_message_queued_while_the_worker_waits_for_receipts_is_sent_at_the_ring(
    cli, db_url, smsc, tmp_path, monkeypatch
):
    monkeypatch.setattr(doorbell, "SLICE_S", HOUR)  # no look at the bell between slices either
    setup(cli, smsc.port)
    engine = get_engine(db_url)
    with Session(engine) as s:
        row = s.exec(select(VendorConnection).where(VendorConnection.name == "sim")).one()
        settings = smpp_settings(row, {"SIM_PW": "pw"}, defer_acks=True)
        stop = threading.Event()
        worker = Worker(
            engine, row, lambda: make_gateway(settings), name="w-doorbell", stop=stop,
            options=WorkerOptions(idle_sleep=HOUR, receipt_wait=HOUR),
        )  # fmt: skip
    campaign(cli, tmp_path, ["34600000001"], "first", "C1")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        until("the first message", lambda: submitted(engine) == ["34600000001"])
        assert worker._awaiting  # its receipt is held by the SMSC: the worker waits on the bind
        campaign(cli, tmp_path, ["34600000002"], "second", "C2")
        doorbell.ring()
        until("the second message", lambda: submitted(engine) == ["34600000001", "34600000002"])
        assert smsc.counters.accepted == 2 and smsc.counters.receipts == 0
    finally:
        stop.set()
        doorbell.ring()  # the stop event is seen between waits: end this one
        thread.join(DEADLINE)
    assert not thread.is_alive() and worker.error is None
