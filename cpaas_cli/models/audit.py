"""The audit trail: one row per changed object (or per bulk operation)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import utc_field
from cpaas_cli.db.types import BigIntPK


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_object", "object_type", "object_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    at: datetime = utc_field(index=True, default_now=True)
    actor: str = Field(max_length=200, index=True)
    command: str | None = Field(default=None, max_length=200)
    action: str = Field(max_length=32)
    object_type: str = Field(max_length=64)
    object_id: str | None = Field(default=None, max_length=64)
    company_id: int | None = Field(default=None, index=True)
    old: dict | None = Field(default=None, sa_type=sa.JSON)
    new: dict | None = Field(default=None, sa_type=sa.JSON)
