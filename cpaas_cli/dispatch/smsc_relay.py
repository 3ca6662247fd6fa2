"""A PDU relay in front of the test SMSC, for what the smpp34 server cannot
send: delivery receipts as ``data_sm`` (some vendors send every receipt that
way).

The relay listens where the ESME connects and forwards every byte to the
smpp34 server, except that a receipt deliver_sm (``esm_class & 0x04``) from the
server becomes a data_sm with the same fields, its text in the message_payload
TLV and the receipt TLVs kept. The ESME's answer to it is counted
(``data_sm_resp`` is right, ``deliver_sm_resp`` is wrong) and passed back to the
server as the deliver_sm_resp it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

import smpp34

DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
DATA_SM = 0x00000103
DATA_SM_RESP = 0x80000103
_HEADER = struct.Struct(">IIII")


def _cstr(text: str) -> bytes:
    return text.encode("latin-1") + b"\0"


def data_sm_from_deliver_sm(pdu: bytes) -> bytes:
    """The data_sm carrying what a deliver_sm carries (same sequence number)."""
    d = smpp34.decode(pdu)
    body = b"".join(
        (
            _cstr(d.service_type),
            bytes([d.source_addr_ton, d.source_addr_npi]),
            _cstr(d.source_addr),
            bytes([d.dest_addr_ton, d.dest_addr_npi]),
            _cstr(d.destination_addr),
            bytes([d.esm_class, d.registered_delivery, d.data_coding]),
        )
    )
    tlvs = list(d.tlvs)
    if d.short_message:
        tlvs.append(smpp34.Tlv(smpp34.TLV_MESSAGE_PAYLOAD, bytes(d.short_message)))
    body += b"".join(struct.pack(">HH", t.tag, len(t.value)) + bytes(t.value) for t in tlvs)
    return _HEADER.pack(16 + len(body), DATA_SM, 0, d.sequence_number) + body


async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    (length,) = struct.unpack(">I", head)
    return head + await reader.readexactly(length - 4)


class DataSmRelay:
    """Listens on ``port``, relays to the server on ``upstream_port``; ``counters``
    gets ``data_sm``, ``data_sm_resp`` and ``wrong_resp`` counts."""

    def __init__(self, host: str, port: int, upstream_port: int, counters) -> None:
        self.host, self.port, self.upstream_port = host, port, upstream_port
        self.counters = counters
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        rewritten: set[int] = set()

        async def from_server() -> None:
            while True:
                pdu = await _read_pdu(up_reader)
                command, _status, seq = struct.unpack(">III", pdu[4:16])
                if command == DELIVER_SM and smpp34.decode(pdu).esm_class & 0x04:
                    pdu = data_sm_from_deliver_sm(pdu)
                    rewritten.add(seq)
                    self.counters.data_sm += 1
                writer.write(pdu)
                await writer.drain()

        async def from_esme() -> None:
            while True:
                pdu = await _read_pdu(reader)
                command, _status, seq = struct.unpack(">III", pdu[4:16])
                if command in (DATA_SM_RESP, DELIVER_SM_RESP) and seq in rewritten:
                    rewritten.discard(seq)
                    if command == DATA_SM_RESP:
                        self.counters.data_sm_resp += 1
                    else:
                        self.counters.wrong_resp += 1
                    pdu = pdu[:4] + struct.pack(">I", DELIVER_SM_RESP) + pdu[8:]
                up_writer.write(pdu)
                await up_writer.drain()

        tasks = [asyncio.ensure_future(from_server()), asyncio.ensure_future(from_esme())]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
