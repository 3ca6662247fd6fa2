"""SQLModel base: the shared metadata (with naming convention) and column helpers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


class Timestamped(SQLModel):
    created_at: datetime = utc_field(default_now=True)
    updated_at: datetime = utc_field(default_now=True)
