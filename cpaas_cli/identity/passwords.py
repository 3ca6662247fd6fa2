"""Passwords (SPEC USR-04): the policy, the hash and the lock-out.

Hashing is Argon2id from argon2-cffi (the one module that imports it), a
memory-hard KDF. The default profile (time cost 3, 64 MiB, one lane) takes
about 130 ms of one core to verify on the reference machine, inside the
50–250 ms band that makes guessing expensive and a login still quick
(``benchmarks/auth.py`` prints the figure). ``CPAAS_PASSWORD_PROFILE=fast``
selects a cheap profile for tests only; a hash records its own parameters,
so hashes made with either verify under both.

Policy: at least 8 characters from at least 3 of the 4 groups (upper case,
lower case, digits, other); not one of the last 7; at most 60 days old (then
a forced change); no second change of one's own password within 24 h
(operators acting for a user are not bound by it). Repeated failures lock the
account for a growing time: 5 failures lock it 1 minute, every further
failure doubles the time, up to a day.
"""

from __future__ import annotations

import os
import secrets
import string
from datetime import datetime, timedelta
from functools import cache

from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.errors import Conflict, Denied, InvalidInput
from cpaas_cli.models.identity import AppUser, PasswordHistory

MIN_LENGTH = 8
MAX_LENGTH = 256
MIN_GROUPS = 3
HISTORY = 7
MAX_AGE = timedelta(days=60)
MIN_INTERVAL = timedelta(hours=24)
LOCK_AFTER = 5
LOCK_FIRST = timedelta(minutes=1)
LOCK_MAX = timedelta(days=1)

PROFILES = {
    # (time_cost, memory_cost KiB, parallelism)
    "default": (3, 65536, 1),
    "fast": (1, 1024, 1),
}


@cache
def _hasher(profile: str):
    from argon2 import PasswordHasher

    t, m, p = PROFILES[profile]
    return PasswordHasher(time_cost=t, memory_cost=m, parallelism=p)


def hasher():
    profile = os.environ.get("CPAAS_PASSWORD_PROFILE", "default")
    return _hasher(profile if profile in PROFILES else "default")


def hash_password(password: str) -> str:
    return hasher().hash(password)


def matches(password_hash: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    if not password_hash:
        return False
    try:
        return hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def groups(password: str) -> int:
    return sum(
        (
            any(c.isupper() for c in password),
            any(c.islower() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def weakness(password: str, *, login: str | None = None) -> str | None:
    """The first policy rule ``password`` breaks, in words, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password is shorter than {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password is longer than {MAX_LENGTH} characters"
    if groups(password) < MIN_GROUPS:
        return (
            f"the password uses {groups(password)} of the 4 character groups (upper case, lower case, digits, "
            f"other); at least {MIN_GROUPS} are needed"
        )
    if login and len(login) >= 4 and login.lower() in password.lower():
        return "the password contains the login"
    return None


def generate(length: int = 16) -> str:
    """A strong random password: every character group, from the system's CSPRNG."""
    alphabet = string.ascii_letters + string.digits + "-_.!@#%+="
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if groups(value) == 4:
            return value


def set_password(session: Session, user: AppUser, password: str, *, own: bool, force_change: bool = False) -> None:
    """Check ``password`` against the policy and store its hash.

    ``own``: the user changes its own password (the 24 h interval applies);
    ``force_change``: the user must change it at the next sign-in (a password
    set by an operator)."""
    problem = weakness(password, login=user.login)
    if problem:
        raise InvalidInput(f"password: {problem}; nothing was written")
    now = clock.now()
    if (
        own
        and not user.must_change_password
        and user.password_changed_at
        and now - user.password_changed_at < MIN_INTERVAL
    ):
        raise Conflict("password: changed less than 24 hours ago; it cannot be changed again yet")
    recent = list(
        session.exec(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.user_id == user.id)
            .order_by(col(PasswordHistory.id).desc())
            .limit(HISTORY)
        )
    )
    if any(matches(h, password) for h in recent):
        raise InvalidInput(f"password: it is one of the last {HISTORY} passwords of this user; nothing was written")
    digest = hash_password(password)
    user.password_hash = digest
    user.password_changed_at = now
    user.must_change_password = force_change
    user.failed_logins = 0
    user.locked_until = None
    session.add(PasswordHistory(user_id=user.id, password_hash=digest, created_at=now))  # type: ignore[arg-type]
    session.flush()


def expired(user: AppUser, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return user.must_change_password or (
        user.password_changed_at is not None and now - user.password_changed_at > MAX_AGE
    )


def lock_delay(failures: int) -> timedelta | None:
    """How long the account is locked after ``failures`` consecutive failures."""
    if failures < LOCK_AFTER:
        return None
    return min(LOCK_FIRST * (2 ** (failures - LOCK_AFTER)), LOCK_MAX)


def refuse_if_locked(user: AppUser, now: datetime) -> None:
    if user.locked_until is not None and user.locked_until > now:
        wait = int((user.locked_until - now).total_seconds()) + 1
        raise Denied(f"user {user.login!r} is locked after repeated failures; try again in {wait} s")
