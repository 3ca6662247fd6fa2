"""Separate transmitter and receiver binds (``bind_mode = "tx+rx"``).

Some vendors give a transmitter bind for submit_sm and a receiver bind for
delivery receipts and MO messages instead of one transceiver. A
:class:`TxRxGateway` is two :class:`SmppGateway` binds driven by the same
worker thread: submits go to the transmitter, ``poll`` drives both (each
keeps its own enquire_link, reconnect and back-off) and returns the events of
both. The link counts as up while the transmitter is bound: a vendor keeps
receipts while no receiver is bound and sends them when it binds again.
"""

from __future__ import annotations

import dataclasses
import time

from cpaas_cli.dispatch.gateway import Event, GatewayStats, Ticket, WireMessage
from cpaas_cli.dispatch.smpp import SmppGateway, SmppSettings
from cpaas_cli.dispatch.throttle import Clock


def make_gateway(settings: SmppSettings, *, clock: Clock = time.monotonic):
    """The gateway of a connection's bind mode: one bind, or a transmitter + receiver pair."""
    if settings.bind_mode == "tx+rx":
        return TxRxGateway(settings, clock=clock)
    return SmppGateway(settings, clock=clock)


class TxRxGateway:
    """A transmitter bind and a receiver bind as one :class:`gateway.Gateway`."""

    def __init__(self, settings: SmppSettings, *, clock: Clock = time.monotonic):
        self.settings = settings
        self.name = settings.name
        self.tx = SmppGateway(dataclasses.replace(settings, bind_mode="tx"), clock=clock)
        self.rx = SmppGateway(dataclasses.replace(settings, bind_mode="rx"), clock=clock)

    @property
    def stats(self) -> GatewayStats:
        total = GatewayStats()
        for part in (self.tx.stats, self.rx.stats):
            for f in dataclasses.fields(GatewayStats):
                value = getattr(part, f.name)
                if isinstance(value, dict):
                    for k, v in value.items():
                        total.extra[k] = total.extra.get(k, 0) + v
                elif f.name == "peak_inflight":
                    total.peak_inflight = max(total.peak_inflight, value)
                else:
                    setattr(total, f.name, getattr(total, f.name) + value)
        return total

    @property
    def connected(self) -> bool:
        return self.tx.connected

    def open(self) -> None:
        """Bind both; raises Upstream when either fails (both keep trying in ``poll``)."""
        try:
            self.tx.open()
        finally:
            self.rx.open()

    def close(self) -> None:
        try:
            self.tx.close()
        finally:
            self.rx.close()

    def __enter__(self) -> TxRxGateway:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, message: WireMessage) -> Ticket:
        return self.tx.submit(message)

    def poll(self, timeout: float = 0.0, wake=None) -> list[Event]:
        """Drive both binds: the receiver without waiting, then the transmitter
        for up to ``timeout`` (returning as soon as something happened or
        ``wake`` turned readable), then the receiver again for what came meanwhile."""
        events = self.rx.poll(0.0)
        events += self.tx.poll(0.0 if events else timeout, wake)
        events += self.rx.poll(0.0)
        return events

    def ack(self, events: list[Event]) -> int:
        """Answer stored receipts and MO: they come on the receiver bind (a
        transmitter bind is never sent deliver_sm or data_sm)."""
        return self.rx.ack(events)

    def pending(self) -> list[Ticket]:
        return self.tx.pending()

    def backlog(self) -> int:
        return self.tx.backlog()

    def inflight(self) -> int:
        return self.tx.inflight()

    def probe(self) -> dict[str, float]:
        """Bind each, one enquire_link on each, unbind: the transmitter's times and the receiver's."""
        tx = self.tx.probe()
        rx = self.rx.probe()
        return {**tx, "rx_bind_ms": rx["bind_ms"], "rx_enquire_link_ms": rx["enquire_link_ms"]}
