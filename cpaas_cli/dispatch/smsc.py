"""A test and demo SMSC on the ``smpp34`` package's SMPP server.

It runs in its own thread with its own asyncio loop, on 127.0.0.1 by default,
for a bounded lifetime. It accepts every bind (smpp34 checks no credentials),
answers submit_sm with generated message ids (hex or decimal, optionally
zero-padded and upper-case, to exercise id normalisation), sends delivery
receipts after a delay (on the submitting session, or for a transmitter on a
receiver bound with the same system_id) with a deterministic mix of final
states (by TLV and text, or text only; with the ids in the other base; as
deliver_sm or, through ``smsc_relay``, as data_sm), can inject MO messages
(with a national-format source: TON 2), can answer the next N submits with an
error (ESME_RTHROTTLED,
ESME_RMSGQFUL, ...), and can stop answering after a number of submits (to
leave submits unacknowledged when the process is killed). Every accepted
submit_sm is recorded with its addressing and coding fields (``submit_log``).
With a ``password``, a gate in front of the smpp34 server answers a bind with
another password ESME_RINVPASWD and closes (``counters.binds_refused``).

Long messages (parts told by a UDH concatenation header, 8- or 16-bit
reference, or by SAR TLVs): ``receipt_parts`` ``first`` or ``last`` sends one
receipt per long message, for that part only (as vendors that report a long
message once do), when that part asked for one; ``refuse_part`` N refuses
part N of every long message (``refuse_status``, ESME_RSUBMITFAIL by default)
and accepts the others.

Like a real SMSC it keeps every deliver_sm (receipt or MO) until its
deliver_sm_resp comes: one whose session ends unanswered is sent again when
an ESME binds next (``counters.redelivered``). ``record_acks`` appends a line
per deliver_sm answered, and ``kill_on_ack`` is a crash point for tests: at
the first deliver_sm_resp, the SMSC SIGKILLs the process whose pid is in that
file, so whatever the client had not stored before answering is lost (and
what it stores before answering is not).

smpp34 quirks worth knowing: it never answers unbind with unbind_resp (it
closes the socket), and when the Python side does not drain its inbound queue
fast enough it answers ESME_RMSGQFUL by itself, so a client without its own
window meets queue-full answers even when none were injected.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import smpp34

from cpaas_cli.messaging import gsm

ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RSUBMITFAIL = 0x45
RECEIPT_PARTS = ("all", "first", "last")
ESME_RINVPASWD = 0x0E
BIND_COMMANDS = (0x00000001, 0x00000002, 0x00000009)  # bind_receiver, bind_transmitter, bind_transceiver


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parse_stat_mix(text: str | None) -> list[tuple[str, int]]:
    """``DELIVRD=8,UNDELIV=1,EXPIRED=1`` -> [(stat, weight), ...]."""
    if not text:
        return [("DELIVRD", 1)]
    mix = []
    for item in text.split(","):
        stat, _, weight = item.partition("=")
        if not stat.strip():
            continue
        w = int(weight) if weight.strip() else 1
        if w < 0:
            raise ValueError(f"negative weight in {item!r}")
        mix.append((stat.strip().upper(), w))
    if not mix or sum(w for _, w in mix) == 0:
        raise ValueError(f"empty stat mix {text!r}")
    return mix


@dataclass
class SmscOptions:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "CPAASSIM"
    id_format: str = "hex"  # hex or dec
    id_width: int = 0  # zero-pad ids to this width
    id_upper: bool = True
    first_id: int = 1
    receipts: bool = True
    receipt_delay: float = 0.0
    receipt_tlv: bool = True  # receipted_message_id + message_state TLVs (else text only)
    receipt_id_format: str | None = None  # write receipt ids in another base (hex/dec) than submit ids
    receipt_pdu: str = "deliver_sm"  # or "data_sm" (through a relay: smpp34 only sends deliver_sm)
    receipt_copies: int = 1  # send each receipt this many times (vendors that deliver again)
    stat_mix: list[tuple[str, int]] = field(default_factory=lambda: [("DELIVRD", 1)])
    hold_after: int | None = None  # leave every submit after this many unanswered
    lifetime: float = 300.0
    inbound_capacity: int = 4096
    record_path: str | None = None  # append "message_id destination" per accepted submit (crash tests)
    record_text: bool = False  # ... followed by the message text (benchmarks read OTP codes from it)
    receipt_parts: str = "all"  # long messages: a receipt for every part, or for the first / last part only
    refuse_part: int | None = None  # refuse this part (1-based) of every long message
    refuse_status: int = ESME_RSUBMITFAIL
    password: str | None = None  # refuse binds with another password (ESME_RINVPASWD); None accepts all
    record_acks: str | None = None  # append "receipt MESSAGE_ID" / "mo SOURCE" per deliver_sm answered
    kill_on_ack: str | None = None  # tests: a file with a pid to SIGKILL at the first deliver_sm_resp
    mo: list[tuple[str, str, str]] = field(default_factory=list)  # (source, dest, text) sent after the first bind


@dataclass
class SmscCounters:
    binds: int = 0
    submits: int = 0
    accepted: int = 0
    rejected: int = 0
    held: int = 0
    receipts: int = 0
    mo: int = 0
    data_sm: int = 0  # receipts sent as data_sm
    data_sm_resp: int = 0  # ... answered with data_sm_resp
    wrong_resp: int = 0  # ... answered with another response (deliver_sm_resp)
    binds_refused: int = 0
    unanswered: int = 0  # deliver_sm whose session ended before its deliver_sm_resp
    redelivered: int = 0  # of those, sent again after a new bind


@dataclass(frozen=True)
class SubmitRecord:
    """What an accepted submit_sm carried (tests check addressing and coding)."""

    at: float  # time.monotonic() when the SMSC read it
    message_id: str
    source: str
    source_ton: int
    source_npi: int
    destination: str
    dest_ton: int
    dest_npi: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    tlvs: dict[int, bytes]


def _text_of(raw: bytes, data_coding: int) -> str:
    """A submit's text for --record-text: UCS-2 (0x08), GSM-7 unpacked septets (0x00, falling back
    to Latin-1 for a connection that sends Latin-1 under 0x00), or Latin-1 (0x03)."""
    if data_coding == 0x08:
        return raw.decode("utf-16-be", "replace")
    if data_coding == 0x00:
        try:
            return gsm.decode_septets(raw)
        except ValueError:
            pass
    return raw.decode("latin-1")


class SimSmsc:
    """Start with :meth:`start` (or as a context manager); stops by itself after
    ``lifetime`` seconds."""

    def __init__(self, options: SmscOptions | None = None, **kw):
        self.options = options or SmscOptions(**kw)
        self.counters = SmscCounters()
        self.submitted: list[tuple[str, str, bytes, int, int]] = []  # (id, dest, body, esm_class, data_coding)
        self.receipted: list[tuple[str, str, str]] = []  # (submit id, dest, stat) per receipt sent
        self.registered: dict[str, int] = {}  # accepted message id -> the registered_delivery it asked for
        self.submit_log: list[SubmitRecord] = []
        self._ids = itertools.count(self.options.first_id)
        self._seq = itertools.count()
        self._fail: list[tuple[int, int]] = []  # [(count, status)]
        self._esmes: dict[str, smpp34.Esme] = {}
        self._held: list[smpp34.SubmitSmEvent] = []
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._record = None
        self._inner_port: int | None = None
        self._acks = None
        self._undelivered: list[tuple[str, str, dict]] = []  # (kind, key, deliver_sm kwargs) to send again
        self._mo_pending = list(self.options.mo)

    # ------------------------------------------------------------ control (any thread)

    @property
    def port(self) -> int:
        return self.options.port

    def start(self, timeout: float = 5.0) -> SimSmsc:
        self._thread = threading.Thread(target=self._run, name=f"smsc-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"SMSC did not start on {self.options.host}:{self.port} within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"SMSC failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._stop is not None and not self._done.is_set():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self) -> None:
        """Block until the lifetime ends (or stop() is called)."""
        self._done.wait()

    def __enter__(self) -> SimSmsc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, count: int, status: int = ESME_RTHROTTLED) -> None:
        """Answer the next ``count`` submits with ``status`` instead of accepting them."""
        with self._lock:
            self._fail.append((count, status))

    def inject_mo(self, source: str, dest: str, text: str, *, source_ton: int = 0) -> concurrent.futures.Future:
        """Send an MO deliver_sm to the first bound session that can receive;
        ``source_ton`` 2 sends a national-format number (1 international, 0 unknown).

        Returns at once: the deliver_sm_resp only comes when the client reads,
        so waiting here from the client's own thread would deadlock."""
        return asyncio.run_coroutine_threadsafe(self._mo(source, dest, text, source_ton), self._loop)

    def wait_bound(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._esmes:
                return True
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------ the loop (own thread)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
        finally:
            self._ready.set()
            self._done.set()
            self._loop.close()

    async def _main(self) -> None:
        o = self.options
        self._stop = asyncio.Event()
        relay = None
        port = o.port
        if o.receipt_pdu == "data_sm":
            from cpaas_cli.dispatch.smsc_relay import DataSmRelay

            port = free_port(o.host)
            relay = DataSmRelay(o.host, o.port, port, self.counters)
        gate = None
        if o.password is not None and relay is not None:
            raise ValueError("the simulated SMSC cannot check passwords and send data_sm receipts at once")
        if o.password is not None:  # the gate listens on the port; smpp34 behind it
            port = free_port(o.host)
            self._inner_port = port
            gate = await asyncio.start_server(self._gate, o.host, o.port)
        server = smpp34.Server(host=o.host, port=port, system_id=o.system_id, inbound_capacity=o.inbound_capacity)
        await server.start()
        if relay is not None:
            await relay.start()
        self._ready.set()
        stop_task = asyncio.ensure_future(self._stop.wait())
        try:
            deadline = time.monotonic() + o.lifetime
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                nxt = asyncio.ensure_future(server.next())
                done, _ = await asyncio.wait({nxt, stop_task}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    break
                self._on_event(nxt.result())
        finally:
            stop_task.cancel()
            for task in list(self._tasks):
                task.cancel()
            self._held.clear()
            if self._record is not None:
                self._record.close()
            if relay is not None:
                await relay.stop()
            if gate is not None:
                gate.close()
            if self._acks is not None:
                self._acks.close()
            await server.stop()

    async def _gate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Check the password of the first PDU (a bind); refuse it, or pipe the
        session to the smpp34 server unchanged."""
        try:
            head = await reader.readexactly(16)
            length, command, _status, seq = struct.unpack(">IIII", head)
            body = await reader.readexactly(length - 16)
            fields = body.split(b"\0")
            password = fields[1].decode("latin-1") if len(fields) > 1 else ""
            if command in BIND_COMMANDS and password != self.options.password:
                self.counters.binds_refused += 1
                resp = b"CPAASSIM\0"
                writer.write(struct.pack(">IIII", 16 + len(resp), command | 0x80000000, ESME_RINVPASWD, seq) + resp)
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection(self.options.host, self._inner_port)
            up_writer.write(head + body)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_event(self, ev) -> None:
        if isinstance(ev, smpp34.Esme):
            self._esmes[ev.session_id] = ev
            self.counters.binds += 1
            if ev.can_receive:
                again, self._undelivered = self._undelivered, []
                self.counters.redelivered += len(again)
                mos, self._mo_pending = self._mo_pending, []
                if again or mos:
                    self._spawn(self._send_all(ev, again, mos))
        elif isinstance(ev, smpp34.Unbound):
            self._esmes.pop(ev.session_id, None)
        elif isinstance(ev, smpp34.SubmitSmEvent):
            self._on_submit(ev)

    def _next_failure(self) -> int | None:
        with self._lock:
            while self._fail:
                count, status = self._fail[0]
                if count <= 0:
                    self._fail.pop(0)
                    continue
                self._fail[0] = (count - 1, status)
                return status
        return None

    def _message_id(self) -> str:
        return self._format_id(next(self._ids), self.options.id_format)

    def _format_id(self, n: int, fmt: str) -> str:
        o = self.options
        text = f"{n:x}" if fmt == "hex" else str(n)
        if o.id_upper:
            text = text.upper()
        return text.rjust(o.id_width, "0")

    def _receipt_id(self, mid: str) -> str:
        fmt = self.options.receipt_id_format
        if not fmt or fmt == self.options.id_format:
            return mid
        return self._format_id(int(mid, 16 if self.options.id_format == "hex" else 10), fmt)

    def _on_submit(self, ev: smpp34.SubmitSmEvent) -> None:
        o = self.options
        self.counters.submits += 1
        status = self._next_failure()
        concat = concatenation(ev.esm_class, ev.short_message, ev.tlvs)
        if status is None and concat is not None and concat[2] == o.refuse_part:
            status = o.refuse_status
        if status is not None:
            ev.reject(status)
            self.counters.rejected += 1
            return
        if o.hold_after is not None and self.counters.accepted >= o.hold_after:
            self._held.append(ev)  # kept, so smpp34 does not answer it either
            self.counters.held += 1
            return
        mid = self._message_id()
        ev.accept(mid)
        self.counters.accepted += 1
        self.submitted.append((mid, ev.destination_addr, ev.short_message, ev.esm_class, ev.data_coding))
        self.registered[mid] = ev.registered_delivery
        self.submit_log.append(
            SubmitRecord(
                at=time.monotonic(),
                message_id=mid,
                source=ev.source_addr,
                source_ton=ev.source_addr_ton,
                source_npi=ev.source_addr_npi,
                destination=ev.destination_addr,
                dest_ton=ev.dest_addr_ton,
                dest_npi=ev.dest_addr_npi,
                esm_class=ev.esm_class,
                data_coding=ev.data_coding,
                registered_delivery=ev.registered_delivery,
                short_message=bytes(ev.short_message),
                tlvs={t.tag: bytes(t.value) for t in (ev.tlvs or [])},
            )
        )
        if o.record_path:
            if self._record is None:
                self._record = open(o.record_path, "a", buffering=1)  # noqa: SIM115 (closed in _main)
            line = f"{mid} {ev.destination_addr}"
            if o.record_text:
                line += " " + _text_of(bytes(ev.short_message), ev.data_coding).replace("\n", " ")
            self._record.write(line + "\n")
        if o.receipts and ev.registered_delivery & 0x01 and self._reports(concat):
            esme = self._receiver(ev.session_id)
            if esme is not None:
                stat = self._stat()
                for _ in range(max(1, o.receipt_copies)):
                    self._spawn(self._receipt(esme, mid, ev.source_addr, ev.destination_addr, stat))

    def _reports(self, concat: tuple[int, int, int] | None) -> bool:
        """Whether this part gets a receipt under ``receipt_parts``."""
        if concat is None or self.options.receipt_parts == "all":
            return True
        _ref, total, seq = concat
        return seq == (1 if self.options.receipt_parts == "first" else total)

    def _receiver(self, session_id: str) -> smpp34.Esme | None:
        """Where the receipt of a submit goes: its own session when that can
        receive (transceiver), else a receiver bound with the same system_id."""
        own = self._esmes.get(session_id)
        if own is None or own.can_receive:
            return own
        return next((e for e in self._esmes.values() if e.can_receive and e.system_id == own.system_id), None)

    def _stat(self) -> str:
        mix = self.options.stat_mix
        total = sum(w for _, w in mix)
        pos = next(self._seq) % total
        for stat, weight in mix:
            if pos < weight:
                return stat
            pos -= weight
        return mix[-1][0]

    async def _receipt(self, esme: smpp34.Esme, mid: str, source: str, dest: str, stat: str) -> None:
        o = self.options
        if o.receipt_delay:
            await asyncio.sleep(o.receipt_delay)
        stamp = datetime.now(UTC).strftime("%y%m%d%H%M")
        submit_id, mid = mid, self._receipt_id(mid)
        err = "000" if stat == "DELIVRD" else "001"
        text = (
            f"id:{mid} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{stamp} done date:{stamp} stat:{stat} err:{err} text:"
        )
        states = {"DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}
        tlvs = []
        if o.receipt_tlv:
            tlvs = [
                smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, mid.encode() + b"\0"),
                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([states.get(stat, 7)])),
            ]
        pdu = {"destination_addr": source, "source_addr": dest, "esm_class": 0x04, "short_message": text.encode()}
        self.receipted.append((submit_id, dest, stat))  # when sent: its answer may come after serve exits
        await self._deliver(esme, "receipt", submit_id, {**pdu, "tlvs": tlvs})

    async def _deliver(self, esme: smpp34.Esme, kind: str, key: str, pdu: dict) -> bool:
        """One deliver_sm; kept to be sent again after the next bind when the
        session ends before its deliver_sm_resp (as real SMSCs do)."""
        try:
            await esme.deliver_sm(**pdu)
        except Exception:  # the session went away unanswered (or answered with an error)
            self.counters.unanswered += 1
            if self._esmes.get(esme.session_id) is esme and not self._stop.is_set():
                self._esmes.pop(esme.session_id, None)  # smpp34 may report the Unbound later
            self._undelivered.append((kind, key, pdu))
            for other in list(self._esmes.values()):
                if other.can_receive:  # another session is bound already: no re-bind will come
                    again, self._undelivered = self._undelivered, []
                    self.counters.redelivered += len(again)
                    self._spawn(self._send_all(other, again, []))
                    break
            return False
        if kind == "receipt":
            self.counters.receipts += 1
        else:
            self.counters.mo += 1
        if self.options.kill_on_ack:
            path, self.options.kill_on_ack = self.options.kill_on_ack, None
            try:
                with open(path) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
            except (OSError, ValueError) as exc:
                print(f"smsc: --kill-on-ack {path}: {exc}", file=sys.stderr)
        if self.options.record_acks:
            if self._acks is None:
                self._acks = open(self.options.record_acks, "a", buffering=1)  # noqa: SIM115 (closed in _main)
            self._acks.write(f"{kind} {key}\n")
        return True

    async def _send_all(self, esme: smpp34.Esme, again: list[tuple[str, str, dict]], mos) -> None:
        for kind, key, pdu in again:
            self._spawn(self._deliver(esme, kind, key, pdu))
        for source, dest, text in mos:
            self._spawn(self._mo(source, dest, text, to=esme))

    @staticmethod
    def _mo_pdu(source: str, dest: str, text: str, source_ton: int = 0) -> dict:
        try:
            body, dc = text.encode("latin-1"), 0x03
        except UnicodeEncodeError:
            body, dc = text.encode("utf-16-be"), 0x08
        return {
            "destination_addr": dest,
            "source_addr": source,
            "source_addr_ton": source_ton,
            "source_addr_npi": 1 if source_ton in (1, 2) else 0,
            "short_message": body,
            "data_coding": dc,
        }

    async def _mo(self, source: str, dest: str, text: str, source_ton: int = 0, to: smpp34.Esme | None = None) -> None:
        for esme in [to] if to is not None else list(self._esmes.values()):
            if esme.can_receive:
                await self._deliver(esme, "mo", source, self._mo_pdu(source, dest, text, source_ton))
                return
        raise RuntimeError("no bound session can receive an MO")


def concatenation(esm_class: int, body: bytes, tlvs=()) -> tuple[int, int, int] | None:
    """(reference, parts, part number from 1) of one part of a long message, from its
    UDH (IEI 0x00 or 0x08) or its SAR TLVs; None for a message in one part."""
    if esm_class & 0x40 and body:
        udh, i = body[1 : 1 + body[0]], 0
        while i + 2 <= len(udh):
            iei, n = udh[i], udh[i + 1]
            ie = udh[i + 2 : i + 2 + n]
            if iei == 0x00 and n == 3:
                return ie[0], ie[1], ie[2]
            if iei == 0x08 and n == 4:
                return int.from_bytes(ie[:2], "big"), ie[2], ie[3]
            i += 2 + n
    sar = {t.tag: t.value for t in tlvs or ()}
    if smpp34.TLV_SAR_SEGMENT_SEQNUM in sar and smpp34.TLV_SAR_TOTAL_SEGMENTS in sar:
        ref = int.from_bytes(sar.get(smpp34.TLV_SAR_MSG_REF_NUM, b"\0"), "big")
        return ref, sar[smpp34.TLV_SAR_TOTAL_SEGMENTS][0], sar[smpp34.TLV_SAR_SEGMENT_SEQNUM][0]
    return None
