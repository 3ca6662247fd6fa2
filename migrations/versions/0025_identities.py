"""identities: users, departments, roles (with the seed's system roles),
password history, one-time tokens, recovery codes, API keys, per-company
security settings and the identity generation counter

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 12:20:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import cpaas_cli.db.types

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# The system roles as they were when this revision was written (cpaas_cli/identity/roles.py).
SYSTEM_ROLES = {
    "backoffice": {
        "Admin": {"*": "manage"},
        "Client manager": {
            "company": "manage",
            "agreement": "manage",
            "sender": "manage",
            "user": "manage",
            "apikey": "manage",
            "campaign": "view",
            "contacts": "view",
            "service": "view",
            "payment": "view",
            "invoice": "view",
            "report": "view",
            "export": "manage",
        },
        "Finance manager": {
            "payment": "manage",
            "invoice": "manage",
            "fee": "manage",
            "service": "manage",
            "rerate": "manage",
            "agreement": "view",
            "company": "view",
            "edr": "view",
            "report": "view",
            "export": "manage",
        },
        "NOC engineer": {
            "connection": "manage",
            "mccmnc": "manage",
            "campaign": "manage",
            "edr": "view",
            "sender": "view",
            "company": "view",
            "report": "view",
        },
        "Rate manager": {
            "service": "manage",
            "rates": "manage",
            "mccmnc": "view",
            "rerate": "view",
            "company": "view",
            "agreement": "view",
        },
    },
    "portal": {
        "Admin": {"*": "manage"},
        "Broadcast manager": {
            "campaign": "manage",
            "contacts": "manage",
            "template": "manage",
            "sender": "view",
            "statistics": "view",
            "dashboard": "view",
        },
        "Finance manager": {"finance": "manage", "statistics": "view", "dashboard": "view", "export": "manage"},
        "NOC engineer": {"statistics": "view", "dashboard": "view", "campaign": "view", "conversation": "view"},
    },
}


def upgrade() -> None:
    op.create_table(
        "identity_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_generation")),
    )
    op.create_table(
        "role",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("side", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("system", sa.Boolean(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.CheckConstraint("side IN ('backoffice', 'portal')", name=op.f("ck_role_side")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role")),
        sa.UniqueConstraint("side", "name", name=op.f("uq_role_side_name")),
    )
    op.create_table(
        "company_security",
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("two_factor_required", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_company_security_company_id_company")),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_company_security")),
    )
    op.create_table(
        "department",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_department_company_id_company")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_department_company_id_name")),
    )
    op.create_index(op.f("ix_department_company_id"), "department", ["company_id"], unique=False)
    op.create_table(
        "app_user",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("first_name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("middle_name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("last_name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("job_title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=15), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("two_factor", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("password_changed_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("totp_secret", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("totp_confirmed", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.CheckConstraint("kind IN ('backoffice', 'portal')", name=op.f("ck_app_user_kind")),
        sa.CheckConstraint("two_factor IN ('none', 'totp', 'sms')", name=op.f("ck_app_user_two_factor")),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_app_user_company_id_company")),
        sa.ForeignKeyConstraint(
            ["department_id"], ["department.id"], name=op.f("fk_app_user_department_id_department")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("login", name=op.f("uq_app_user_login")),
    )
    op.create_index(op.f("ix_app_user_company_id"), "app_user", ["company_id"], unique=False)
    op.create_index(op.f("ix_app_user_department_id"), "app_user", ["department_id"], unique=False)
    op.create_table(
        "api_key",
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("expires_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_api_key_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_key_prefix")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_api_key_user_id_name")),
    )
    op.create_index(op.f("ix_api_key_user_id"), "api_key", ["user_id"], unique=False)
    op.create_table(
        "password_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_password_history_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_history")),
    )
    op.create_index(op.f("ix_password_history_user_id"), "password_history", ["user_id"], unique=False)
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("used_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_recovery_code_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_code")),
    )
    op.create_index(op.f("ix_recovery_code_user_id"), "recovery_code", ["user_id"], unique=False)
    op.create_table(
        "user_role",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["role.id"], name=op.f("fk_user_role_role_id_role")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_user_role_user_id_app_user")),
        sa.PrimaryKeyConstraint("user_id", "role_id", name=op.f("pk_user_role")),
    )
    op.create_index(op.f("ix_user_role_role_id"), "user_role", ["role_id"], unique=False)
    op.create_table(
        "user_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("expires_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('activation', 'sms_code', 'refresh')", name=op.f("ck_user_token_kind")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_user_token_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_token")),
    )
    op.create_index(op.f("ix_user_token_token_hash"), "user_token", ["token_hash"], unique=False)
    op.create_index(op.f("ix_user_token_user_id"), "user_token", ["user_id"], unique=False)
    now = datetime.now(UTC)
    role = sa.table(
        "role",
        sa.column("name", sa.String),
        sa.column("side", sa.String),
        sa.column("system", sa.Boolean),
        sa.column("permissions", sa.JSON),
        sa.column("created_at", cpaas_cli.db.types.UTCDateTime(timezone=True)),
        sa.column("updated_at", cpaas_cli.db.types.UTCDateTime(timezone=True)),
    )
    op.bulk_insert(
        role,
        [
            {"name": name, "side": side, "system": True, "permissions": perms, "created_at": now, "updated_at": now}
            for side, roles in SYSTEM_ROLES.items()
            for name, perms in roles.items()
        ],
    )
    gen = sa.table("identity_generation", sa.column("id", sa.Integer), sa.column("value", sa.BigInteger))
    op.bulk_insert(gen, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_index(op.f("ix_user_token_user_id"), table_name="user_token")
    op.drop_index(op.f("ix_user_token_token_hash"), table_name="user_token")
    op.drop_table("user_token")
    op.drop_index(op.f("ix_user_role_role_id"), table_name="user_role")
    op.drop_table("user_role")
    op.drop_index(op.f("ix_recovery_code_user_id"), table_name="recovery_code")
    op.drop_table("recovery_code")
    op.drop_index(op.f("ix_password_history_user_id"), table_name="password_history")
    op.drop_table("password_history")
    op.drop_index(op.f("ix_api_key_user_id"), table_name="api_key")
    op.drop_table("api_key")
    op.drop_index(op.f("ix_app_user_department_id"), table_name="app_user")
    op.drop_index(op.f("ix_app_user_company_id"), table_name="app_user")
    op.drop_table("app_user")
    op.drop_index(op.f("ix_department_company_id"), table_name="department")
    op.drop_table("department")
    op.drop_table("company_security")
    op.drop_table("role")
    op.drop_table("identity_generation")
