"""Catalog tables: services (rate plans), their scopes, the rate tree, the
services enabled on agreements, and the history of rate imports."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from cpaas_cli.db.base import Timestamped, utc_field
from cpaas_cli.db.types import BigIntPK

# "vendor": what a vendor connection charges us (a vendor price plan, attached to a
# connection, never enabled on an agreement); same scopes and rate tree as a sale plan.
SERVICE_TYPES = ("payg", "unit-pack", "monetary-pack", "bundle-initiator", "bundle-pack", "vendor")
PRICE_TYPES = ("depends", "flat", "scale", "free", "included", "not_included", "blocked")
BILLING_RULES = ("submitted", "delivered")
QUANTITY_RULES = ("messages", "segments", "full_period")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Service(Timestamped, table=True):
    __tablename__ = "service"
    __table_args__ = (
        sa.UniqueConstraint("name"),
        sa.CheckConstraint(_in("type", SERVICE_TYPES), name="type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    type: str = Field(max_length=20)
    # None for a unit pack (the seed hides its currency).
    currency: str | None = Field(default=None, max_length=3)
    # Units for a unit or bundle pack; micro-units of the currency for a monetary pack.
    size: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    description: str | None = None
    archived_at: datetime | None = utc_field(nullable=True)
    # The company that owns (sells) the service: the system owner or a reseller (TEN-13).
    # Only the owner enables it on its clients' agreements; None means the system owner.
    owner_company_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    # A reseller plan (TEN-13): seen only by its owner and the resellers assigned to it
    # (``service_reseller``), who build their own plans from it.
    reseller_plan: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class ServiceReseller(Timestamped, table=True):
    """A reseller assigned to a reseller plan (any number per plan)."""

    __tablename__ = "service_reseller"
    __table_args__ = (sa.UniqueConstraint("service_id", "company_id"),)

    id: int | None = Field(default=None, primary_key=True)
    service_id: int = Field(foreign_key="service.id", index=True)
    company_id: int = Field(foreign_key="company.id", index=True)


class ServiceScope(Timestamped, table=True):
    __tablename__ = "service_scope"

    id: int | None = Field(default=None, primary_key=True)
    service_id: int = Field(foreign_key="service.id", index=True)
    name: str | None = Field(default=None, max_length=200)
    draft: bool = False
    effective_from: datetime | None = utc_field(nullable=True)
    effective_till: datetime | None = utc_field(nullable=True)


class RateNode(Timestamped, table=True):
    """One node of a scope's rate tree (adjacency list).

    ``level`` is the attribute this node is a value of (domain, resource,
    direction, country, network, ...); ``value`` its key in that attribute
    (``others`` is the fallback); ``depends_on`` the level of its children.
    """

    __tablename__ = "rate_node"
    __table_args__ = (
        sa.CheckConstraint(_in("price_type", PRICE_TYPES), name="price_type"),
        sa.Index("ix_rate_node_scope_parent", "scope_id", "parent_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigIntPK, primary_key=True, autoincrement=True))
    scope_id: int = Field(foreign_key="service_scope.id")
    parent_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("rate_node.id", ondelete="CASCADE"), index=True)
    )
    position: int = 0
    level: str = Field(max_length=32)
    value: str = Field(max_length=120)
    label: str | None = Field(default=None, max_length=200)
    depends_on: str | None = Field(default=None, max_length=32)
    price_type: str = Field(default="depends", max_length=16)
    price: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    # {"type": "tier"|"back_to_first", "steps": [[upto|null, price_micros], ...]}
    scale: dict | None = Field(default=None, sa_type=sa.JSON, nullable=True)
    counter_group: str | None = Field(default=None, max_length=32)
    billing_rule: str | None = Field(default=None, max_length=16)
    quantity_rule: str | None = Field(default=None, max_length=16)


class EnabledService(Timestamped, table=True):
    __tablename__ = "enabled_service"

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: int = Field(foreign_key="agreement.id", index=True)
    service_id: int = Field(foreign_key="service.id", index=True)
    effective_from: datetime = utc_field()
    effective_till: datetime | None = utc_field(nullable=True)
    hidden: bool = False
    charge: bool = False


class RateImport(Timestamped, table=True):
    __tablename__ = "rate_import"

    id: int | None = Field(default=None, primary_key=True)
    service_id: int = Field(foreign_key="service.id", index=True)
    scope_id: int = Field(foreign_key="service_scope.id")
    node_path: str = Field(max_length=500)
    file_name: str = Field(max_length=500)
    sha256: str = Field(max_length=64)
    rows_read: int = 0
    rows_imported: int = 0
    rows_skipped: int = 0
    leaves: int = 0
    actor: str = Field(max_length=200)
    at: datetime = utc_field(default_now=True)
