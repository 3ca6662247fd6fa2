"""OTP / 2FA tables (SPEC OTP-01..06): integrations and their requests.

An integration belongs to a company and sends through one of its sender IDs.
Its API key is ``<key id>:<secret>`` (two 32-character hex strings): the key
id is stored in clear and finds the row, the secret only as a keyed hash
(``otp/integrations.py``). Its callback signing secret must be read back to
sign, so it is a Fernet token (``secretbox``), as for API keys' callbacks.

A request is one code sent to one number, or (channel ``email``) to one
e-mail address, kept in ``number`` too, so the per-destination limits and
"a new send cancels the previous code" read the same index. The code itself is never stored:
only its keyed hash (platform side; a client-side request has none). The
message that carries the code is an ordinary queue row of a one-message
campaign (``queue_id``), so its EDR and charge are found from there; an
e-mail request has no queue row: its EDR is ``otp:<request id>`` (``otp/email_channel.py``). The
columns a statistics query needs (integration, number, country, status,
created/verified times) are on the row itself.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK

INTEGRATION_STATES = ("draft", "active", "blocked")
MODES = ("platform", "client")
CODE_TYPES = ("numeric", "alphanumeric")
CHANNELS = ("sms", "email")
MAX_ADDRESS = 254  # an e-mail address (RFC 5321 path limit); a number is at most 15 digits
# pending: a code waits for its check (platform side) or was only delivered (client side);
# verified: the right code came back once; expired / cancelled (a newer send) / locked (too
# many checks) / failed (the vendor refused the message): no check can succeed any more.
REQUEST_STATES = ("pending", "verified", "expired", "cancelled", "locked", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class OtpIntegration(Timestamped, table=True):
    """A 2FA integration: who sends, what text, which code, where the result goes."""

    __tablename__ = "otp_integration"
    __table_args__ = (
        sa.CheckConstraint(_in("state", INTEGRATION_STATES), name="state"),
        sa.CheckConstraint(_in("mode", MODES), name="mode"),
        sa.CheckConstraint(_in("code_type", CODE_TYPES), name="code_type"),
        sa.UniqueConstraint("company_id", "name", name="uq_otp_integration_company_name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=110)
    mode: str = Field(max_length=10)
    sender_id: int = Field(foreign_key="sender_id.id")
    template: str = Field(max_length=1000)
    digits: int = 6
    code_type: str = Field(default="numeric", max_length=12)
    validity_s: int = 300
    channel: str = Field(default="sms", max_length=8)
    subject: str | None = Field(default=None, max_length=200)  # e-mail channel: the subject line
    callback_url: str | None = Field(default=None, max_length=2000)
    callback_secret: str | None = None  # Fernet token of the signing secret
    key_id: str = Field(max_length=32, unique=True)
    secret_hash: str = Field(max_length=64)
    state: str = Field(default="active", max_length=8)
    max_checks: int = 5  # checks of one request
    max_sends: int = 5  # sends to one number within send_window_s
    send_window_s: int = 600


class OtpRequest(SQLModel, table=True):
    """One code sent to one number by one integration."""

    __tablename__ = "otp_request"
    __table_args__ = (
        sa.CheckConstraint(_in("state", REQUEST_STATES), name="state"),
        # the per-number send limit and "a new send cancels the previous code"
        sa.Index("ix_otp_request_number", "integration_id", "number", "created_at"),
        # statistics of an integration over a period
        sa.Index("ix_otp_request_created", "integration_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    request_id: str = Field(max_length=32, unique=True)
    integration_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("otp_integration.id", ondelete="CASCADE"), nullable=False)
    )
    company_id: int = Field(foreign_key="company.id")
    number: str = Field(max_length=MAX_ADDRESS)  # E.164 digits, or the e-mail address (channel email)
    channel: str = Field(default="sms", max_length=8, sa_column_kwargs={"server_default": "sms"})
    country: str | None = Field(default=None, max_length=2)
    mode: str = Field(max_length=10)
    code_hash: str | None = Field(default=None, max_length=64)
    state: str = Field(default="pending", max_length=10)
    checks: int = 0
    campaign_id: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    queue_id: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True, index=True)
    sent_status: str | None = Field(default=None, max_length=12)  # SENT / FAILED once the vendor answered
    created_at: datetime = utc_field(default_now=True)
    expires_at: datetime = utc_field()
    sent_at: datetime | None = utc_field(nullable=True)
    verified_at: datetime | None = utc_field(nullable=True)
    closed_at: datetime | None = utc_field(nullable=True)  # expired, cancelled, locked or failed
    # a test send's own status URL (`otp integration test --status-url`): its results go there
    callback_url: str | None = Field(default=None, max_length=2000)
