"""API keys (SPEC USR-08/09, AMB-21): ``cpk_<prefix>_<secret>``.

The 8-character prefix is stored in clear and finds the row; the secret (256
random bits) is stored only as HMAC-SHA256 under a key derived from the secret
key. A fast keyed hash is the right tool here, unlike for passwords: a
memory-hard KDF exists to slow down guessing of low-entropy secrets, and 256
random bits cannot be guessed however fast the hash; the key outside the
database means a stolen table does not even allow checking a guess offline.
So a check costs microseconds, and an API server can check every request.

:class:`Authenticator` keeps resolved keys in memory. A process sees another
process's revoke, regenerate, role change or user/company block within one
second: at most once a second it reads the ``identity_generation`` counter
(raised by every such change) and the latest company change, and drops its
cache when either moved. Last-use times are kept in memory and written in one
batch (every 30 s and at ``close``), not one write per check.
"""

from __future__ import annotations

import hmac
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.errors import Conflict, Denied, InvalidInput, NotFound
from cpaas_cli.identity import access
from cpaas_cli.identity.keys import IdentityKeys, keyed_hash
from cpaas_cli.models.identity import ApiKey, AppUser
from cpaas_cli.timeutil import iso

PREFIX_LEN = 8
MAX_NAME = 60
_ALPHABET = string.ascii_lowercase + string.digits
_KEY = re.compile(r"^cpk_([a-z0-9]{8})_([A-Za-z0-9_-]{20,100})$")
EXPIRY = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "3m": timedelta(days=91),
    "1y": timedelta(days=365),
    "never": None,
}


def expiry_from(text: str | None, parse_time) -> datetime | None:
    """``1d``, ``7d``, ``30d``, ``3m``, ``1y``, ``never`` (the seed's choices) or a time."""
    if text is None or text.strip().lower() == "never":
        return None
    if text.strip().lower() in EXPIRY:
        return clock.now() + EXPIRY[text.strip().lower()]  # type: ignore[operator]
    value = parse_time(text, "--expires")
    if value <= clock.now():
        raise InvalidInput("--expires: the time is in the past")
    return value


def status(row: ApiKey, now: datetime | None = None) -> str:
    now = now or clock.now()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _new_secret(keys: IdentityKeys) -> tuple[str, str, str]:
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(PREFIX_LEN))
    secret = secrets.token_urlsafe(32)
    return prefix, f"cpk_{prefix}_{secret}", keyed_hash(keys.derive("apikey")[0], secret)


def create(
    session: Session,
    keys: IdentityKeys,
    *,
    user: AppUser,
    name: str,
    expires_at: datetime | None = None,
    scopes: list[str] = (),  # type: ignore[assignment]
) -> tuple[ApiKey, str]:
    """A new key for ``user``; returns (row, key text shown once)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"--name: 1 to {MAX_NAME} characters")
    clean = []
    for s in scopes:
        area = s.strip().partition(".")[0]
        from cpaas_cli.identity.roles import AREAS

        if area != "*" and area not in AREAS[user.kind]:
            raise InvalidInput(f"--scope: {s!r} is not area[.action] of a {user.kind} area")
        clean.append(s.strip())
    if session.exec(select(ApiKey.id).where(ApiKey.user_id == user.id, ApiKey.name == name)).first() is not None:
        raise Conflict(f"user {user.login!r} already has an API key named {name!r}")
    prefix, text, digest = _new_secret(keys)
    row = ApiKey(
        user_id=user.id,  # type: ignore[arg-type]
        name=name,
        prefix=prefix,
        secret_hash=digest,
        scopes=clean,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    access.bump(session)  # a process may have cached the prefix as unknown
    return row, text


def get(session: Session, ref: str, *, user: AppUser | None = None) -> ApiKey:
    """A key by id, prefix, or name (with ``user``)."""
    text = ref.strip()
    q = select(ApiKey)
    if user is not None:
        q = q.where(ApiKey.user_id == user.id)
    m = _KEY.match(text)
    if m:
        text = m.group(1)
    conds = [ApiKey.prefix == text, ApiKey.name == text]
    if text.isdigit() and int(text) < 2**31:
        conds.append(ApiKey.id == int(text))
    rows = list(session.exec(q.where(sa.or_(*conds))))
    if not rows:
        raise NotFound(f"API key {text!r} not found")
    if len(rows) > 1:
        raise InvalidInput(f"API key {text!r} is ambiguous; give --user or the id")
    return rows[0]


def regenerate(session: Session, keys: IdentityKeys, row: ApiKey) -> str:
    """A new secret (and prefix) for the key; the old one stops working at once."""
    if row.revoked_at is not None:
        raise Conflict(f"API key {row.name!r} is revoked; create a new one")
    row.prefix, text, row.secret_hash = _new_secret(keys)
    session.flush()
    access.bump(session)
    return text


def set_expiry(session: Session, row: ApiKey, at: datetime | None) -> ApiKey:
    """Expire now (``at`` None) or at a time (extending an expired key is allowed)."""
    if row.revoked_at is not None:
        raise Conflict(f"API key {row.name!r} is revoked")
    row.expires_at = at or clock.now()
    session.flush()
    access.bump(session)
    return row


def revoke(session: Session, row: ApiKey) -> ApiKey:
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        session.flush()
        access.bump(session)
    return row


def list_keys(session: Session, *, user: AppUser | None = None) -> list[ApiKey]:
    q = select(ApiKey).order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())
    if user is not None:
        q = q.where(ApiKey.user_id == user.id)
    return list(session.exec(q))


def key_dict(session: Session, row: ApiKey) -> dict[str, Any]:
    user = session.get(AppUser, row.user_id)
    return {
        "id": row.id,
        "name": row.name,
        "user": user.login if user else None,
        "prefix": row.prefix,
        "scopes": list(row.scopes),
        "status": status(row),
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at),
    }


# ---------------------------------------------------------------- checking keys


@dataclass
class _Entry:
    key_id: int
    digest: str
    expires_at: datetime | None
    revoked: bool
    principal: access.Principal | None
    refusal: str | None  # why the user cannot authenticate (disabled, blocked)


class Authenticator:
    """Checks API keys with an in-process cache (see the module docstring)."""

    def __init__(self, engine: sa.Engine, keys: IdentityKeys, *, refresh_s: float = 1.0, flush_s: float = 30.0):
        self.engine = engine
        self.digest_keys = keys.derive("apikey")
        self.refresh_s = refresh_s
        self.flush_s = flush_s
        self._cache: dict[str, _Entry | None] = {}
        self._seen_at = -1e9
        self._generation: tuple[int, Any] | None = None
        self._used: dict[int, datetime] = {}
        self._flushed_at = time.monotonic()
        self._refreshing = threading.Lock()

    def cached(self, key: str) -> bool:
        """True when checking ``key`` needs no database trip (its entry is cached and
        fresh, no batched last-use times are due): an event loop may then call
        :meth:`identify` directly instead of from a worker thread."""
        now = time.monotonic()
        if now - self._seen_at >= self.refresh_s and not self._refreshing.locked():
            return False
        if now - self._flushed_at >= self.flush_s:
            return False
        m = _KEY.match(key.strip())
        entry = self._cache.get(m.group(1)) if m is not None else None
        if entry is None or entry.revoked or entry.principal is None:
            return False  # unknown or refused: the refusal is audited, which writes
        if entry.expires_at is not None and entry.expires_at <= clock.now():
            return False
        return any(hmac.compare_digest(entry.digest, keyed_hash(k, m.group(2))) for k in self.digest_keys)

    def _fresh(self) -> None:
        now = time.monotonic()
        if now - self._seen_at < self.refresh_s:
            return
        if not self._refreshing.acquire(blocking=False):
            return  # another thread is asking; until it has, the cache is a moment older
        try:
            with self.engine.connect() as conn:
                gen = access.generation(conn)
            self._seen_at = now
            if gen != self._generation:
                self._cache.clear()
                self._generation = gen
        finally:
            self._refreshing.release()

    def _load(self, prefix: str) -> _Entry | None:
        from cpaas_cli.db.engine import make_session

        with make_session(self.engine, actor="apikey") as s:
            row = s.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
            if row is None:
                return None
            user = s.get(AppUser, row.user_id)
            assert user is not None
            principal, refusal = None, access.blocked_reason(s, user)
            if refusal is None:
                principal = access.principal(s, user, scopes=tuple(row.scopes) or None)
            return _Entry(row.id, row.secret_hash, row.expires_at, row.revoked_at is not None, principal, refusal)  # type: ignore[arg-type]

    def authenticate(
        self, key: str, permission: str | None = None, company: Any = None, *, ip: str | None = None
    ) -> access.Principal:
        """The principal of ``key`` (and ``permission`` on ``company`` checked); Denied otherwise."""
        return self.identify(key, permission, company, ip=ip)[0]

    def identify(
        self, key: str, permission: str | None = None, company: Any = None, *, ip: str | None = None
    ) -> tuple[access.Principal, int]:
        """As :meth:`authenticate`, with the key's id (the HTTP API stores it on what the key sends)."""
        m = _KEY.match(key.strip())
        if m is None:
            return self._refuse(None, "malformed key", ip)
        prefix, secret = m.groups()
        self._fresh()
        if prefix in self._cache:
            entry = self._cache[prefix]
        else:
            entry = self._cache[prefix] = self._load(prefix)
            if len(self._cache) > 100_000:
                self._cache.clear()
        if entry is None:
            return self._refuse(None, "unknown key", ip)
        if not any(hmac.compare_digest(entry.digest, keyed_hash(k, secret)) for k in self.digest_keys):
            return self._refuse(entry, "wrong secret", ip)
        now = clock.now()
        if entry.revoked:
            return self._refuse(entry, "revoked key", ip)
        if entry.expires_at is not None and entry.expires_at <= now:
            return self._refuse(entry, "expired key", ip)
        if entry.principal is None:
            return self._refuse(entry, entry.refusal or "user cannot sign in", ip)
        self._used[entry.key_id] = now
        if time.monotonic() - self._flushed_at >= self.flush_s:
            self.flush()
        if permission is not None:
            try:
                access.require(entry.principal, permission, company)
            except Denied:
                self._audit(entry, "permission_refused", {"permission": permission, "ip": ip})
                raise
        return entry.principal, entry.key_id

    def _audit(self, entry: _Entry | None, action: str, new: dict[str, Any]) -> None:
        from cpaas_cli.db.engine import make_session

        with make_session(self.engine, actor=entry.principal.actor if entry and entry.principal else "apikey") as s:
            access.record_outside(
                s,
                action=action,
                object_type="api_key",
                object_id=entry.key_id if entry else None,
                company_id=entry.principal.company_id if entry and entry.principal else None,
                new=new,
            )

    def _refuse(self, entry: _Entry | None, reason: str, ip: str | None) -> Any:
        self._audit(entry, "apikey_refused", {"reason": reason, "ip": ip})
        raise Denied(f"API key refused: {reason}")

    def flush(self) -> int:
        """Write the batched last-use times (one statement); returns how many keys."""
        used, self._used = self._used, {}
        self._flushed_at = time.monotonic()
        if not used:
            return 0
        t = ApiKey.__table__
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(t).where(t.c.id == sa.bindparam("kid")).values(last_used_at=sa.bindparam("at")),
                [{"kid": k, "at": v} for k, v in used.items()],
            )
        return len(used)

    def close(self) -> None:
        self.flush()
