"""Second factor (SPEC USR-05): TOTP (pyotp) with recovery codes (SMS codes: ``sms_factor.py``).

TOTP: the seed is kept as a Fernet token (secretbox), because checking a code
needs it back; a code is accepted in a window of ±1 step (30 s) and a step
once accepted is never accepted again. Recovery codes (ten, shown once) are
stored as keyed hashes and each works once.
"""

from __future__ import annotations

import hmac
import secrets

import sqlalchemy as sa
from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.errors import Conflict, InvalidInput
from cpaas_cli.identity import access
from cpaas_cli.identity.keys import IdentityKeys, keyed_hash
from cpaas_cli.models.identity import AppUser, RecoveryCode

ISSUER = "cpaas"
STEP = 30
WINDOW = 1
RECOVERY_CODES = 10


def _totp(secret: str):
    import pyotp

    return pyotp.TOTP(secret, interval=STEP)


def enrol(session: Session, ring, user: AppUser) -> tuple[str, str]:
    """A new (unconfirmed) TOTP seed; returns (seed, provisioning URI), shown once."""
    import pyotp

    secret = pyotp.random_base32()
    user.totp_secret = ring.encrypt(secret)
    user.totp_confirmed = False
    user.totp_last_step = None
    session.flush()
    return secret, _totp(secret).provisioning_uri(name=user.login, issuer_name=ISSUER)


def qr_text(uri: str) -> str:
    """The URI as a QR code drawn with text blocks, for a terminal."""
    import io

    import segno

    buf = io.StringIO()
    segno.make(uri, error="m").terminal(out=buf, compact=True)
    return buf.getvalue()


def _accept_code(session: Session, ring, user: AppUser, code: str) -> bool:
    if not user.totp_secret:
        return False
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return False
    secret = ring.decrypt(user.totp_secret, f"the TOTP seed of user {user.login!r}")
    totp = _totp(secret)
    now_step = int(clock.now().timestamp()) // STEP
    for step in range(now_step - WINDOW, now_step + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False  # a code already accepted (or an older one)
            user.totp_last_step = step
            session.flush()
            return True
    return False


def confirm(session: Session, ring, keys: IdentityKeys, user: AppUser, code: str) -> list[str]:
    """Confirm enrolment with a first code; TOTP becomes the user's second factor.
    Returns the recovery codes (shown once, stored hashed)."""
    if not user.totp_secret:
        raise Conflict(f"user {user.login!r} has no TOTP enrolment to confirm: run `cpaas user totp-enrol` first")
    if not _accept_code(session, ring, user, code):
        raise InvalidInput("code: not the current code of the enrolled authenticator; nothing was written")
    user.totp_confirmed = True
    user.two_factor = "totp"
    codes = new_recovery_codes(session, keys, user)
    access.bump(session)
    return codes


def new_recovery_codes(session: Session, keys: IdentityKeys, user: AppUser) -> list[str]:
    session.connection().execute(sa.delete(RecoveryCode.__table__).where(RecoveryCode.__table__.c.user_id == user.id))
    key = keys.derive("recovery")[0]
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    for code in codes:
        session.add(RecoveryCode(user_id=user.id, secret_hash=keyed_hash(key, code)))  # type: ignore[arg-type]
    session.flush()
    return codes


def _use_recovery(session: Session, keys: IdentityKeys, user: AppUser, code: str) -> bool:
    hashes = {keyed_hash(k, code.strip().lower()) for k in keys.derive("recovery")}
    row = session.exec(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.used_at.is_(None),  # type: ignore[union-attr]
            RecoveryCode.secret_hash.in_(hashes),  # type: ignore[attr-defined]
        )
    ).first()
    if row is None:
        return False
    row.used_at = clock.now()
    session.flush()
    return True


def verify(session: Session, ring, keys: IdentityKeys, user: AppUser, code: str) -> bool:
    """A TOTP code (±1 step, no reuse) or an unused recovery code."""
    if "-" in code:
        return _use_recovery(session, keys, user, code)
    return _accept_code(session, ring, user, code)


def disable(session: Session, user: AppUser) -> None:
    user.totp_secret = None
    user.totp_confirmed = False
    user.totp_last_step = None
    if user.two_factor == "totp":
        user.two_factor = "none"
    session.connection().execute(sa.delete(RecoveryCode.__table__).where(RecoveryCode.__table__.c.user_id == user.id))
    session.flush()
    access.bump(session)
