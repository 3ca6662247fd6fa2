"""Companies (the tenant tree), legal entities, banks and bank accounts."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field

from cpaas_cli.db.base import Timestamped

COMPANY_KINDS = ("owner", "reseller", "client")


class Company(Timestamped, table=True):
    __tablename__ = "company"
    __table_args__ = (
        sa.UniqueConstraint("parent_id", "name"),
        sa.CheckConstraint("kind IN ('owner', 'reseller', 'client')", name="kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    own_legal_entity_id: int | None = Field(
        default=None,
        sa_column_args=[sa.ForeignKey("legal_entity.id", use_alter=True)],
    )
    enabled: bool = True
    creator_of_resellers: bool = False
    # Pre-moderation: this company's campaigns wait for approval before they start.
    moderation: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # The partner's MO messages mode (SPEC CMP-18): API messages may ask for the replies (acceptMO).
    mo_messages: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    description: str | None = None


class LegalEntity(Timestamped, table=True):
    __tablename__ = "legal_entity"
    __table_args__ = (sa.UniqueConstraint("company_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=200)
    legal_name: str = Field(max_length=300)
    country: str = Field(max_length=2)
    portal: str | None = None
    tax_id: str | None = None
    legal_id: str | None = None
    vat_id: str | None = None
    legal_address: str | None = None
    billing_address: str | None = None
    is_default: bool = False


class Bank(Timestamped, table=True):
    __tablename__ = "bank"
    __table_args__ = (sa.UniqueConstraint("owner_company_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=200)
    description: str | None = None
    country: str = Field(max_length=2)
    address: str
    swift: str | None = None
    branch_code: str | None = None
    bank_code: str | None = None


class BankAccount(Timestamped, table=True):
    __tablename__ = "bank_account"
    __table_args__ = (sa.UniqueConstraint("legal_entity_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    legal_entity_id: int = Field(foreign_key="legal_entity.id", index=True)
    bank_id: int = Field(foreign_key="bank.id", index=True)
    name: str = Field(max_length=200)
    account_holder: str
    account_number: str
