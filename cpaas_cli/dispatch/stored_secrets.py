"""The secrets the database keeps encrypted (today: the passwords of vendor
connections typed at a prompt): check that the configured key opens every one,
and move every one to a new key in one transaction (``cpaas secrets …``)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.secretbox import HINT, Keyring


def _what(row: VendorConnection) -> str:
    return f"connection {row.name!r}: the stored password"


def _stored(session: Session, *, lock: bool = False) -> list[VendorConnection]:
    q = select(VendorConnection).where(col(VendorConnection.password).is_not(None)).order_by(VendorConnection.id)
    if lock:
        q = q.with_for_update()  # PostgreSQL: no password changes under a rotation
    return list(session.exec(q))


def check(session: Session, keys: Keyring | None) -> dict[str, Any]:
    """Open every stored secret with ``keys``; InvalidInput naming the first one that does not open."""
    rows = _stored(session)
    if rows and keys is None:
        raise InvalidInput(f"{len(rows)} stored password(s) and no secret key is configured: {HINT}")
    for row in rows:
        keys.decrypt(row.password, _what(row))
    return {
        "key_source": keys.where if keys else None,
        "keys": keys.count if keys else 0,
        "secrets": len(rows),
        "connections": [row.name for row in rows],
        "ok": True,
    }


def rotate(session: Session, current: Keyring | None, new: Keyring) -> dict[str, Any]:
    """Encrypt every stored secret again with ``new``'s first key (either keyring may open it);
    the caller's transaction makes it all or nothing."""
    keys = new.then(current)
    rows = _stored(session, lock=True)
    for row in rows:
        row.password = keys.rotate(row.password, _what(row))
        session.add(row)
    session.flush()
    return {
        "rotated": len(rows),
        "connections": [row.name for row in rows],
        "encrypted_with": new.where,
    }
