"""autoincrement: ids are never reused after a delete (SQLite AUTOINCREMENT)

Every table with an integer ``id`` primary key is rebuilt on SQLite with
``id INTEGER PRIMARY KEY AUTOINCREMENT``, so the id of a deleted row is never
given again (the audit trail names objects by id). PostgreSQL sequences never
hand a number out twice: there this revision does nothing.

The rebuild follows SQLite's own recipe for altering a table: a new table
from the stored CREATE statement with only the primary key changed (CHECK
constraints, defaults, foreign keys and partial indexes stay exactly as
written), the rows copied with their ids, the old table dropped, the new one
renamed, the indexes and triggers created again from their stored text.
Foreign keys are off while migrations run; ``db/migrate.py`` checks them
before the commit.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

import re

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# The tables with an integer ``id`` primary key at this revision.
TABLES = (
    "company", "bank", "legal_entity", "bank_account", "agreement", "agreement_version", "audit_log",
    "service", "service_scope", "rate_import", "rate_node", "enabled_service",
    "contact", "contact_field", "contact_group", "stop_list_entry", "contact_import",
    "edr", "payment", "payment_state", "scale_counter", "charge",
    "sender_id", "message_template", "campaign", "campaign_recipient", "outbound_message",
    "fee_rule", "fee_run", "invoice", "invoice_line", "edr_export_task", "saved_report",
    "rerate_task", "rerate_unit", "inbound_message", "vendor_connection",
    "identity_generation", "role", "department", "app_user", "api_key", "password_history",
    "recovery_code", "user_token",
)  # fmt: skip

_HEAD = re.compile(r'^CREATE TABLE ("?)(\w+)\1 \(')
_ID = "\tid INTEGER NOT NULL, "
_PK = re.compile(r", \n\tCONSTRAINT (\w+) PRIMARY KEY \(id\)")
_AUTO = re.compile(r"\tid INTEGER NOT NULL (?:CONSTRAINT (\w+) )?PRIMARY KEY AUTOINCREMENT, ")


def _with_autoincrement(table: str, sql: str) -> str | None:
    if "AUTOINCREMENT" in sql:
        return None  # already
    pk = _PK.search(sql)
    if _ID not in sql or pk is None:
        raise RuntimeError(f"table {table}: unexpected definition, cannot add AUTOINCREMENT")
    sql = sql[: pk.start()] + sql[pk.end() :]
    return sql.replace(_ID, f"\tid INTEGER NOT NULL CONSTRAINT {pk.group(1)} PRIMARY KEY AUTOINCREMENT, ", 1)


def _without_autoincrement(table: str, sql: str) -> str | None:
    if "AUTOINCREMENT" not in sql:
        return None  # rebuilt without it already (a batch-mode rebuild keeps it only when asked)
    auto = _AUTO.search(sql)
    if auto is None or not sql.endswith("\n)"):
        raise RuntimeError(f"table {table}: unexpected definition, cannot remove AUTOINCREMENT")
    sql = sql[: auto.start()] + _ID + sql[auto.end() :]
    name = auto.group(1) or f"pk_{table}"  # a rebuild by batch mode drops the name
    return sql[: -len("\n)")] + f", \n\tCONSTRAINT {name} PRIMARY KEY (id)\n)"


def _rebuild(change) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL: sequences never reuse a value
    for table in TABLES:
        (sql,) = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).one()
        changed = change(table, sql)
        if changed is None:
            continue
        others = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY type, name",
                (table,),
            )
        ]
        new_sql = _HEAD.sub(f'CREATE TABLE "{table}__rebuilt" (', changed, count=1)
        conn.exec_driver_sql(new_sql)
        conn.exec_driver_sql(f'INSERT INTO "{table}__rebuilt" SELECT * FROM "{table}"')
        conn.exec_driver_sql(f'DROP TABLE "{table}"')
        conn.exec_driver_sql(f'ALTER TABLE "{table}__rebuilt" RENAME TO "{table}"')
        for statement in others:
            conn.exec_driver_sql(statement)


def upgrade() -> None:
    _rebuild(_with_autoincrement)


def downgrade() -> None:
    _rebuild(_without_autoincrement)
