"""Users (SPEC USR-01/02/07): BackOffice users of the owner or a reseller,
client-portal users of a client company with a department.

Invites create a disabled user with a one-time activation token (shown once
or e-mailed, stored as its SHA-256: the token is 256 random bits, so a plain
hash is enough), valid 72 hours; activating sets the first password.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.contacts.phones import PhoneError, normalise
from cpaas_cli.errors import Conflict, Denied, InvalidInput, NotFound, Problem, require
from cpaas_cli.identity import access, passwords
from cpaas_cli.identity.roles import get as get_role
from cpaas_cli.identity.roles import user_roles
from cpaas_cli.models.identity import (
    ApiKey,
    AppUser,
    Department,
    PasswordHistory,
    RecoveryCode,
    UserRole,
    UserToken,
)
from cpaas_cli.models.tenancy import Company
from cpaas_cli.tenancy.service import company as find_company
from cpaas_cli.timeutil import TimeError, check_zone, iso

SYSTEM_DEPARTMENTS = ("Admin", "First line support")
INVITE_TTL = timedelta(hours=72)
MAX_NAME = 60
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{1,59}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$")
EDITABLE = ("first_name", "middle_name", "last_name", "job_title", "phone", "email", "country", "language", "timezone")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class UserInput:
    login: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    job_title: str | None = None
    phone: str | None = None
    email: str | None = None
    country: str | None = None
    language: str | None = None
    timezone: str | None = None


def check_fields(data: UserInput, problems: list[Problem]) -> dict[str, Any]:
    """The given fields, cleaned; problems name the option."""
    out: dict[str, Any] = {}
    if data.login is not None:
        login = data.login.strip()
        if not _LOGIN.match(login):
            problems.append(Problem("login", "2 to 60 letters, digits or . _ @ + - (starting with a letter or digit)"))
        out["login"] = login
    for name in ("first_name", "last_name", "middle_name"):
        value = getattr(data, name)
        if value is None:
            continue
        value = value.strip()
        if name != "middle_name" and not value:
            problems.append(Problem(name, "must not be empty"))
        if len(value) > MAX_NAME:
            problems.append(Problem(name, f"at most {MAX_NAME} characters"))
        out[name] = value or None
    if data.job_title is not None:
        if len(data.job_title) > 100:
            problems.append(Problem("job_title", "at most 100 characters"))
        out["job_title"] = data.job_title.strip() or None
    if data.phone is not None:
        raw = data.phone.strip()
        if raw:
            try:
                phone = normalise(raw, data.country)
                if len(phone) > 15:
                    raise PhoneError("is longer than 15 digits")
                out["phone"] = phone
            except PhoneError as exc:
                problems.append(Problem("phone", f"{raw!r} {exc}"))
        else:
            out["phone"] = None
    if data.email is not None:
        email = data.email.strip()
        if email and (len(email) > 254 or not _EMAIL.match(email)):
            problems.append(Problem("email", f"{email!r} is not an e-mail address"))
        out["email"] = email or None
    if data.country is not None:
        country = data.country.strip().upper()
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            problems.append(Problem("country", f"{data.country!r} is not a 2-letter country code"))
        out["country"] = country or None
    if data.language is not None:
        if not _LANG.match(data.language.strip()):
            problems.append(Problem("language", f"{data.language!r} is not a language code (e.g. en, es, pt-BR)"))
        out["language"] = data.language.strip()
    if data.timezone is not None:
        try:
            out["timezone"] = check_zone(data.timezone.strip())
        except TimeError as exc:
            problems.append(Problem("timezone", str(exc)))
    return out


def get(session: Session, ref: str | int) -> AppUser:
    text = str(ref).strip()
    row = session.exec(select(AppUser).where(AppUser.login == text)).first()
    if row is None and text.lstrip("#").isdigit() and int(text.lstrip("#")) < 2**31:
        row = session.get(AppUser, int(text.lstrip("#")))
    if row is None:
        raise NotFound(f"user {text!r} not found")
    return row


def kind_for(company: Company) -> str:
    return "portal" if company.kind == "client" else "backoffice"


def department(session: Session, company: Company, name: str) -> Department:
    """The company's department of that name, created when new (typing a name creates it)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"department: 1 to {MAX_NAME} characters")
    row = session.exec(select(Department).where(Department.company_id == company.id, Department.name == name)).first()
    if row is None:
        row = Department(company_id=company.id, name=name)  # type: ignore[arg-type]
        session.add(row)
        session.flush()
    return row


def create(
    session: Session,
    *,
    company: str | int,
    data: UserInput,
    department_name: str | None = None,
    roles: list[str] = (),  # type: ignore[assignment]
    password: str | None = None,
    enabled: bool = True,
    two_factor: str = "none",
) -> AppUser:
    """A user of ``company``: BackOffice for the owner or a reseller, portal for a client."""
    comp = find_company(session, company)
    kind = kind_for(comp)
    problems: list[Problem] = []
    for name in ("login", "first_name", "last_name"):
        if getattr(data, name) is None:
            problems.append(Problem(name, "is required"))
    fields = check_fields(data, problems)
    if kind == "portal" and not department_name:
        problems.append(Problem("department", "a client-portal user needs a department (Admin, First line support, …)"))
    if kind == "backoffice" and department_name:
        problems.append(Problem("department", "departments are for client-portal users"))
    if two_factor not in ("none", "totp", "sms"):
        problems.append(Problem("two_factor", "none, totp or sms"))
    if two_factor == "sms" and not fields.get("phone"):
        problems.append(Problem("two_factor", "SMS two-factor needs a valid phone number"))
    role_rows = []
    for ref in roles:
        try:
            role_rows.append(get_role(session, ref, side=kind))
        except NotFound:
            problems.append(Problem("role", f"{ref!r} is not a {kind} role"))
    if password is not None:
        weak = passwords.weakness(password, login=fields.get("login"))
        if weak:
            problems.append(Problem("password", weak))
    require(problems)
    if session.exec(select(AppUser.id).where(AppUser.login == fields["login"])).first() is not None:
        raise Conflict(f"a user with login {fields['login']!r} already exists")
    dep = department(session, comp, department_name) if department_name else None
    user = AppUser(
        company_id=comp.id,  # type: ignore[arg-type]
        kind=kind,
        department_id=dep.id if dep else None,
        enabled=enabled,
        two_factor="none",
        **fields,
    )
    session.add(user)
    session.flush()
    for role in role_rows:
        session.add(UserRole(user_id=user.id, role_id=role.id))  # type: ignore[arg-type]
    if password is not None:
        passwords.set_password(session, user, password, own=False, force_change=True)
    user.two_factor = two_factor if two_factor == "sms" else "none"  # TOTP starts with enrolment
    session.flush()
    return user


def update(
    session: Session, user: AppUser, *, data: UserInput, department_name: str | None = None
) -> tuple[AppUser, bool]:
    """Change the given fields; returns (user, sessions_ended): a new or changed
    phone number ends the user's sessions (USR-05)."""
    problems: list[Problem] = []
    if data.country is None and user.country:
        data.country = user.country
    fields = check_fields(data, problems)
    fields.pop("login", None)
    if department_name is not None and user.kind != "portal":
        problems.append(Problem("department", "departments are for client-portal users"))
    if "phone" in fields and fields["phone"] is None and user.two_factor == "sms":
        problems.append(Problem("phone", "SMS two-factor is on: set another number or turn it off first"))
    require(problems)
    ended = "phone" in fields and fields["phone"] != user.phone
    for key, value in fields.items():
        setattr(user, key, value)
    if department_name is not None:
        comp = session.get(Company, user.company_id)
        user.department_id = department(session, comp, department_name).id  # type: ignore[arg-type]
    if ended:
        end_sessions(session, user)
    session.flush()
    access.bump(session)
    return user, ended


def end_sessions(session: Session, user: AppUser) -> None:
    """Every session token of ``user`` stops working; refresh tokens are spent."""
    user.session_epoch += 1
    now = clock.now()
    session.connection().execute(
        sa.update(UserToken.__table__)
        .where(UserToken.__table__.c.user_id == user.id, UserToken.__table__.c.kind == "refresh")
        .where(UserToken.__table__.c.used_at.is_(None))
        .values(used_at=now)
    )


def _not_self(user: AppUser, acting: str | None, what: str) -> None:
    if acting is not None and acting in (user.login, f"user:{user.login}"):
        raise Conflict(f"user {user.login!r} cannot {what} itself")


def set_enabled(session: Session, user: AppUser, enabled: bool, *, acting: str | None) -> AppUser:
    if not enabled:
        _not_self(user, acting, "disable")
        end_sessions(session, user)
    user.enabled = enabled
    if enabled:
        user.failed_logins, user.locked_until = 0, None
    session.flush()
    access.bump(session)
    return user


def delete(session: Session, user: AppUser, *, acting: str | None) -> dict[str, int]:
    _not_self(user, acting, "delete")
    counts = {}
    for model in (UserRole, PasswordHistory, UserToken, RecoveryCode, ApiKey):
        rows = list(session.exec(select(model).where(model.user_id == user.id)))
        counts[model.__tablename__] = len(rows)
        for row in rows:
            session.delete(row)
    session.flush()
    session.delete(user)
    session.flush()
    access.bump(session)
    return counts


def list_users(session: Session, *, company: str | int | None = None, enabled: bool | None = None) -> list[AppUser]:
    q = select(AppUser).order_by(col(AppUser.id))
    if company is not None:
        q = q.where(AppUser.company_id == find_company(session, company).id)
    if enabled is not None:
        q = q.where(AppUser.enabled == enabled)
    return list(session.exec(q))


def invite(
    session: Session,
    *,
    company: str | int,
    data: UserInput,
    department_name: str | None,
    roles: list[str],
    smtp: Any = None,
) -> tuple[AppUser, str, bool]:
    """A disabled user and its one-time activation token; e-mailed when the user
    has an address and ``smtp`` is given. Returns (user, token, emailed)."""
    user = create(session, company=company, data=data, department_name=department_name, roles=roles, enabled=False)
    token = secrets.token_hex(32)
    session.add(
        UserToken(
            user_id=user.id,  # type: ignore[arg-type]
            kind="activation",
            token_hash=token_hash(token),
            expires_at=clock.now() + INVITE_TTL,
        )
    )
    session.flush()
    emailed = False
    if user.email and smtp is not None:
        from cpaas_cli import mail

        mail.send(
            smtp,
            to=[user.email],
            subject="Your cpaas account",
            body=(
                f"Hello {user.first_name},\n\nan account with the login {user.login} was created for you.\n"
                f"Activate it within 72 hours with:\n\n  cpaas user activate {token} --password-stdin\n"
            ),
        )
        emailed = True
    return user, token, emailed


def activate(session: Session, token: str, password: str) -> AppUser:
    """Spend an activation token: enable the user with its first password."""
    row = session.exec(
        select(UserToken).where(UserToken.kind == "activation", UserToken.token_hash == token_hash(token.strip()))
    ).first()
    now = clock.now()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise Denied("the activation token is unknown, used or expired")
    user = session.get(AppUser, row.user_id)
    assert user is not None
    passwords.set_password(session, user, password, own=False)
    row.used_at = now
    user.enabled = True
    session.flush()
    access.bump(session)
    return user


def user_dict(session: Session, user: AppUser) -> dict[str, Any]:
    dep = session.get(Department, user.department_id) if user.department_id else None
    return {
        "id": user.id,
        "login": user.login,
        "kind": user.kind,
        "company_id": user.company_id,
        "first_name": user.first_name,
        "middle_name": user.middle_name,
        "last_name": user.last_name,
        "job_title": user.job_title,
        "phone": user.phone,
        "email": user.email,
        "country": user.country,
        "language": user.language,
        "timezone": user.timezone,
        "department": dep.name if dep else None,
        "roles": [r.name for r in user_roles(session, user.id)],  # type: ignore[arg-type]
        "enabled": user.enabled,
        "two_factor": user.two_factor if user.two_factor != "totp" or user.totp_confirmed else "none",
        "has_password": user.password_hash is not None,
        "password_changed_at": iso(user.password_changed_at),
        "must_change_password": passwords.expired(user),
        "locked_until": iso(user.locked_until),
        "last_login_at": iso(user.last_login_at),
        "created_at": iso(user.created_at),
    }
