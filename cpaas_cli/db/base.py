"""SQLModel base: the shared metadata (with naming convention) and column helpers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli import clock
from cpaas_cli.db.types import NAMING_CONVENTION, UTCDateTime

SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata = SQLModel.metadata


def utc_field(*, nullable: bool = False, index: bool = False, default_now: bool = False) -> Any:
    """A timezone-aware UTC datetime column."""
    kwargs: dict[str, Any] = {"sa_type": UTCDateTime, "nullable": nullable, "index": index}
    if default_now:
        kwargs["default_factory"] = clock.now
    elif nullable:
        kwargs["default"] = None
    return Field(**kwargs)


def money_field(*, nullable: bool = False, default: int | None = 0) -> Any:
    """Integer micro-units (1/1,000,000 of the currency unit)."""
    return Field(default=default, sa_type=sa.BigInteger, nullable=nullable)


class Timestamped(SQLModel):
    created_at: datetime = utc_field(default_now=True)
    updated_at: datetime = utc_field(default_now=True)
