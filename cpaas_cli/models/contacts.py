"""Contacts of a client company: contacts, groups, custom fields, the stop list
and the record of every import.

Custom field values live in one JSON column on the contact (``fields``, keyed
by the field's variable name): a million-row import writes one row per contact
instead of three or more value rows, and both backends filter on it with their
JSON functions (SQLite ``json_extract``, PostgreSQL ``->>`` on JSONB). The
field definitions (type, required flag) are rows of ``contact_field``.

The stop list is a set of (company, phone, sender) blocks, independent of
contacts and groups (decision AMB-01): a blocked number may or may not be a
contact, and a contact keeps its groups while blocked. ``sender`` is the sender
ID text or the literal ``ALL``; it is a plain string until sender IDs get their
own table.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK

FIELD_TYPES = ("text", "number", "date", "bool")
ALL_SENDERS = "ALL"
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


class ContactGroup(Timestamped, table=True):
    __tablename__ = "contact_group"
    __table_args__ = (sa.UniqueConstraint("company_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=200)
    description: str | None = None


class ContactField(Timestamped, table=True):
    __tablename__ = "contact_field"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "variable"),
        sa.CheckConstraint("data_type IN ('text', 'number', 'date', 'bool')", name="data_type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=100)
    variable: str = Field(max_length=100)
    data_type: str = Field(max_length=8)
    required: bool = False
    position: int = 0


class Contact(Timestamped, table=True):
    __tablename__ = "contact"
    __table_args__ = (sa.UniqueConstraint("company_id", "phone"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    company_id: int = Field(foreign_key="company.id", index=True)
    phone: str = Field(max_length=15)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    birthday: date | None = None
    gender: str | None = Field(default=None, max_length=16)
    comments: str | None = None
    fields: dict | None = Field(default=None, sa_type=JSONType)


class ContactGroupMember(SQLModel, table=True):
    __tablename__ = "contact_group_member"

    contact_id: int = Field(
        sa_column=sa.Column(BigIntPK, sa.ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    )
    group_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("contact_group.id", ondelete="CASCADE"), primary_key=True)
    )


sa.Index(
    "ix_contact_group_member_group", ContactGroupMember.__table__.c.group_id, ContactGroupMember.__table__.c.contact_id
)


class StopListEntry(SQLModel, table=True):
    __tablename__ = "stop_list_entry"
    __table_args__ = (sa.UniqueConstraint("company_id", "phone", "sender"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    company_id: int = Field(foreign_key="company.id", index=True)
    phone: str = Field(max_length=15)
    sender: str = Field(max_length=32)
    created_at: datetime = utc_field(default_now=True)


class ContactImport(SQLModel, table=True):
    __tablename__ = "contact_import"

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    group_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, sa.ForeignKey("contact_group.id", ondelete="SET NULL"))
    )
    group_name: str = Field(max_length=200)
    file: str
    sha256: str = Field(max_length=64)
    size_bytes: int = Field(sa_type=sa.BigInteger)
    mode: str = Field(max_length=16)
    stoplist: str = Field(max_length=200)
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    duplicates: int = 0
    stop_listed: int = 0
    actor: str | None = Field(default=None, max_length=200)
    started_at: datetime = utc_field()
    finished_at: datetime = utc_field()
