"""Sender IDs, message templates, campaigns, their recipients and the outbound queue.

A campaign keeps its recipients (one row per distinct E.164 number, with the
file values that personalise it) from the moment it is created; starting it
renders one ``outbound_message`` per recipient. The queue is a plain table
with a state column: dispatch workers claim ``queued`` rows of running
campaigns in id order (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), which the
``(state, id)`` index serves.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK
from cpaas_cli.models.contacts import JSONType

CHANNELS = ("sms", "viber", "whatsapp", "rcs", "wechat", "email", "telegram", "push", "tts", "voice")
SENDER_KINDS = ("alphanumeric", "short_code", "long_code")
SENDER_STATUSES = ("draft", "active", "disabled")
CAMPAIGN_STATES = (
    "draft",
    "pending_moderation",
    "scheduled",
    "in_progress",
    "paused",
    "completed",
    "failed",
    "canceled",
)
# claimed: an EDR exists, nothing sent; sending: recorded before the submit leaves
# (its submit_sm_resp not stored yet); unknown: a "sending" row of a crashed
# worker on a connection with after_crash=hold, for the operator to release or fail.
QUEUE_STATES = ("queued", "claimed", "sending", "submitted", "unknown", "done", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SenderId(Timestamped, table=True):
    __tablename__ = "sender_id"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "channel", "sender"),
        sa.CheckConstraint(_in("channel", CHANNELS), name="channel"),
        sa.CheckConstraint(_in("kind", SENDER_KINDS), name="kind"),
        sa.CheckConstraint(_in("status", SENDER_STATUSES), name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    channel: str = Field(default="sms", max_length=16)
    sender: str = Field(max_length=32)
    name: str = Field(max_length=100)
    kind: str = Field(default="alphanumeric", max_length=16)
    status: str = Field(default="draft", max_length=16)
    connection_id: int | None = Field(default=None, foreign_key="vendor_connection.id", index=True)
    description: str | None = None


class MessageTemplate(Timestamped, table=True):
    __tablename__ = "message_template"
    __table_args__ = (sa.UniqueConstraint("company_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=200)
    channel: str = Field(max_length=16)
    sender_id: int = Field(foreign_key="sender_id.id", index=True)
    text: str


class Campaign(Timestamped, table=True):
    __tablename__ = "campaign"
    __table_args__ = (sa.CheckConstraint(_in("state", CAMPAIGN_STATES), name="state"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=200)
    channel: str = Field(max_length=16)
    sender_id: int = Field(foreign_key="sender_id.id", index=True)
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    # The template it was made from; SET NULL when the template is deleted,
    # which stops the campaign from starting (see `from_template`).
    template_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("message_template.id", ondelete="SET NULL"), index=True),
    )
    from_template: bool = False
    # The message (a jinja2 template when `personalised`); None when every
    # recipient row carries its own text (campaign from a file).
    text: str | None = None
    personalised: bool = False
    variables: list = Field(default_factory=list, sa_type=sa.JSON)
    flash: bool = False
    state: str = Field(default="draft", max_length=24, index=True)
    scheduled_at: datetime | None = utc_field(nullable=True, index=True)
    schedule_tz: str | None = Field(default=None, max_length=64)
    started_at: datetime | None = utc_field(nullable=True)
    finished_at: datetime | None = utc_field(nullable=True)
    recipients: int = 0
    excluded_stop_list: int = 0
    excluded_invalid: int = 0
    excluded_duplicate: int = 0
    messages: int = 0  # outbound messages materialised at start
    segments: int = 0
    estimated_cost: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    currency: str = Field(max_length=3)
    sources: dict = Field(default_factory=dict, sa_type=sa.JSON)
    failure_reason: str | None = None
    moderated_by: str | None = Field(default=None, max_length=200)
    moderated_at: datetime | None = utc_field(nullable=True)
    repeat_of_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("campaign.id", ondelete="SET NULL"))
    )


class CampaignRecipient(SQLModel, table=True):
    __tablename__ = "campaign_recipient"

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    campaign_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    )
    phone: str = Field(max_length=15)
    country: str | None = Field(default=None, max_length=2)
    # The number range's network (campaigns.destinations): MCC and, when the
    # carrier was recognised as one network, MNC; the carrier's own name.
    mcc: str | None = Field(default=None, max_length=3)
    mnc: str | None = Field(default=None, max_length=3)
    network: str | None = Field(default=None, max_length=120)
    # File columns for personalisation ({variable: text}); None when none.
    values: dict | None = Field(default=None, sa_type=JSONType)
    # The recipient's own message (campaign from a file with a text column).
    text: str | None = None


sa.Index("ix_campaign_recipient_campaign", CampaignRecipient.__table__.c.campaign_id, CampaignRecipient.__table__.c.id)


class OutboundMessage(SQLModel, table=True):
    """A row of the send queue (one message of a campaign and its state); what
    goes to a vendor is a ``dispatch.gateway.WireMessage`` built from it."""

    __tablename__ = "outbound_message"
    __table_args__ = (sa.CheckConstraint(_in("state", QUEUE_STATES), name="state"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    campaign_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False)
    )
    phone: str = Field(max_length=15)
    country: str | None = Field(default=None, max_length=2)
    mcc: str | None = Field(default=None, max_length=3)  # copied from the recipient (EDR mcc/mnc/network)
    mnc: str | None = Field(default=None, max_length=3)
    network: str | None = Field(default=None, max_length=120)
    sender_id: int = Field(foreign_key="sender_id.id")
    sender: str = Field(max_length=32)
    connection_id: int | None = Field(default=None, foreign_key="vendor_connection.id")
    text: str
    encoding: str = Field(max_length=4)
    segments: int
    flash: bool = False
    state: str = Field(default="queued", max_length=12)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = utc_field(nullable=True)
    vendor_message_id: str | None = Field(default=None, max_length=100)
    error: str | None = None
    created_at: datetime = utc_field(default_now=True)
    updated_at: datetime = utc_field(default_now=True)
    api_key_id: int | None = None  # sent through the HTTP API with this key (cpaas_cli/api/)
    label: str | None = Field(default=None, max_length=100)  # the API's label (SPEC EDR-01)
    # sent with acceptMO (SPEC CMP-24): the handset's replies are called back (dispatch/mo_reply.py)
    accept_mo: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


_API = sa.text("api_key_id IS NOT NULL")
sa.Index(
    "ix_outbound_message_api_key",
    OutboundMessage.__table__.c.api_key_id,
    OutboundMessage.__table__.c.id,
    sqlite_where=_API,
    postgresql_where=_API,
)
# only the messages sent with acceptMO: the MO matching looks the handset's up (dispatch/mo_reply.py)
sa.Index(
    "ix_outbound_message_accept_mo",
    OutboundMessage.__table__.c.phone,
    OutboundMessage.__table__.c.id,
    sqlite_where=sa.text("accept_mo = 1"),
    postgresql_where=sa.text("accept_mo"),
)
sa.Index("ix_outbound_message_state", OutboundMessage.__table__.c.state, OutboundMessage.__table__.c.id)
sa.Index(
    "ix_outbound_message_campaign",
    OutboundMessage.__table__.c.campaign_id,
    OutboundMessage.__table__.c.state,
)
