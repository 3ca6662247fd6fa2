"""The protocol every vendor connection satisfies, and the values it trades in.

A gateway is owned by one thread (a dispatch worker), which calls ``submit``
to hand over messages and ``poll`` to drive the connection and collect what
happened. ``submit`` never blocks on the network: it queues the message and
sends it as soon as the window and the rate limit allow. Encoding and
splitting happen before the gateway: an :class:`WireMessage` carries parts
that are ready to send.

Inbound messages (receipts, MO) carry an :class:`InboundAck` when the gateway
defers its answer: the owner stores them, commits, and only then calls
``ack`` with them, so a crash between receiving and storing leaves them
unanswered and the vendor delivers them again (nothing received is lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from cpaas_cli.errors import Upstream

Ticket = int


@dataclass(frozen=True)
class Part:
    """One submit_sm worth of message: the UDH (empty for a single part), the
    encoded payload and its data_coding. ``registered_delivery`` asks for this
    part's receipt; None follows the message's flag (a connection whose vendor
    sends one receipt per long message asks on the last part only). ``sar``
    (reference, total, sequence) when the parts are tied by the sar_* TLVs
    instead of a UDH."""

    payload: bytes
    udh: bytes = b""
    data_coding: int = 0
    registered_delivery: bool | None = None
    sar: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class WireMessage:
    """One message as it goes to a vendor: addresses and ready-to-send parts.
    (The row of the send queue is another thing: ``models.campaigns.OutboundMessage``.)"""

    source: str
    destination: str
    parts: tuple[Part, ...]
    ref: Any = None  # the caller's key (e.g. an EDR id), echoed nowhere on the wire
    registered_delivery: bool = True
    source_ton: int = 5  # alphanumeric; digits-only senders are sent as international
    source_npi: int = 0
    dest_ton: int = 1
    dest_npi: int = 1
    service_type: str = ""

    @classmethod
    def single(cls, source: str, destination: str, payload: bytes, *, data_coding: int = 0, **kw: Any):
        return cls(source=source, destination=destination, parts=(Part(payload, b"", data_coding),), **kw)


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class InboundAck:
    """What answering one inbound PDU needs: the link it came on (an answer
    never goes to a later link, where the sequence number means nothing), its
    sequence number and its command (deliver_sm or data_sm)."""

    link: int
    sequence: int
    command: str = "deliver_sm"


@dataclass(frozen=True)
class SubmitAccepted:
    ticket: Ticket
    message_id: str  # normalised (see receipts.normalise_message_id)
    raw_message_id: str
    part: int = 0
    parts: int = 1


@dataclass(frozen=True)
class SubmitRejected:
    ticket: Ticket
    status: int  # SMPP command_status (or an HTTP status for HTTP vendors)
    retryable: bool
    part: int = 0
    parts: int = 1
    reason: str = ""


@dataclass(frozen=True)
class DeliveryReceipt:
    message_id: str | None  # normalised
    stat: str | None
    err: str | None
    done_at: datetime | None
    raw: str
    status: str = "unknown"  # ours, through the connection's status map
    source: str = ""
    destination: str = ""
    id_from_tlv: bool = False  # the id came from receipted_message_id (the submit_sm_resp id, by the spec)
    ack: InboundAck | None = field(default=None, compare=False)  # None: answered already


@dataclass(frozen=True)
class MobileOriginated:
    source: str
    dest: str
    text: str
    data_coding: int = 0
    raw: bytes = b""
    source_ton: int = 0  # 1 international, 2 national (needs the connection's default country), 0 unknown
    ack: InboundAck | None = field(default=None, compare=False)  # None: answered already


@dataclass(frozen=True)
class LinkChanged:
    """The connection went up or down; ``requeued`` submits were put back in the
    queue to be sent again after the reconnect."""

    up: bool
    detail: str = ""
    requeued: int = 0


Event = SubmitAccepted | SubmitRejected | DeliveryReceipt | MobileOriginated | LinkChanged


@dataclass
class GatewayStats:
    submitted: int = 0  # submit PDUs written (parts, retries included)
    accepted: int = 0
    rejected: int = 0
    retried: int = 0  # throttled / queue-full answers that were retried
    requeued: int = 0  # unacknowledged submits put back after a lost connection
    receipts: int = 0
    mo: int = 0
    acked: int = 0  # inbound PDUs answered through ack() (after they were stored)
    connects: int = 0
    disconnects: int = 0
    enquire_links: int = 0
    peak_inflight: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class CredentialsRefused(Upstream):
    """The vendor refused the bind's credentials (system_id, password): an
    operator must act; the gateway waits long before it binds again."""


@runtime_checkable
class Gateway(Protocol):
    name: str
    stats: GatewayStats

    @property
    def connected(self) -> bool:
        """True while bound (after a lost link, ``poll`` binds again with back-off)."""

    def open(self) -> None:
        """Connect and bind; raises ``Upstream`` (``CredentialsRefused`` for bad
        credentials) when the first bind fails, without logging it: the caller
        reports it (the gateway still wants the link: ``poll`` keeps trying
        with back-off, and logs those later failures itself)."""

    def close(self) -> None:
        """Unbind and disconnect; queued and unacknowledged messages stay in ``pending()``."""

    def submit(self, message: WireMessage) -> Ticket:
        """Queue a message; never blocks on the network."""

    def poll(self, timeout: float = 0.0, wake: Any = None) -> list[Event]:
        """Drive the connection for up to ``timeout`` seconds and return what happened;
        return early when ``wake`` (an object with ``fileno()``: the worker's doorbell)
        turns readable. ``wake`` is only watched, never read."""

    def pending(self) -> list[Ticket]:
        """Tickets not yet fully acknowledged (queued or awaiting a response)."""

    def backlog(self) -> int:
        """Parts queued or in flight: feed more when this is low."""

    def inflight(self) -> int:
        """Parts sent and not yet answered."""

    def ack(self, events: list[Event]) -> int:
        """Answer the inbound events (their ``ack``) once they are stored; those
        of a link that has dropped since are left to the vendor to deliver again.
        Returns how many answers were written."""
