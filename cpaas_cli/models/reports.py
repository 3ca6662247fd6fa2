"""Saved SQL report templates (run read-only with typed parameters)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field

from cpaas_cli.db.base import Timestamped

CATEGORIES = ("traffic", "finance", "audit")
PARAM_TYPES = ("text", "int", "number", "date", "datetime", "bool", "ident")


class SavedReport(Timestamped, table=True):
    """A named SELECT with declared parameters.

    ``params`` is a list of ``{"name", "type", "default", "required"}``;
    parameters whose name starts with ``x_`` are identifiers placed into the
    text (checked against the allow-list), every other one is a bind.
    """

    __tablename__ = "saved_report"
    __table_args__ = (
        sa.UniqueConstraint("name"),
        sa.CheckConstraint("category IN ('traffic', 'finance', 'audit')", name="category"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    category: str = Field(default="traffic", max_length=10)
    description: str | None = Field(default=None, max_length=1000)
    client_visible: bool = False
    sql: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    params: list = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
