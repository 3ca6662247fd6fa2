"""SMPP vendor connections over smpplib (the only module that imports it).

One :class:`SmppGateway` is one bind, owned by one thread: that thread calls
``submit`` and ``poll``, and only ``poll`` touches the socket. smpplib gives
PDUs and a socket, nothing more, so this module adds what a vendor link needs:

- a sliding window of unacknowledged submit_sm, correlated by sequence number;
- the RPS limit per connection × sender ID, shared by the binds of a process
  (``throttle.PROCESS_LIMITS``);
- TCP_NODELAY (smpplib leaves Nagle on, which caps a window at a few hundred/s);
- enquire_link when the link has been idle, and a dead link detected by
  unanswered requests;
- ESME_RTHROTTLED / ESME_RMSGQFUL answered by backing off and sending the same
  part again;
- reconnect with exponential back-off; the submits that were in flight when the
  link dropped are put back at the front of the queue (``stats.requeued``);
  a bind the SMSC refused for its credentials is tried again only after
  ``auth_retry_after`` seconds, with an ERROR line (vendors lock accounts);
- deliver_sm and data_sm, each answered with its own response PDU, read into
  receipts or MO (``deliver_pdu``: the receipt's key, stat/err through the
  status map); the worker matches receipts to messages (``receipt_match``).
- with ``defer_acks``, deliver_sm / data_sm are not answered when read: the
  events carry an ``InboundAck`` and ``ack`` answers them once the owner has
  stored them (an answer is never written on a later link than the PDU's).
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import ssl
import struct
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp

from cpaas_cli.dispatch.deliver_pdu import inbound_event
from cpaas_cli.dispatch.gateway import (
    CredentialsRefused,
    DeliveryReceipt,
    Event,
    GatewayStats,
    InboundAck,
    LinkChanged,
    SubmitAccepted,
    SubmitRejected,
    Ticket,
    WireMessage,
)
from cpaas_cli.dispatch.linkerrors import why
from cpaas_cli.dispatch.receipts import StatusMap, normalise_message_id
from cpaas_cli.dispatch.throttle import PROCESS_LIMITS, Backoff, Clock, SenderLimits, TokenBucket
from cpaas_cli.errors import Upstream

log = logging.getLogger("cpaas.smpp")

ESME_ROK = 0x00
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RSYSERR = 0x08
BACK_OFF_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
# bind_resp statuses that mean "wrong credentials": ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID.
AUTH_STATUSES = frozenset({0x0D, 0x0E, 0x0F})
# Answers worth trying again later (another time or another route), not now.
RETRYABLE_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RSYSERR})

_RESP_HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number
_RESP_IDS = {"deliver_sm": 0x80000005, "data_sm": 0x80000103}

# smpplib's ConnectionError is its own class (it shadows the builtin).
_LINK_ERRORS = (smpplib.exceptions.ConnectionError, OSError, ConnectionError)


def status_name(status: int) -> str:
    return smpplib.consts.DESCRIPTIONS.get(status, "unknown status")


def link_reason(exc: BaseException) -> str:
    """Why the link failed, in a few words (``linkerrors.why``)."""
    return why(exc, smpplib.exceptions.ConnectionError)


@dataclass(frozen=True)
class SmppSettings:
    name: str
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    tls: bool = False
    bind_mode: str = "trx"  # trx (transceiver), tx (transmitter) or rx (receiver); tx+rx: see txrx.py
    rps: float | None = None
    window: int = 10
    status_map: StatusMap = field(default_factory=StatusMap)
    id_formats: tuple[str, str] = ("auto", "auto")  # (submit_sm_resp, receipt)
    connect_timeout: float = 5.0
    response_timeout: float = 10.0  # a request unanswered this long means a dead link
    enquire_every: float = 30.0  # enquire_link after this much silence
    reconnect: Backoff | None = None  # default: 0.1 s doubling to 30 s
    auth_retry_after: float = 300.0  # next bind after the SMSC refused the credentials
    limits: SenderLimits | None = None  # default: shared by the process (PROCESS_LIMITS), or own with a test clock
    throttle_initial: float = 0.05  # first pause after ESME_RTHROTTLED / ESME_RMSGQFUL
    throttle_max: float = 2.0
    max_retries: int = 50  # back-off answers for one part before it is given back as retryable
    defer_acks: bool = False  # answer deliver_sm / data_sm only through ack(), after they are stored


@dataclass
class _Item:
    ticket: Ticket
    index: int
    message: WireMessage
    attempts: int = 0
    sent_at: float = 0.0


class SmppGateway:
    """An SMPP bind implementing :class:`cpaas_cli.dispatch.gateway.Gateway`."""

    def __init__(self, settings: SmppSettings, *, clock: Clock = time.monotonic):
        self.settings = settings
        self.name = settings.name
        self.stats = GatewayStats()
        self._clock = clock
        self._client: smpplib.client.Client | None = None
        self._queue: deque[_Item] = deque()
        self._inflight: OrderedDict[int, _Item] = OrderedDict()
        self._open_parts: dict[Ticket, int] = {}
        self._tickets = itertools.count(1)
        limits = settings.limits or (PROCESS_LIMITS if clock is time.monotonic else SenderLimits(clock))
        self._limits = limits
        self._buckets: dict[str, TokenBucket | None] = {}  # sender -> its shared bucket
        self._auth_failed: str | None = None  # why the last bind was refused for its credentials
        self._reconnect = settings.reconnect or Backoff(0.1, 2.0, 30.0)
        self._throttle = Backoff(settings.throttle_initial, 2.0, settings.throttle_max)
        self._pause_until = 0.0
        self._next_connect = 0.0
        self._wanted = False
        self._last_rx = 0.0
        self._enquire_sent: float | None = None
        self._enquire_seq: int | None = None
        self._events: list[Event] = []
        self._out: list[bytes] = []  # PDUs written in one sendall per turn (fewer syscalls)
        self._link = 0  # counts binds: an InboundAck answers only on the link it came from

    # ------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._client is not None

    def open(self) -> None:
        """Connect and bind now; raises Upstream if that fails (the caller
        reports it: not logged here). Later drops reconnect by themselves
        inside ``poll``."""
        self._wanted = True
        try:
            self._connect()
        except Upstream:
            self._next_connect = self._clock() + self._bind_delay(alert=False)
            raise

    def close(self) -> None:
        self._wanted = False
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.unbind()
        except (TimeoutError, *_LINK_ERRORS, smpplib.exceptions.PDUError):
            pass  # some SMSCs close the socket instead of answering unbind
        finally:
            self._disconnect_client(client)
        self._requeue_inflight()

    def __enter__(self) -> SmppGateway:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> None:
        s = self.settings
        ctx = ssl.create_default_context() if s.tls else None
        client = smpplib.client.Client(
            s.host,
            s.port,
            timeout=s.connect_timeout,
            ssl_context=ctx,
            allow_unknown_opt_params=True,
            logger_name=f"cpaas.smpp.{s.name}",
        )
        where = f"{s.host}:{s.port}"
        self._auth_failed = None  # set again below when this bind is refused for its credentials
        try:
            client.connect()
            client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            binds = {"trx": client.bind_transceiver, "tx": client.bind_transmitter, "rx": client.bind_receiver}
            bind = binds[s.bind_mode]
            bind(system_id=s.system_id, password=s.password, system_type=s.system_type)
        except smpplib.exceptions.PDUError as exc:
            self._disconnect_client(client)
            status = exc.args[1] if len(exc.args) > 1 else None
            if status in AUTH_STATUSES:
                self._auth_failed = status_name(status)
                self.stats.extra["auth_failures"] = self.stats.extra.get("auth_failures", 0) + 1
                raise CredentialsRefused(
                    f"connection {s.name!r}: bind refused by {where}: {status_name(status)}; "
                    f"next bind in {s.auth_retry_after:g}s (check system_id and password)"
                ) from exc
            raise Upstream(f"connection {s.name!r}: bind refused by {where}: {exc.args[0]}") from exc
        except (TimeoutError, *_LINK_ERRORS) as exc:
            self._disconnect_client(client)
            raise Upstream(f"connection {s.name!r}: cannot bind to {where}: {link_reason(exc)}") from exc
        client._socket.settimeout(s.response_timeout)
        self._client = client
        self._link += 1
        self._last_rx = self._clock()
        self._enquire_sent = None
        self._enquire_seq = None
        self._reconnect.reset()
        self.stats.connects += 1

    def _bind_delay(self, *, alert: bool = True) -> float:
        """Seconds until the next bind: the network back-off, or the long pause
        after refused credentials (a vendor locks an account that keeps trying;
        logged as an error unless ``alert`` is False)."""
        if self._auth_failed is None:
            return self._reconnect.next()
        s = self.settings
        if not alert:
            return s.auth_retry_after
        log.error(
            "connection %r: the SMSC refused the credentials (%s); next bind in %gs",
            s.name,
            self._auth_failed,
            s.auth_retry_after,
        )
        return s.auth_retry_after

    def _bucket(self, sender: str) -> TokenBucket | None:
        if sender not in self._buckets:
            self._buckets[sender] = self._limits.bucket(self.settings.name, sender, self.settings.rps)
        return self._buckets[sender]

    def _take(self, item: _Item) -> bool:
        bucket = self._bucket(item.message.source)
        return bucket is None or bucket.take()

    @staticmethod
    def _disconnect_client(client: smpplib.client.Client) -> None:
        try:
            if client._socket is not None:
                client._socket.close()
        except OSError:
            pass
        client._socket = None
        client.state = smpplib.consts.SMPP_CLIENT_STATE_CLOSED

    def _requeue_inflight(self) -> int:
        items = list(self._inflight.values())
        self._inflight.clear()
        for item in reversed(items):
            self._queue.appendleft(item)
        self.stats.requeued += len(items)
        return len(items)

    def _drop(self, detail: str) -> None:
        self._out.clear()
        client, self._client = self._client, None
        if client is not None:
            self._disconnect_client(client)
        n = self._requeue_inflight()
        self.stats.disconnects += 1
        self._next_connect = self._clock() + self._reconnect.next()
        self._events.append(LinkChanged(up=False, detail=detail, requeued=n))

    # ------------------------------------------------------------ submitting

    def submit(self, message: WireMessage) -> Ticket:
        if not message.parts:
            raise ValueError("a message needs at least one part")
        ticket = next(self._tickets)
        self._open_parts[ticket] = len(message.parts)
        for i in range(len(message.parts)):
            self._queue.append(_Item(ticket, i, message))
        if self._client is not None:
            self._send_ready()  # written at the next poll, with the other PDUs of the turn
        return ticket

    def pending(self) -> list[Ticket]:
        return list(self._open_parts)

    def backlog(self) -> int:
        return len(self._queue) + len(self._inflight)

    def inflight(self) -> int:
        return len(self._inflight)

    def _send_ready(self) -> None:
        client = self._client
        window = max(1, self.settings.window)
        now = self._clock()
        if now < self._pause_until:
            return
        while self._queue and len(self._inflight) < window and self._take(self._queue[0]):
            item = self._queue.popleft()
            msg = item.message
            part = msg.parts[item.index]
            esm_class = 0x40 if part.udh else 0x00
            receipt = msg.registered_delivery if part.registered_delivery is None else part.registered_delivery
            sar = {}
            if part.sar is not None:
                ref, total, seq = part.sar
                sar = {"sar_msg_ref_num": ref, "sar_total_segments": total, "sar_segment_seqnum": seq}
            pdu = smpplib.smpp.make_pdu(
                "submit_sm",
                client=client,
                service_type=msg.service_type,
                source_addr_ton=msg.source_ton,
                source_addr_npi=msg.source_npi,
                source_addr=msg.source,
                dest_addr_ton=msg.dest_ton,
                dest_addr_npi=msg.dest_npi,
                destination_addr=msg.destination,
                esm_class=esm_class,
                data_coding=part.data_coding,
                registered_delivery=1 if receipt else 0,
                short_message=part.udh + part.payload,
                **sar,
            )
            item.sent_at = now
            self._inflight[pdu.sequence] = item
            self._out.append(pdu.generate())
            self.stats.submitted += 1
            self.stats.peak_inflight = max(self.stats.peak_inflight, len(self._inflight))

    # ------------------------------------------------------------ the loop

    def poll(self, timeout: float = 0.0, wake=None) -> list[Event]:
        """Send what may be sent, read what arrived, keep the link alive, for up
        to ``timeout`` seconds; returns as soon as something happened, or when
        ``wake`` (an object with ``fileno()``, e.g. the worker's doorbell) turns
        readable while bound (it is not read here: its owner clears it)."""
        deadline = self._clock() + max(0.0, timeout)
        woken = False
        while True:
            now = self._clock()
            if self._client is None:
                if self._wanted and now >= self._next_connect:
                    try:
                        self._connect()
                        self._events.append(LinkChanged(up=True, detail="bound"))
                    except Upstream as exc:
                        self._next_connect = self._clock() + self._bind_delay()
                        self._events.append(LinkChanged(up=False, detail=exc.message))
                if self._client is None:
                    if self._events or now >= deadline or not self._wanted:
                        break
                    time.sleep(max(0.0, min(deadline, self._next_connect) - now))
                    continue
            try:
                self._send_ready()
                self._flush()
                woken = self._read(self._wait_time(deadline), wake)
                self._keepalive()
                self._flush()
            except _LINK_ERRORS as exc:
                self._drop(f"link lost: {link_reason(exc)}")
            except TimeoutError:
                self._drop("link lost: read timed out mid-PDU")
            if self._events or woken or self._clock() >= deadline:
                break
        events, self._events = self._events, []
        return events

    def _write(self, pdu) -> None:
        self._out.append(pdu.generate())

    def _flush(self) -> None:
        if self._out and self._client is not None:
            data = b"".join(self._out)
            self._out.clear()
            try:
                self._client._socket.sendall(data)
            except OSError as exc:
                raise smpplib.exceptions.ConnectionError(str(exc)) from exc

    def _wait_time(self, deadline: float) -> float:
        now = self._clock()
        wait = deadline - now
        s = self.settings
        due = self._last_rx + s.enquire_every if self._enquire_sent is None else self._enquire_sent + s.response_timeout
        wait = min(wait, due - now + 0.001)
        if self._queue:
            if now < self._pause_until:
                wait = min(wait, self._pause_until - now)
            elif len(self._inflight) < max(1, self.settings.window):
                bucket = self._bucket(self._queue[0].message.source)
                wait = min(wait, bucket.delay() if bucket is not None else 0.0)
        return max(0.0, wait)

    def _read(self, wait: float, wake=None) -> bool:
        """Read the PDUs waiting, after up to ``wait`` seconds for the first;
        True when ``wake`` ended the wait."""
        sock = self._client._socket
        readable, _, _ = select.select([sock] if wake is None else [sock, wake], [], [], wait)
        woken = wake is not None and wake in readable
        readable = sock in readable
        budget = 512  # PDUs per call, so sending gets its turn under heavy receipts
        while readable and budget:
            pdu = self._client.read_pdu()
            self._last_rx = self._clock()
            self._handle(pdu)
            budget -= 1
            if self._client is None:
                return
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
            readable = pending or select.select([sock], [], [], 0)[0]
        return woken

    def _keepalive(self) -> None:
        if self._client is None:
            return
        now = self._clock()
        s = self.settings
        if self._enquire_sent is not None and now - self._enquire_sent > s.response_timeout:
            self._drop("link lost: enquire_link unanswered")
            return
        if self._inflight:
            oldest = next(iter(self._inflight.values()))
            if now - oldest.sent_at > s.response_timeout and now - self._last_rx > s.response_timeout:
                self._drop("link lost: submit_sm unanswered")
                return
        if self._enquire_sent is None and now - self._last_rx > s.enquire_every:
            pdu = smpplib.smpp.make_pdu("enquire_link", client=self._client)
            self._write(pdu)
            self._enquire_sent, self._enquire_seq = now, pdu.sequence
            self.stats.enquire_links += 1

    # ------------------------------------------------------------ inbound PDUs

    def _handle(self, pdu) -> None:
        command = pdu.command
        if command == "submit_sm_resp" or (command == "generic_nack" and pdu.sequence in self._inflight):
            self._submit_resp(pdu)
        elif command in ("deliver_sm", "data_sm"):
            self._deliver(pdu)
        elif command == "enquire_link":
            resp = smpplib.smpp.make_pdu("enquire_link_resp", client=self._client)
            resp.sequence = pdu.sequence
            self._write(resp)
        elif command == "enquire_link_resp":
            self._enquire_sent = self._enquire_seq = None
        elif command == "unbind":
            resp = smpplib.smpp.make_pdu("unbind_resp", client=self._client)
            resp.sequence = pdu.sequence
            self._write(resp)
            self._flush()
            self._drop("unbound by the SMSC")

    def _submit_resp(self, pdu) -> None:
        item = self._inflight.pop(pdu.sequence, None)
        if item is None:
            return  # an answer to a submit already given up on
        status = int(pdu.status or 0)
        parts = len(item.message.parts)
        if status == ESME_ROK:
            raw = pdu.message_id.decode("latin-1") if isinstance(pdu.message_id, bytes) else str(pdu.message_id)
            raw = raw.rstrip("\x00")
            mid = normalise_message_id(raw, self.settings.id_formats[0]) or ""
            self._throttle.reset()
            self.stats.accepted += 1
            self._events.append(SubmitAccepted(item.ticket, mid, raw, item.index, parts))
            self._part_done(item.ticket)
            return
        if status in BACK_OFF_STATUSES and item.attempts < self.settings.max_retries:
            item.attempts += 1
            self.stats.retried += 1
            self._queue.appendleft(item)
            self._pause_until = max(self._pause_until, self._clock() + self._throttle.next())
            return
        self.stats.rejected += 1
        self._events.append(
            SubmitRejected(
                item.ticket,
                status,
                retryable=status in RETRYABLE_STATUSES,
                part=item.index,
                parts=parts,
                reason=status_name(status),
            )
        )
        self._part_done(item.ticket)

    def _part_done(self, ticket: Ticket) -> None:
        left = self._open_parts.get(ticket, 1) - 1
        if left <= 0:
            self._open_parts.pop(ticket, None)
        else:
            self._open_parts[ticket] = left

    def ack(self, events: list[Event]) -> int:
        """Answer the stored inbound events of the current link (see ``defer_acks``);
        returns how many answers were written."""
        if self._client is None:
            return 0
        n = 0
        for ev in events:
            a = getattr(ev, "ack", None)
            if a is None or a.link != self._link:
                continue
            # deliver_sm_resp / data_sm_resp: header and an empty message_id.
            self._out.append(_RESP_HEADER.pack(17, _RESP_IDS[a.command], ESME_ROK, a.sequence) + b"\0")
            n += 1
        try:
            self._flush()
        except _LINK_ERRORS as exc:
            self._drop(f"link lost: {link_reason(exc)}")
        self.stats.acked += n
        return n

    def _deliver(self, pdu) -> None:
        """deliver_sm or data_sm: a receipt or an MO (``deliver_pdu``), answered with its
        own response PDU (at once, or with ``defer_acks`` by :meth:`ack` once the owner stored it)."""
        if self.settings.defer_acks:
            ack = InboundAck(self._link, pdu.sequence, pdu.command)
        else:
            ack = None
            resp = smpplib.smpp.make_pdu(f"{pdu.command}_resp", client=self._client)
            resp.sequence = pdu.sequence
            self._write(resp)
        s = self.settings
        event = inbound_event(pdu, id_format=s.id_formats[1], status_map=s.status_map, ack=ack)
        if isinstance(event, DeliveryReceipt):
            self.stats.receipts += 1
        else:
            self.stats.mo += 1
        self._events.append(event)

    # ------------------------------------------------------------ probing

    def probe(self) -> dict[str, float]:
        """Bind, one enquire_link, unbind: the round-trip times in milliseconds."""
        t0 = time.perf_counter()
        self.open()
        t1 = time.perf_counter()
        try:
            pdu = smpplib.smpp.make_pdu("enquire_link", client=self._client)
            self._client.send_pdu(pdu)
            while True:
                resp = self._client.read_pdu()
                if resp.command == "enquire_link_resp" and resp.sequence == pdu.sequence:
                    break
                self._handle(resp)
                self._flush()
            t2 = time.perf_counter()
        except (TimeoutError, *_LINK_ERRORS) as exc:
            self._drop("enquire_link failed")
            self._wanted = False
            raise Upstream(f"connection {self.name!r}: enquire_link failed: {link_reason(exc)}") from exc
        finally:
            self._events.clear()
        self.close()
        return {"bind_ms": round((t1 - t0) * 1000, 3), "enquire_link_ms": round((t2 - t1) * 1000, 3)}
