"""The idempotency records of ``POST /v1/messages`` (kept 24 hours)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import utc_field
from cpaas_cli.db.types import BigIntPK


class ApiIdempotency(SQLModel, table=True):
    """The first answer to a request with an ``Idempotency-Key``: the same key and
    body get it again for 24 hours; the same key with another body is a conflict."""

    __tablename__ = "api_idempotency"
    __table_args__ = (sa.UniqueConstraint("api_key_id", "key"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    api_key_id: int
    key: str = Field(max_length=255)
    body_hash: str = Field(max_length=64)  # SHA-256 of the request body
    status: int
    response: dict = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = utc_field(default_now=True, index=True)
