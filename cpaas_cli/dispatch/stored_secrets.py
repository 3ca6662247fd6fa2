"""The secrets the database keeps encrypted with the secret key (``secretbox``): the
passwords of vendor connections typed at a prompt, the callback signing secrets of API
keys and of 2FA integrations, and users' TOTP seeds. Check that the configured key opens every one, and
move every one to a new key in one transaction (``cpaas secrets …``).

Keyed hashes (API keys, 2FA integration keys, codes in flight, session tokens) are not
secrets that can be encrypted again: they keep being checked under every configured key
(``identity/keys.py``), so the old key stays listed below the new one while they are in use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.callbacks import ApiKeyCallback
from cpaas_cli.models.dispatch import VendorConnection
from cpaas_cli.models.identity import ApiKey, AppUser
from cpaas_cli.models.otp import OtpIntegration
from cpaas_cli.secretbox import HINT, Keyring


@dataclass(frozen=True)
class Stored:
    """One kind of encrypted secret: its table, its column, the output key that lists them,
    and how a row is named (in the list, and in the message when it does not decrypt)."""

    model: Any
    column: str
    key: str
    name: Callable[[Session, Any], str]
    what: str


def _api_key_name(session: Session, row: ApiKeyCallback) -> str:
    key = session.get(ApiKey, row.api_key_id)
    return key.name if key is not None else str(row.api_key_id)


KINDS = (
    Stored(VendorConnection, "password", "connections", lambda _s, r: r.name, "connection {!r}: the stored password"),
    Stored(ApiKeyCallback, "secret", "api_keys", _api_key_name, "API key {!r}: the callback signing secret"),
    Stored(OtpIntegration, "callback_secret", "otp_integrations", lambda _s, r: r.name,
           "2FA integration {!r}: the callback signing secret"),
    Stored(AppUser, "totp_secret", "totp_users", lambda _s, r: r.login, "user {!r}: the TOTP seed"),
)  # fmt: skip


def _stored(session: Session, kind: Stored, *, lock: bool = False) -> list[Any]:
    column = getattr(kind.model, kind.column)
    pk = kind.model.__table__.primary_key.columns.values()[0]
    q = select(kind.model).where(col(column).is_not(None)).order_by(pk)
    if lock:
        q = q.with_for_update()  # PostgreSQL: no secret changes under a rotation
    return list(session.exec(q))


def _all(session: Session, *, lock: bool = False) -> list[tuple[Stored, list[Any]]]:
    return [(kind, _stored(session, kind, lock=lock)) for kind in KINDS]


def check(session: Session, keys: Keyring | None) -> dict[str, Any]:
    """Open every stored secret with ``keys``; InvalidInput naming the first one that does not open."""
    found = _all(session)
    total = sum(len(rows) for _k, rows in found)
    if total and keys is None:
        raise InvalidInput(f"{total} stored secret(s) and no secret key is configured: {HINT}")
    names: dict[str, list[str]] = {}
    for kind, rows in found:
        names[kind.key] = []
        for row in rows:
            name = kind.name(session, row)
            keys.decrypt(getattr(row, kind.column), kind.what.format(name))  # type: ignore[union-attr]
            names[kind.key].append(name)
    return {"key_source": keys.where if keys else None, "keys": keys.count if keys else 0, "secrets": total,
            **names, "ok": True}  # fmt: skip


def rotate(session: Session, current: Keyring | None, new: Keyring) -> dict[str, Any]:
    """Encrypt every stored secret again with ``new``'s first key (either keyring may open it);
    the caller's transaction makes it all or nothing."""
    keys = new.then(current)
    total = 0
    names: dict[str, list[str]] = {}
    for kind, rows in _all(session, lock=True):
        names[kind.key] = []
        for row in rows:
            name = kind.name(session, row)
            setattr(row, kind.column, keys.rotate(getattr(row, kind.column), kind.what.format(name)))
            session.add(row)
            names[kind.key].append(name)
        total += len(rows)
    session.flush()
    return {"rotated": total, **names, "encrypted_with": new.where}
