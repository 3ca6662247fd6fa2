"""Vendor connections: where dispatch sends messages (SMPP binds; HTTP later)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK

CONNECTION_KINDS = ("smpp", "http")
# How a multi-part message becomes final from its parts' receipts (see dispatch/multipart.py).
MULTIPART_FINAL = ("all", "any", "last")
BIND_MODES = ("trx", "tx", "tx+rx")  # tx+rx: a transmitter bind and a receiver bind (dispatch/txrx.py)
# How GSM-7 text is written in short_message (data_coding): unpacked septets
# (0x00), packed septets (0x00), Latin-1 (0x03) or IA5/ASCII (0x01).
GSM7_CODINGS = ("gsm7", "gsm7-packed", "latin1", "ia5")
CONCATS = ("udh8", "udh16", "sar")  # how the parts of a long message are tied together
AFTER_CRASH = ("resend", "hold")


class VendorConnection(Timestamped, table=True):
    __tablename__ = "vendor_connection"
    __table_args__ = (
        sa.UniqueConstraint("name"),
        sa.CheckConstraint("kind IN ('smpp', 'http')", name="kind"),
        sa.CheckConstraint("bind_mode IN ('trx', 'tx', 'tx+rx')", name="bind_mode"),
        sa.CheckConstraint("port BETWEEN 1 AND 65535", name="port"),
        sa.CheckConstraint("window_size BETWEEN 1 AND 10000", name="window_size"),
        sa.CheckConstraint("rps IS NULL OR rps > 0", name="rps"),
        sa.CheckConstraint("multipart_final IN ('all', 'any', 'last')", name="multipart_final"),
        sa.CheckConstraint("gsm7_coding IN ('gsm7', 'gsm7-packed', 'latin1', 'ia5')", name="gsm7_coding"),
        sa.CheckConstraint("concat IN ('udh8', 'udh16', 'sar')", name="concat"),
        sa.CheckConstraint("enquire_link > 0 AND response_timeout > 0 AND bind_retry_after > 0", name="timers"),
        sa.CheckConstraint("after_crash IN ('resend', 'hold')", name="after_crash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    kind: str = Field(default="smpp", max_length=8)
    host: str = Field(max_length=255)
    port: int
    system_id: str | None = Field(default=None, max_length=16)
    # The name of an environment variable holding the password, resolved at bind time.
    password_env: str | None = Field(default=None, max_length=128)
    # Only when the operator typed it at a prompt: a Fernet token made with a key kept
    # outside the database (cpaas_cli/secretbox.py), never the clear text; never printed or logged.
    password: str | None = Field(default=None, max_length=512)
    system_type: str = Field(default="", max_length=13)
    tls: bool = False
    bind_mode: str = Field(default="trx", max_length=8)
    rps: int | None = None  # submit_sm per second; None = unlimited
    window_size: int = 10  # unacknowledged submit_sm at most ("window" is reserved in PostgreSQL)
    message_id_format: str = Field(default="auto", max_length=16)
    # auto: how receipt ids relate to submit_sm_resp ids once learned ("same" or
    # "converted": the other base), then fixed; None while learning.
    message_id_learned: str | None = Field(default=None, max_length=16)
    default_country: str | None = Field(default=None, max_length=2)  # MO numbers without a country code
    status_map: dict = Field(default_factory=dict, sa_type=sa.JSON)
    # all: every part asks for a receipt and all must come; any: every part asks, the first
    # receipt decides; last: only the last part asks, and its receipt decides.
    multipart_final: str = Field(default="all", max_length=4, sa_column_kwargs={"server_default": "all"})
    # Address TON/NPI of submit_sm: the source's None = by the sender ID's kind
    # (alphanumeric 5/0, short code 3/0, long number 1/1); the destination's 1/1.
    source_ton: int | None = None
    source_npi: int | None = None
    dest_ton: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    dest_npi: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    gsm7_coding: str = Field(default="gsm7", max_length=12, sa_column_kwargs={"server_default": "gsm7"})
    concat: str = Field(default="udh8", max_length=8, sa_column_kwargs={"server_default": "udh8"})
    enquire_link: float = Field(default=30.0, sa_column_kwargs={"server_default": "30"})  # seconds of silence
    response_timeout: float = Field(default=10.0, sa_column_kwargs={"server_default": "10"})  # seconds
    # Seconds between binds after the SMSC refused our credentials (vendors lock accounts).
    bind_retry_after: float = Field(default=300.0, sa_column_kwargs={"server_default": "300"})
    # Messages whose submit may have left without its submit_sm_resp stored when
    # serve died: "resend" (at least once) or "hold" (state unknown, the operator decides).
    after_crash: str = Field(default="resend", max_length=8, sa_column_kwargs={"server_default": "resend"})
    enabled: bool = True
    description: str | None = None
    # The vendor price plan (a service of type "vendor"): what this connection costs us per
    # message (charging/vendor.py); None = cost unknown (never taken as zero).
    vendor_plan_id: int | None = Field(default=None, foreign_key="service.id")


INBOUND_KINDS = ("mo", "receipt")


class InboundMessage(SQLModel, table=True):
    """What an SMSC sent us that is not a receipt we could match: MO messages
    (with the opt-out/opt-in action they caused) and receipts for message ids
    we do not know or cannot attribute to one message (kept, not dropped, with
    the reason)."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('mo', 'receipt')", name="kind"),
        sa.Index("ix_inbound_message_received_at", "received_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    kind: str = Field(default="mo", max_length=8)
    connection_id: int | None = Field(default=None, foreign_key="vendor_connection.id")
    company_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    source: str = Field(default="", max_length=32)  # the handset (MO) / the SMSC's source (receipt)
    destination: str = Field(default="", max_length=32)  # our sender ID / number
    text: str = ""
    data_coding: int = 0
    # receipts: the id we could not match; MO: the API message (acceptMO) it answers, as its transaction id
    message_id: str | None = Field(default=None, max_length=100)
    status: str | None = Field(default=None, max_length=16)  # receipts: our status from the status map
    action: str | None = Field(default=None, max_length=16)  # opt_out | opt_in | None
    reason: str | None = Field(default=None, max_length=300)  # why a receipt or opt-out was not applied
    received_at: datetime = utc_field(default_now=True)
