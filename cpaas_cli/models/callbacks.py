"""Callback tables (SPEC CMP-25): each API key's callback URL with its signing
secret, and the durable outbox of events to POST there.

An outbox row is written in the same transaction as the status change (or the
MO) it reports, so a committed change always has its callback; the sender
worker of ``cpaas serve`` posts the rows (``cpaas_cli/callbacks/sender.py``).
The signing secret must be read back to sign, so it is stored as a Fernet
token made with the secret key outside the database (``secretbox``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK

OUTBOX_STATES = ("pending", "delivered", "dead")
_PENDING = sa.text("state = 'pending'")
_DEAD = sa.text("state = 'dead'")


class ApiKeyCallback(Timestamped, table=True):
    """The callback of one API key: where to POST and the secret that signs."""

    __tablename__ = "api_key_callback"

    api_key_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("api_key.id", ondelete="CASCADE"), primary_key=True)
    )
    url: str = Field(max_length=2000)
    secret: str  # Fernet token of the signing secret


class CallbackOutbox(SQLModel, table=True):
    """One event to POST: a status change of an API message, an MO answering one
    (``kind`` message: to the API key's callback), or the result of an OTP request
    (``kind`` otp: to the integration's callback URL, the body kept in ``payload``)."""

    __tablename__ = "callback_outbox"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
        sa.CheckConstraint("kind IN ('message', 'otp')", name="kind"),
        # the sender picks due pending rows; a message's earlier pending rows hold its later ones
        sa.Index("ix_callback_outbox_pending", "next_at", "id", sqlite_where=_PENDING, postgresql_where=_PENDING),
        sa.Index(
            "ix_callback_outbox_message_pending",
            "transaction_id",
            "id",
            sqlite_where=_PENDING,
            postgresql_where=_PENDING,
        ),
        # `callback list --failed`: the dead letters, newest first
        sa.Index("ix_callback_outbox_dead", "id", sqlite_where=_DEAD, postgresql_where=_DEAD),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    api_key_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("api_key.id", ondelete="CASCADE"), nullable=True, index=True),
    )
    kind: str = Field(default="message", max_length=8, sa_column_kwargs={"server_default": "message"})
    otp_integration_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey("otp_integration.id", ondelete="CASCADE"), nullable=True, index=True
        ),
    )
    payload: dict | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))  # kind otp: the body
    edr_id: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    # the callback's fields (SPEC CMP-25); message only for an MO
    transaction_id: str = Field(max_length=100)
    dnis: str = Field(max_length=32)
    status: str = Field(max_length=12)
    event_at: datetime = utc_field()
    channel: str = Field(max_length=8)
    message: str | None = None
    # delivery
    state: str = Field(default="pending", max_length=10)
    attempts: int = 0
    next_at: datetime = utc_field()
    give_up_at: datetime = utc_field()  # a failure after this dead-letters the row
    lease_until: datetime | None = utc_field(nullable=True)  # a sender posts it until then
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = utc_field(default_now=True)
    delivered_at: datetime | None = utc_field(nullable=True)
