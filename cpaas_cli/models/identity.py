"""Identity tables: users, departments, roles, password history, one-time
tokens (activation, SMS codes, refresh), recovery codes, API keys, and the
generation counter that tells every process its cached identities are stale.

Nothing here holds a secret in clear: passwords, tokens, codes and API keys
are stored as hashes; the TOTP seed (which must be read back to check a code)
is a Fernet token made with the secret key outside the database.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from cpaas_cli.db.base import Timestamped, utc_field

USER_KINDS = ("backoffice", "portal")
TWO_FACTOR = ("none", "totp", "sms")


class Department(Timestamped, table=True):
    __tablename__ = "department"
    __table_args__ = (sa.UniqueConstraint("company_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    name: str = Field(max_length=60)


class AppUser(Timestamped, table=True):
    __tablename__ = "app_user"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('backoffice', 'portal')", name="kind"),
        sa.CheckConstraint("two_factor IN ('none', 'totp', 'sms')", name="two_factor"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    login: str = Field(max_length=60, sa_column_kwargs={"unique": True})
    kind: str = Field(max_length=16)
    first_name: str = Field(max_length=60)
    middle_name: str | None = Field(default=None, max_length=60)
    last_name: str = Field(max_length=60)
    job_title: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=15)
    email: str | None = Field(default=None, max_length=254)
    country: str | None = Field(default=None, max_length=2)
    language: str = Field(default="en", max_length=8)
    timezone: str = Field(default="UTC", max_length=64)
    department_id: int | None = Field(default=None, foreign_key="department.id", index=True)
    enabled: bool = True
    two_factor: str = Field(default="none", max_length=8)
    password_hash: str | None = Field(default=None, max_length=255)
    password_changed_at: datetime | None = utc_field(nullable=True)
    must_change_password: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = utc_field(nullable=True)
    last_login_at: datetime | None = utc_field(nullable=True)
    # Fernet token of the TOTP seed (secretbox); the last accepted time step (no reuse)
    totp_secret: str | None = None
    totp_confirmed: bool = False
    totp_last_step: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    # Raised to end every session token issued before (logout everywhere, phone change)
    session_epoch: int = 0


class Role(Timestamped, table=True):
    __tablename__ = "role"
    __table_args__ = (
        sa.UniqueConstraint("side", "name"),
        sa.CheckConstraint("side IN ('backoffice', 'portal')", name="side"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40)
    side: str = Field(max_length=16)
    description: str | None = Field(default=None, max_length=300)
    system: bool = False
    # area -> "view" | "manage"; {"*": "manage"} is "no restrictions"
    permissions: dict = Field(default_factory=dict, sa_type=sa.JSON)


class UserRole(SQLModel, table=True):
    __tablename__ = "user_role"

    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    role_id: int = Field(foreign_key="role.id", primary_key=True, index=True)


class PasswordHistory(SQLModel, table=True):
    __tablename__ = "password_history"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime = utc_field(default_now=True)


class UserToken(SQLModel, table=True):
    """A one-time or refresh token: activation (invite), SMS code, refresh; hashed."""

    __tablename__ = "user_token"
    __table_args__ = (sa.CheckConstraint("kind IN ('activation', 'sms_code', 'refresh')", name="kind"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    kind: str = Field(max_length=16)
    token_hash: str = Field(max_length=128, index=True)
    expires_at: datetime = utc_field()
    used_at: datetime | None = utc_field(nullable=True)
    created_at: datetime = utc_field(default_now=True)


class RecoveryCode(SQLModel, table=True):
    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    secret_hash: str = Field(max_length=128)
    used_at: datetime | None = utc_field(nullable=True)


class ApiKey(Timestamped, table=True):
    __tablename__ = "api_key"
    __table_args__ = (sa.UniqueConstraint("user_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=60)
    prefix: str = Field(max_length=8, sa_column_kwargs={"unique": True})
    secret_hash: str = Field(max_length=64)
    scopes: list = Field(default_factory=list, sa_type=sa.JSON)
    expires_at: datetime | None = utc_field(nullable=True)
    revoked_at: datetime | None = utc_field(nullable=True)
    last_used_at: datetime | None = utc_field(nullable=True)


class IdentityGeneration(SQLModel, table=True):
    """One row (id 1): raised by every change that must reach other processes'
    caches (revoke, disable, role change); read at most once a second."""

    __tablename__ = "identity_generation"

    id: int = Field(default=1, primary_key=True)
    value: int = Field(default=0, sa_type=sa.BigInteger)


class CompanySecurity(SQLModel, table=True):
    """Per-company identity settings (SPEC TEN-02): "2FA required" for every user."""

    __tablename__ = "company_security"

    company_id: int = Field(foreign_key="company.id", primary_key=True)
    two_factor_required: bool = False
