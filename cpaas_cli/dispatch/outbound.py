"""From a queue row to the submit_sm parts a connection's vendor wants.

The connection decides the wire form of a message (``vendor_connection``):

- source TON/NPI: by the sender ID's kind unless the connection fixes them
  (alphanumeric 5/0, short code 3/0, long number 1/1); destination TON/NPI;
- how GSM-7 text is written: unpacked septets (data_coding 0, the default),
  packed septets, Latin-1 (data_coding 3) or IA5/ASCII (data_coding 1). Parts
  are cut by the GSM-7 count either way (what was counted and billed); a text
  the chosen charset cannot hold (e.g. ``€`` in Latin-1) goes as UCS-2;
- how long messages are tied together: 8-bit UDH, 16-bit UDH or sar_* TLVs;
- which parts ask for a receipt (``multipart_final``: every part, or the last
  only; ``multipart.receipt_flags``).

The EDR of a message carries the encoding and segments as sent (``as_sent``):
a 16-bit UDH holds 152 GSM-7 characters a part, not 153, and a text that goes
as UCS-2 for its charset has UCS-2 parts.

A flash campaign goes as message class 0: data_coding 0x10 (GSM-7) or 0x18
(UCS-2), whatever the charset option (class 0 exists only with the default
alphabet and UCS-2).

Only SMS has a gateway: :data:`GATEWAY_CHANNELS` is what campaigns and sender
IDs may use until another channel gets one.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.dispatch import gateway as gw
from cpaas_cli.dispatch.multipart import receipt_flags
from cpaas_cli.errors import Conflict
from cpaas_cli.messaging.segments import GSM7, UCS2, Concat, RefAllocator, analyse, choose_encoding, split
from cpaas_cli.models.campaigns import Campaign, SenderId
from cpaas_cli.models.dispatch import VendorConnection

GATEWAY_CHANNELS = ("sms",)

# Source TON/NPI by the sender ID's kind.
SOURCE_ADDRESS = {"alphanumeric": (5, 0), "short_code": (3, 0), "long_code": (1, 1)}
CHARSETS = {"latin1": ("latin-1", 0x03), "ia5": ("ascii", 0x01)}
FLASH_CODING = {GSM7: 0x10, UCS2: 0x18}  # message class 0
DEFAULT_CODING = {GSM7: 0x00, UCS2: 0x08}


def require_gateway(channel: str) -> None:
    """Conflict (exit 5) for a channel no gateway serves."""
    if channel not in GATEWAY_CHANNELS:
        raise Conflict(f"no gateway serves channel {channel}")


def source_address(kind: str | None, sender: str) -> tuple[int, int]:
    """(TON, NPI) of a sender ID of this kind; a sender of unknown kind by its text."""
    if kind in SOURCE_ADDRESS:
        return SOURCE_ADDRESS[kind]
    return (1, 1) if sender.isdigit() else (5, 0)


class OutboundBuilder:
    """Builds :class:`gateway.WireMessage` values for one connection."""

    def __init__(self, connection: VendorConnection):
        # getattr: a connection-like object without these settings gets the defaults.
        source_ton, source_npi, dest_ton, dest_npi, coding, concat = (
            getattr(connection, name, None)
            for name in ("source_ton", "source_npi", "dest_ton", "dest_npi", "gsm7_coding", "concat")
        )
        self.source_ton, self.source_npi = source_ton, source_npi
        self.dest_ton = 1 if dest_ton is None else dest_ton
        self.dest_npi = 1 if dest_npi is None else dest_npi
        self.gsm7_coding = coding or "gsm7"
        self.concat = Concat(concat or "udh8")
        self.multipart_final = getattr(connection, "multipart_final", None) or "all"
        self._campaigns: dict[int, tuple[str | None, bool]] = {}  # campaign id -> (sender kind, flash)

    def prepare(self, session: Session, campaign_ids) -> None:
        """Read (once per campaign) the sender kind and the flash flag."""
        wanted = [c for c in set(campaign_ids) if c not in self._campaigns]
        if not wanted:
            return
        c, sid = Campaign.__table__, SenderId.__table__
        rows = session.execute(
            sa.select(c.c.id, sid.c.kind, c.c.flash)
            .select_from(c.outerjoin(sid, sid.c.id == c.c.sender_id))
            .where(c.c.id.in_(wanted))
        )
        for cid, kind, flash in rows:
            self._campaigns[cid] = (kind, bool(flash))

    def build(self, session: Session, row, refs: RefAllocator) -> gw.WireMessage:
        """The message of a queue row (id, campaign id, phone, country, sender, text, ...)."""
        qid, cid, phone, _country, sender, text = row[:6]
        self.prepare(session, [cid])
        kind, flash = self._campaigns.get(cid, (None, False))
        ton, npi = source_address(kind, sender)
        return gw.WireMessage(
            source=sender,
            destination=phone,
            parts=self.parts(text, refs, flash=flash),
            ref=qid,
            source_ton=ton if self.source_ton is None else self.source_ton,
            source_npi=npi if self.source_npi is None else self.source_npi,
            dest_ton=self.dest_ton,
            dest_npi=self.dest_npi,
        )

    def as_sent(self, session: Session, row, edr: dict) -> dict:
        """An EDR of a queue row with the encoding and segments this connection
        sends (its concatenation and charset may need more parts than the
        campaign's standard count): what is charged is what goes out."""
        if self.concat is Concat.udh8 and self.gsm7_coding not in CHARSETS:
            return edr  # the queue row's count is already this one (the campaign's standard count)
        cid, text = row[1], row[5]
        self.prepare(session, [cid])
        enc, _charset = self._encoding(text, self._campaigns.get(cid, (None, False))[1])
        edr["encoding"], edr["segments"] = enc, analyse(text, encoding=enc, concat=self.concat).segments
        return edr

    def _encoding(self, text: str, flash: bool) -> tuple[str, tuple[str, int] | None]:
        """The alphabet a text goes in, and the (charset, data_coding) for GSM-7 texts
        written in Latin-1 or IA5; a text the charset cannot hold goes as UCS-2."""
        enc = choose_encoding(text)
        if enc == GSM7 and not flash and self.gsm7_coding in CHARSETS:
            charset = CHARSETS[self.gsm7_coding]
            try:
                text.encode(charset[0])
            except UnicodeEncodeError:
                return UCS2, None
            return enc, charset
        return enc, None

    def parts(self, text: str, refs: RefAllocator | int | None, *, flash: bool = False) -> tuple[gw.Part, ...]:
        enc, charset = self._encoding(text, flash)
        packed = self.gsm7_coding == "gsm7-packed" and enc == GSM7 and charset is None
        pieces = split(text, ref=refs, encoding=enc, concat=self.concat, packed=packed)
        out = []
        asks = receipt_flags(self.multipart_final, len(pieces))
        for p, ask in zip(pieces, asks, strict=True):
            if charset is not None:
                payload, dc = p.text.encode(charset[0]), charset[1]
            else:
                payload, dc = p.payload, (FLASH_CODING if flash else DEFAULT_CODING)[p.encoding]
            sar = (p.ref, p.total, p.seq) if self.concat is Concat.sar and p.total > 1 else None
            out.append(gw.Part(payload, p.udh, dc, registered_delivery=ask, sar=sar))
        return tuple(out)
