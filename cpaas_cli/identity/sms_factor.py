"""SMS codes as the platform users' second factor (SPEC USR-05, OTP-07), through the 2FA service.

The platform's own users get their sign-in codes from the same OTP service its
clients buy (``cpaas_cli/otp``): the integration named in
``[identity] sms_integration`` (its id or name; a platform-side integration the
operator sets up once for the whole platform, usually on a house account of the
owner). So a sign-in code is generated, stored (keyed hash only), limited (sends
per number, checks per code), expired and charged exactly as a client's
verification code is, and goes out through the dispatch workers like any message.

The user's ``user_token`` row (kind ``sms_code``) ties the code to the user: it
keeps the SHA-256 of the OTP request id, so a code sent to a phone that two users
share only signs in the user it was sent for. A wrong code is a failed sign-in
(the lock-out of ``sessions.py`` bounds guessing) and is not counted as a check
of the request (the sign-in's failure is recorded instead); the right code
is checked by the OTP service, once. TOTP stays available beside it (``totp.py``).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.errors import Conflict, CpaasError
from cpaas_cli.identity.keys import IdentityKeys
from cpaas_cli.models.identity import AppUser, UserToken

KIND = "sms_code"
SETTING = "sms_integration"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def integration(session: Session, settings):
    """The platform-side 2FA integration named in ``[identity] sms_integration``."""
    from cpaas_cli.otp import integrations

    section = settings.section("identity") if settings is not None else {}
    ref = section.get(SETTING)
    if not ref:
        old = [k for k in ("sms_company", "sms_sender") if section.get(k)]
        hint = f" ({' and '.join(old)} are no longer read: codes go through a 2FA integration)" if old else ""
        raise Conflict(
            f"SMS sign-in codes need a 2FA integration: create one (`cpaas otp integration create`) and name it "
            f"in the config as [identity] {SETTING}{hint}"
        )
    row = integrations.get(session, ref)
    if row.mode != "platform":
        raise Conflict(
            f"[identity] {SETTING}: 2FA integration {row.name!r} is client-side; sign-in needs one that makes its own codes"
        )
    if row.channel != "sms":
        raise Conflict(f"[identity] {SETTING}: 2FA integration {row.name!r} sends by {row.channel}; sign-in needs SMS")
    return row


def send_code(session: Session, keys: IdentityKeys, user: AppUser, settings) -> str:
    """Send a fresh code to the user's phone; returns the OTP request id."""
    from cpaas_cli.otp import requests as otp

    if not user.phone:
        raise Conflict(f"user {user.login!r} has no phone number for an SMS code")
    row = integration(session, settings)
    now = clock.now()
    # the send first: its fraud guard writes a block in a transaction of its own, which on SQLite
    # must not wait for a write lock this transaction would hold
    accepted = otp.send(session, keys, row, number=user.phone, now=now)
    T = UserToken.__table__
    session.connection().execute(
        sa.update(T).where(T.c.user_id == user.id, T.c.kind == KIND, T.c.used_at.is_(None)).values(used_at=now)
    )
    session.add(
        UserToken(
            user_id=user.id,  # type: ignore[arg-type]
            kind=KIND,
            token_hash=_sha(accepted.request_id),
            expires_at=now + _validity(row),
        )
    )
    session.flush()
    return accepted.request_id


def _validity(row) -> timedelta:
    return timedelta(seconds=row.validity_s)


def check_code(session: Session, keys: IdentityKeys, user: AppUser, code: str) -> bool:
    """True when ``code`` is the code last sent to the user (once, before it expires). The
    request is found from the user's token, so a code sent before a change of
    ``[identity] sms_integration`` is still checked by the integration that sent it."""
    from cpaas_cli.models.otp import OtpIntegration, OtpRequest
    from cpaas_cli.otp import codes
    from cpaas_cli.otp import requests as otp

    now = clock.now()
    token = session.exec(
        select(UserToken)
        .where(UserToken.user_id == user.id, UserToken.kind == KIND)
        .where(UserToken.used_at.is_(None), UserToken.expires_at > now)  # type: ignore[union-attr]
        .order_by(UserToken.id.desc())  # type: ignore[union-attr]
    ).first()
    if token is None or not user.phone:
        return False
    R = OtpRequest.__table__
    recent = session.execute(
        sa.select(R.c.request_id, R.c.integration_id, R.c.code_hash, R.c.state)
        .where(R.c.number == otp.check_number(user.phone))
        .order_by(R.c.id.desc())
        .limit(20)
    ).all()
    found = next((r for r in recent if _sha(r.request_id) == token.token_hash), None)
    row = session.get(OtpIntegration, found.integration_id) if found is not None else None
    if found is None or row is None or found.state != "pending" or found.code_hash is None:
        return False
    text = code.strip()
    # A wrong code writes nothing here: the sign-in's failure is recorded outside this transaction
    # (sessions._fail, the lock-out), which on SQLite must not wait for a write lock this one holds.
    if codes.shape_problem(text, row.digits, row.code_type) or not codes.code_matches(
        keys, found.request_id, codes.normal(text, row.code_type), found.code_hash
    ):
        return False
    try:
        checked = otp.verify(session, keys, row, request_id=found.request_id, code=text)
    except CpaasError:  # a malformed code, a used, expired or replaced request
        return False
    if checked.error is not None:
        return False
    token.used_at = now
    session.flush()
    return True
