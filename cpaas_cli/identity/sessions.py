"""Sign-in and session tokens (SPEC USR-04/05/11).

``login`` checks the password (lock-out after repeated failures, recorded),
the second factor (TOTP, a recovery code, or an SMS code; forced when the
company requires it), and returns a short-lived access token (a PyJWT HS256
token, signed with a key derived from the secret key, 15 minutes) and a
refresh token (random, stored as its SHA-256, valid 60 minutes after the last
use: the seed's idle logout). Refreshing spends the refresh token and gives a
new pair; logging out, disabling the user or changing its phone raises its
session epoch, which ends every token issued before.

Failures (unknown login, bad password, bad code, locked, blocked) are audit
rows written in their own transaction, so they stay although the command fails.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.errors import Denied
from cpaas_cli.identity import access, passwords, sms_factor, totp
from cpaas_cli.identity.keys import IdentityKeys
from cpaas_cli.models.identity import AppUser, UserToken
from cpaas_cli.timeutil import iso

ACCESS_TTL = timedelta(minutes=15)
REFRESH_IDLE = timedelta(minutes=60)
ALGORITHM = "HS256"
INACTIVE = timedelta(days=180)  # then blocked, administrators excepted (USR-04)
_USERS = AppUser.__table__


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _fail(
    session: Session, user: AppUser | None, action: str, reason: str, *, ip: str | None, login: str | None = None
) -> None:
    """Record a refused sign-in (counter, lock-out, audit row) outside the command's transaction."""
    updates = []
    new: dict[str, Any] = {"reason": reason, "ip": ip, "login": login or (user.login if user else None)}
    if user is not None and action == "login_failed":
        failures = user.failed_logins + 1
        values: dict[str, Any] = {"failed_logins": failures}
        delay = passwords.lock_delay(failures)
        if delay is not None:
            values["locked_until"] = clock.now() + delay
            new["locked_for_s"] = int(delay.total_seconds())
            action = "locked"
        updates.append((_USERS, user.id, values))
    access.record_outside(
        session,
        action=action,
        object_type="app_user",
        object_id=user.id if user else None,
        company_id=user.company_id if user else None,
        actor=f"user:{user.login}" if user else None,
        new=new,
        updates=updates,
    )


def check_password(session: Session, user: AppUser, password: str, *, ip: str | None = None) -> None:
    """Denied (and recorded) unless ``password`` is the user's; resets the failure count when it is."""
    now = clock.now()
    try:
        passwords.refuse_if_locked(user, now)
    except Denied:
        _fail(session, user, "login_refused", "locked", ip=ip)
        raise
    if not passwords.matches(user.password_hash, password):
        _fail(session, user, "login_failed", "bad password", ip=ip)
        raise Denied("wrong login or password")
    user.failed_logins = 0
    user.locked_until = None


def _inactive(session: Session, user: AppUser) -> bool:
    """Not signed in for more than 180 days (counted from the last sign-in, or the
    last enable / password change), and not an administrator."""
    from cpaas_cli.identity.roles import ALL, user_roles

    since = max(t for t in (user.last_login_at, user.password_changed_at, user.updated_at) if t is not None)
    if clock.now() - since <= INACTIVE:
        return False
    return not any(r.permissions.get(ALL) == "manage" for r in user_roles(session, user.id))  # type: ignore[arg-type]


@dataclass
class LoginResult:
    login: str
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: str | None = None
    second_factor: str | None = None  # the factor still needed (no tokens yet)
    code_sent: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def needed_factor(session: Session, user: AppUser) -> str | None:
    if user.two_factor == "totp" and user.totp_confirmed:
        return "totp"
    if user.two_factor == "sms":
        return "sms"
    if access.two_factor_required(session, user.company_id):
        if not user.phone:
            raise Denied(
                f"user {user.login!r} cannot sign in: its company requires two-factor and it has no phone number"
            )
        return "sms"
    return None


def login(
    session: Session,
    keys: IdentityKeys,
    *,
    login_name: str,
    password: str,
    code: str | None = None,
    ring=None,
    settings=None,
    ip: str | None = None,
) -> LoginResult:
    user = session.exec(select(AppUser).where(AppUser.login == login_name.strip())).first()
    if user is None:
        passwords.matches(passwords.hash_password("x-unknown-user"), password)  # same time as a known login
        _fail(session, None, "login_failed", "unknown login", ip=ip, login=login_name[:60])
        raise Denied("wrong login or password")
    reason = access.blocked_reason(session, user)
    if reason:
        _fail(session, user, "login_refused", reason, ip=ip)
        raise Denied(f"user {user.login!r} cannot sign in: {reason}")
    check_password(session, user, password, ip=ip)
    if _inactive(session, user):
        _fail(session, user, "login_refused", "inactive", ip=ip)
        raise Denied(
            f"user {user.login!r} has not signed in for more than {INACTIVE.days} days and is blocked; "
            "an administrator can enable it again (`cpaas user enable`)"
        )
    if passwords.expired(user):
        raise Denied(
            f"the password of {user.login!r} must be changed first: `cpaas user set-password {user.login} --own`"
        )
    factor = needed_factor(session, user)
    if factor and code is None:
        if factor == "sms":
            sms_factor.send_code(session, keys, user, settings)
            return LoginResult(user.login, second_factor="sms", code_sent=True)
        return LoginResult(user.login, second_factor="totp")
    if factor == "totp" and not totp.verify(session, ring, keys, user, code or ""):
        _fail(session, user, "login_failed", "bad TOTP code", ip=ip)
        raise Denied("wrong or already used two-factor code")
    if factor == "sms" and not sms_factor.check_code(session, keys, user, code or ""):
        _fail(session, user, "login_failed", "bad SMS code", ip=ip)
        raise Denied("wrong or expired SMS code")
    access.act_as(session, f"user:{user.login}")  # the rest of this transaction is the user's
    user.last_login_at = clock.now()
    session.flush()
    _audit_as(session, user, "login", {"ip": ip, "second_factor": factor})
    return _issue(session, keys, user)


def _audit_as(session: Session, user: AppUser, action: str, new: dict[str, Any]) -> None:
    actor = session.info.get("actor")
    session.info["actor"] = f"user:{user.login}"
    try:
        record(session, action=action, object_type="app_user", object_id=user.id, company_id=user.company_id, new=new)
    finally:
        session.info["actor"] = actor


def _issue(session: Session, keys: IdentityKeys, user: AppUser) -> LoginResult:
    import jwt

    now = clock.now()
    exp = now + ACCESS_TTL
    claims = {
        "sub": str(user.id),
        "ep": user.session_epoch,
        "iat": int(now.timestamp()),
        "exp": int(exp.timestamp()),
        "jti": secrets.token_hex(8),
        "typ": "access",
    }
    token = jwt.encode(claims, keys.derive("session")[0], algorithm=ALGORITHM)
    refresh = secrets.token_urlsafe(32)
    session.add(
        UserToken(user_id=user.id, kind="refresh", token_hash=_sha(refresh), expires_at=now + REFRESH_IDLE)  # type: ignore[arg-type]
    )
    session.flush()
    return LoginResult(user.login, access_token=token, refresh_token=refresh, expires_at=iso(exp))


def authenticate(session: Session, keys: IdentityKeys, token: str) -> access.Principal:
    """The principal of a valid access token; Denied for a bad, expired or ended one."""
    import jwt

    claims = None
    for key in keys.derive("session"):
        try:
            claims = jwt.decode(
                token.strip(),
                key,
                algorithms=[ALGORITHM],
                # the signature here; the times below against the injectable clock (not the wall clock)
                options={"require": ["exp", "sub"], "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
            break
        except jwt.InvalidTokenError:
            continue
    if claims is None or claims.get("typ") != "access":
        raise Denied("not a valid session token")
    if claims["exp"] <= clock.now().timestamp():
        raise Denied("the session token has expired; refresh it or sign in again")
    user = session.get(AppUser, int(claims["sub"]))
    if user is None or user.session_epoch != claims.get("ep"):
        raise Denied("the session has ended; sign in again")
    return access.principal(session, user)


def refresh(session: Session, keys: IdentityKeys, refresh_token: str) -> LoginResult:
    now = clock.now()
    row = session.exec(
        select(UserToken).where(UserToken.kind == "refresh", UserToken.token_hash == _sha(refresh_token.strip()))
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise Denied("the refresh token is unknown, used or expired; sign in again")
    user = session.get(AppUser, row.user_id)
    assert user is not None
    reason = access.blocked_reason(session, user)
    if reason:
        raise Denied(f"user {user.login!r} cannot sign in: {reason}")
    row.used_at = now
    session.flush()
    return _issue(session, keys, user)


def logout(session: Session, user: AppUser) -> None:
    """End every session of ``user`` (tokens issued before stop working at once)."""
    from cpaas_cli.identity.users import end_sessions

    end_sessions(session, user)
    session.flush()
    _audit_as(session, user, "logout", {})
