"""secrets at rest: ``vendor_connection.password`` holds a Fernet token made
with the secret key (never in the database), not the clear text

Upgrade encrypts every stored password with the configured secret key
(``--secret-key-file``, ``CPAAS_SECRET_KEY`` or ``[secrets] key_file``). When
passwords are stored and no key is configured, the upgrade is refused before
anything changes, with a message saying how to make and name a key.
Downgrade decrypts them back into clear text (the schema before this one
expects it), and likewise refuses without the key that opens them.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import context, op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

VC = sa.table(
    "vendor_connection", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("password", sa.String)
)


def _stored() -> list[tuple[int, str, str]]:
    q = sa.select(VC.c.id, VC.c.name, VC.c.password).where(VC.c.password.is_not(None)).order_by(VC.c.id)
    return [tuple(r) for r in op.get_bind().execute(q)]


def _keyring(rows: list[tuple[int, str, str]], doing: str):
    """The configured keyring (the CLI passes a loader; alone, the environment and the config file)."""
    from cpaas_cli.errors import InvalidInput

    loader = context.config.attributes.get("secret_keys")
    if loader is None:
        from cpaas_cli.config import load_settings
        from cpaas_cli.secretbox import load_keyring

        keys = load_keyring(load_settings())
    else:
        keys = loader()
    if keys is None:
        from cpaas_cli.secretbox import HINT

        names = ", ".join(repr(name) for _id, name, _pw in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise InvalidInput(
            f"migration 0024 {doing} the stored SMPP passwords of {len(rows)} connection(s) ({names}) "
            f"and no secret key is configured: {HINT}; then run it again (this step changed nothing)"
        )
    return keys


def _replace_column(values: list[tuple[int, str]], length: int) -> None:
    """``password`` becomes a VARCHAR(length) holding ``values``: a new column, filled, then
    renamed over the old one. Each step is a plain ALTER TABLE on both databases (SQLite 3.35+):
    rebuilding the table (batch mode) would trip SQLite's foreign keys from senders, queue rows
    and inbound messages that refer to the connection."""
    op.add_column("vendor_connection", sa.Column("password_next", sqlmodel.sql.sqltypes.AutoString(length=length)))
    nxt = sa.table("vendor_connection", sa.column("id", sa.Integer), sa.column("password_next", sa.String))
    for id_, value in values:
        op.get_bind().execute(sa.update(nxt).where(nxt.c.id == id_).values(password_next=value))
    op.execute("ALTER TABLE vendor_connection DROP COLUMN password")
    op.execute("ALTER TABLE vendor_connection RENAME COLUMN password_next TO password")


def upgrade() -> None:
    rows = _stored()
    keys = _keyring(rows, "encrypts") if rows else None
    # Encrypt first (an unreadable key stops here, before any change).
    _replace_column([(id_, keys.encrypt(pw)) for id_, _name, pw in rows], 512)


def downgrade() -> None:
    rows = _stored()
    keys = _keyring(rows, "decrypts") if rows else None
    clear = [(id_, keys.decrypt(token, f"connection {name!r}: the stored password")) for id_, name, token in rows]
    _replace_column(clear, 64)
