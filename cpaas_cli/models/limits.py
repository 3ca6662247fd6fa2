"""Request limits shared by every ``serve`` process through the database: one
token bucket per name (``bulk:user:<id>``, ``key:<prefix>``), taken under a
row lock (``cpaas_cli/ratelimit.py``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import utc_field


class RateBucket(SQLModel, table=True):
    __tablename__ = "rate_bucket"

    name: str = Field(max_length=80, primary_key=True)
    # tokens left, in millionths of a token (integers, as money is)
    micro_tokens: int = Field(sa_type=sa.BigInteger)
    at: datetime = utc_field()
