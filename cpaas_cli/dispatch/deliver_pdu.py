"""A received deliver_sm / data_sm read into an event: a :class:`DeliveryReceipt`
(``esm_class`` marks a receipt) or a :class:`MobileOriginated`.

Independent of any SMPP library: the PDU is read only through ``getattr`` (the
fields and TLVs smpplib sets on it), so the rules can be tested without a link.
A receipt's key is the receipted_message_id TLV, else the id of the receipt
text (``receipts.normalise_message_id``); stat/err go through the connection's
status map (the TLVs message_state / network_error_code when the text has none).
"""

from __future__ import annotations

from cpaas_cli.dispatch.gateway import DeliveryReceipt, InboundAck, MobileOriginated
from cpaas_cli.dispatch.receipts import MESSAGE_STATES, StatusMap, normalise_message_id, parse_receipt_text

# esm_class bits 2-5: a delivery receipt, an SME or intermediate acknowledgement.
_RECEIPT_TYPES = (0x04, 0x08, 0x10, 0x20)


def inbound_event(
    pdu, *, id_format: str, status_map: StatusMap, ack: InboundAck | None = None
) -> DeliveryReceipt | MobileOriginated:
    """The event a deliver_sm or data_sm carries; ``ack`` is set on it (None:
    the PDU was answered already)."""
    esm_class = int(getattr(pdu, "esm_class", 0) or 0)
    body = getattr(pdu, "short_message", None) or getattr(pdu, "message_payload", None) or b""
    if isinstance(body, str):
        body = body.encode("latin-1")
    source = _text(getattr(pdu, "source_addr", ""))
    dest = _text(getattr(pdu, "destination_addr", ""))
    if esm_class & 0x3C in _RECEIPT_TYPES:
        return _receipt(pdu, body, source, dest, id_format, status_map, ack)
    data_coding = int(getattr(pdu, "data_coding", 0) or 0)
    payload = body
    if esm_class & 0x40 and payload:
        payload = payload[1 + payload[0] :]
    ton = int(getattr(pdu, "source_addr_ton", 0) or 0)
    return MobileOriginated(
        source, dest, _decode(payload, data_coding), data_coding, bytes(body), source_ton=ton, ack=ack
    )


def _receipt(
    pdu, body: bytes, source: str, dest: str, fmt: str, status_map: StatusMap, ack: InboundAck | None
) -> DeliveryReceipt:
    raw = body.decode("latin-1")
    parsed = parse_receipt_text(raw)
    tlv_id = getattr(pdu, "receipted_message_id", None)
    message_id = normalise_message_id(tlv_id, fmt) if tlv_id else None
    if message_id is None:
        tlv_id = None
    if message_id is None and parsed is not None:
        message_id = normalise_message_id(parsed.message_id, fmt)
    stat = parsed.stat if parsed and parsed.stat else None
    state = getattr(pdu, "message_state", None)
    if stat is None and state is not None:
        stat = MESSAGE_STATES.get(int(state))
    err = parsed.err if parsed and parsed.err else None
    net = getattr(pdu, "network_error_code", None)
    if err is None and net:
        net = net if isinstance(net, bytes) else str(net).encode("latin-1")
        err = str(int.from_bytes(net[1:3], "big")) if len(net) >= 3 else None
    return DeliveryReceipt(
        id_from_tlv=bool(tlv_id) and message_id is not None,
        message_id=message_id,
        stat=stat,
        err=err,
        done_at=parsed.done_at if parsed else None,
        raw=raw,
        status=status_map.status(stat, err),
        source=source,
        destination=dest,
        ack=ack,
    )


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value or "")


def _decode(payload: bytes, data_coding: int) -> str:
    """Best-effort text of an MO: UCS-2 for 0x08, else byte-per-character."""
    if data_coding == 0x08:
        return payload.decode("utf-16-be", errors="replace")
    return payload.decode("latin-1")
