"""An API key's callback (URL and signing secret) and the operator's view of the outbox.

The signing secret is made here (256 random bits), shown once when it is made
or rotated, and stored as a Fernet token (``secretbox``): the sender must read
it back to sign, so a hash would not do. None of these commits.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.callbacks.signing import RETRY_FOR
from cpaas_cli.errors import Conflict, InvalidInput, NotFound
from cpaas_cli.models.callbacks import ApiKeyCallback, CallbackOutbox
from cpaas_cli.models.identity import ApiKey
from cpaas_cli.secretbox import Keyring
from cpaas_cli.timeutil import iso

MAX_URL = 2000
OB = CallbackOutbox.__table__


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host, ≤ 2,000 characters (InvalidInput otherwise)."""
    text = url.strip()
    if len(text) > MAX_URL:
        raise InvalidInput(f"--callback-url: at most {MAX_URL} characters")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("--callback-url: an http:// or https:// URL with a host")
    return text


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def set_callback(
    session: Session, keyring: Keyring, key: ApiKey, *, url: str | None, rotate: bool = False
) -> tuple[ApiKeyCallback, str | None]:
    """Set (or change) the key's callback URL and/or make a new signing secret.
    Returns (row, the new secret or None when the old one is kept)."""
    if key.revoked_at is not None:
        raise Conflict(f"API key {key.name!r} is revoked")
    row = session.get(ApiKeyCallback, key.id)
    shown = None
    if row is None:
        if url is None:
            raise InvalidInput(f"API key {key.name!r} has no callback URL: give --callback-url")
        shown = new_secret()
        row = ApiKeyCallback(api_key_id=key.id, url=check_url(url), secret=keyring.encrypt(shown))  # type: ignore[arg-type]
        session.add(row)
    else:
        if url is not None:
            row.url = check_url(url)
        if rotate:
            shown = new_secret()
            row.secret = keyring.encrypt(shown)
        row.updated_at = clock.now()
    session.flush()
    return row, shown


def clear_callback(session: Session, key: ApiKey) -> bool:
    """Remove the key's callback (no new outbox rows; pending ones stay and are still posted)."""
    row = session.get(ApiKeyCallback, key.id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def callback_dict(row: ApiKeyCallback | None) -> dict[str, Any]:
    return {"callback_url": row.url if row else None, "callback_updated_at": iso(row.updated_at) if row else None}


def outbox_dict(r) -> dict[str, Any]:
    return {
        "id": r.id,
        "api_key_id": r.api_key_id,
        "transaction_id": r.transaction_id,
        "dnis": r.dnis,
        "status": r.status,
        "event_at": iso(r.event_at),
        "channel": r.channel,
        "mo": r.message is not None,
        "state": r.state,
        "attempts": r.attempts,
        "next_at": iso(r.next_at),
        "last_error": r.last_error,
        "created_at": iso(r.created_at),
        "delivered_at": iso(r.delivered_at),
    }


def list_outbox(
    session: Session, *, failed: bool = False, state: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Outbox rows, newest first: dead-lettered only with ``failed``, or those in ``state``."""
    q = sa.select(OB).order_by(OB.c.id.desc()).limit(limit)
    if failed:
        q = q.where(OB.c.state == sa.literal_column("'dead'"))  # the partial index
    elif state is not None:
        q = q.where(OB.c.state == state)
    return [outbox_dict(r) for r in session.execute(q)]


def retry(session: Session, outbox_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """A dead-lettered row back to pending, due now, with a fresh 24-hour retry window (Conflict unless dead)."""
    now = now or clock.now()
    row = session.execute(sa.select(OB).where(OB.c.id == outbox_id)).first()
    if row is None:
        raise NotFound(f"callback {outbox_id} not found")
    got = session.execute(
        sa.update(OB)
        .where(OB.c.id == outbox_id, OB.c.state == "dead")
        .values(state="pending", next_at=now, give_up_at=now + RETRY_FOR, lease_until=None, attempts=0)
    ).rowcount
    if not got:
        raise Conflict(f"callback {outbox_id} is {row.state}, not dead-lettered")
    return outbox_dict(session.execute(sa.select(OB).where(OB.c.id == outbox_id)).one())
