"""2FA integrations (SPEC OTP-01/02): create, change, state changes, the API key.

States: Draft (saved, not running), Active, Blocked. ``create`` makes an
Active integration, or a Draft one with ``draft``; ``disable`` moves Active to
Blocked; ``enable`` moves Draft or Blocked to Active; ``delete`` removes it with
its requests. Only an Active integration sends.

The API key is shown once, at creation and at ``regenerate_key``; only its key
id is ever shown again. The callback signing secret is made when a callback
URL is first set (or rotated), shown once, and kept as a Fernet token.
None of these commits.

Channel ``sms`` sends the code as a text message from the integration's sender ID;
channel ``email`` sends it by e-mail through ``[smtp]`` (``otp/email_channel.py``):
the text is the body, ``subject`` the subject line. An e-mail integration names a sender
ID too: its agreement is the one charged (the rate tree's ``email`` domain) and its
text is the display name of the From address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from cpaas_cli import clock
from cpaas_cli.callbacks.service import check_url, new_secret
from cpaas_cli.campaigns import senders
from cpaas_cli.errors import Conflict, InvalidInput, NotFound, Problem
from cpaas_cli.identity.keys import IdentityKeys
from cpaas_cli.messaging.segments import analyse
from cpaas_cli.models.campaigns import SenderId
from cpaas_cli.models.otp import CHANNELS, CODE_TYPES, MODES, OtpIntegration
from cpaas_cli.models.tenancy import Company
from cpaas_cli.otp import codes
from cpaas_cli.refs import by_ref
from cpaas_cli.secretbox import Keyring
from cpaas_cli.tenancy.service import company as company_of
from cpaas_cli.timeutil import iso

MAX_NAME = 110
MAX_TEMPLATE = 1000
MAX_SUBJECT = 200
DEFAULT_SUBJECT = "Your verification code"
MAX_VALIDITY = 600
DEFAULT_VALIDITY = 300
DEFAULT_MAX_CHECKS = 5
DEFAULT_MAX_SENDS = 5
DEFAULT_SEND_WINDOW = 600
API_PATH = "/api/v1/2fa"


@dataclass
class Settings:
    """What ``create``/``update`` may set; None leaves a value as it is (or takes the default)."""

    name: str | None = None
    mode: str | None = None
    sender: str | None = None
    template: str | None = None
    digits: int | None = None
    code_type: str | None = None
    validity_s: int | None = None
    channel: str | None = None
    subject: str | None = None  # e-mail channel: the subject line ('' goes back to the default)
    callback_url: str | None = None
    max_checks: int | None = None
    max_sends: int | None = None
    send_window_s: int | None = None


@dataclass
class Saved:
    row: OtpIntegration
    key: str | None = None  # the API key text, shown once
    callback_secret: str | None = None  # the signing secret, shown once
    segments: int = 1  # of the text with a code of the integration's length


def get(session: Session, ref: str | int, *, company_id: int | None = None) -> OtpIntegration:
    where = [OtpIntegration.company_id == company_id] if company_id is not None else []
    return by_ref(session, OtpIntegration, ref, what="2FA integration", where=where)


def list_integrations(
    session: Session, *, company_id: int | None = None, state: str | None = None, limit: int | None = None
) -> list[OtpIntegration]:
    q = select(OtpIntegration).order_by(col(OtpIntegration.id).desc())
    if company_id is not None:
        q = q.where(OtpIntegration.company_id == company_id)
    if state is not None:
        q = q.where(OtpIntegration.state == state)
    if limit is not None:
        q = q.limit(limit)
    return list(session.exec(q))


def _check(s: Settings, problems: list[Problem]) -> None:
    if s.name is not None and not (0 < len(s.name.strip()) <= MAX_NAME):
        problems.append(Problem("--name", f"1 to {MAX_NAME} characters"))
    if s.mode is not None and s.mode not in MODES:
        problems.append(Problem("--mode", "platform or client"))
    if s.template is not None:
        if codes.PLACEHOLDER not in s.template:
            problems.append(Problem("--text", f"the text must contain {codes.PLACEHOLDER} where the code goes"))
        elif len(s.template) > MAX_TEMPLATE:
            problems.append(Problem("--text", f"at most {MAX_TEMPLATE} characters"))
    if s.digits is not None and s.digits not in codes.DIGITS:
        problems.append(Problem("--digits", "4, 6 or 8"))
    if s.code_type is not None and s.code_type not in CODE_TYPES:
        problems.append(Problem("--type", "numeric or alphanumeric"))
    if s.validity_s is not None and not 1 <= s.validity_s <= MAX_VALIDITY:
        problems.append(Problem("--validity", f"1 to {MAX_VALIDITY} seconds"))
    if s.channel is not None and s.channel not in CHANNELS:
        problems.append(Problem("--channel", "sms or email"))
    if s.subject is not None and (len(s.subject) > MAX_SUBJECT or "\n" in s.subject or "\r" in s.subject):
        problems.append(Problem("--subject", f"one line of at most {MAX_SUBJECT} characters"))
    for field, value, top in (
        ("--max-checks", s.max_checks, 100),
        ("--max-sends", s.max_sends, 1000),
        ("--send-window", s.send_window_s, 86_400),
    ):
        if value is not None and not 1 <= value <= top:
            problems.append(Problem(field, f"1 to {top}"))
    if s.callback_url:
        try:
            check_url(s.callback_url)
        except InvalidInput as exc:
            problems.append(Problem("--callback-url", exc.message.partition(": ")[2] or exc.message))


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise InvalidInput.from_problems(problems)


def segments_of(row: OtpIntegration) -> int:
    """Segments of the text with a code of the integration's length (the worst case: a
    letter code can only be longer than a digit one in UCS-2 if the text already is).
    An e-mail is one message whatever its length."""
    if row.channel == "email":
        return 1
    return analyse(codes.render(row.template, "W" * row.digits)).segments


def _sender(session: Session, ref: str, company_id: int) -> SenderId:
    row = senders.usable(session, ref, company_id=company_id, channel="sms")
    return row


def _set_callback(row: OtpIntegration, url: str | None, keyring: Keyring | None) -> str | None:
    """Set or clear (``""``) the callback URL; a new signing secret (returned) when there was none."""
    if url is None:
        return None
    if not url.strip():
        row.callback_url = None
        return None
    row.callback_url = check_url(url)
    if row.callback_secret is not None:
        return None
    if keyring is None:
        raise InvalidInput("a callback URL needs the secret key (its signing secret is stored encrypted)")
    shown = new_secret()
    row.callback_secret = keyring.encrypt(shown)
    return shown


def create(
    session: Session,
    keys: IdentityKeys,
    keyring: Keyring | None,
    *,
    company: str | int,
    settings: Settings,
    draft: bool = False,
) -> Saved:
    problems: list[Problem] = []
    for field, value in (("--name", settings.name), ("--sender", settings.sender), ("--text", settings.template)):
        if value is None:
            problems.append(Problem(field, "required"))
    _check(settings, problems)
    _raise(problems)
    comp = company_of(session, company)
    name = settings.name.strip()  # type: ignore[union-attr]
    taken = session.exec(
        select(OtpIntegration.id).where(OtpIntegration.company_id == comp.id, OtpIntegration.name == name)
    ).first()
    if taken is not None:
        raise Conflict(f"company {comp.name!r} already has a 2FA integration named {name!r}")
    sender = _sender(session, settings.sender, comp.id)  # type: ignore[arg-type]
    key_id, text, digest = codes.new_key(keys)
    row = OtpIntegration(
        company_id=comp.id,  # type: ignore[arg-type]
        name=name,
        mode=settings.mode or "platform",
        sender_id=sender.id,  # type: ignore[arg-type]
        template=settings.template,  # type: ignore[arg-type]
        digits=settings.digits or 6,
        code_type=settings.code_type or "numeric",
        validity_s=settings.validity_s or DEFAULT_VALIDITY,
        channel=settings.channel or "sms",
        subject=(settings.subject.strip() or None) if settings.subject is not None else None,
        key_id=key_id,
        secret_hash=digest,
        state="draft" if draft else "active",
        max_checks=settings.max_checks or DEFAULT_MAX_CHECKS,
        max_sends=settings.max_sends or DEFAULT_MAX_SENDS,
        send_window_s=settings.send_window_s or DEFAULT_SEND_WINDOW,
    )
    shown = _set_callback(row, settings.callback_url, keyring)
    session.add(row)
    session.flush()
    return Saved(row, key=text, callback_secret=shown, segments=segments_of(row))


def update(
    session: Session, keyring: Keyring | None, row: OtpIntegration, *, settings: Settings, rotate_secret: bool = False
) -> Saved:
    problems: list[Problem] = []
    _check(settings, problems)
    _raise(problems)
    if settings.name is not None and settings.name.strip() != row.name:
        name = settings.name.strip()
        taken = session.exec(
            select(OtpIntegration.id).where(
                OtpIntegration.company_id == row.company_id, OtpIntegration.name == name, OtpIntegration.id != row.id
            )
        ).first()
        if taken is not None:
            raise Conflict(f"the company already has a 2FA integration named {name!r}")
        row.name = name
    if settings.sender is not None:
        row.sender_id = _sender(session, settings.sender, row.company_id).id  # type: ignore[assignment]
    for attr in ("mode", "template", "digits", "code_type", "validity_s", "channel", "max_checks", "max_sends",
                 "send_window_s"):  # fmt: skip
        value = getattr(settings, attr)
        if value is not None:
            setattr(row, attr, value)
    if settings.subject is not None:
        row.subject = settings.subject.strip() or None
    shown = _set_callback(row, settings.callback_url, keyring)
    if rotate_secret:
        if row.callback_url is None:
            raise InvalidInput("--rotate-secret: the integration has no callback URL")
        if keyring is None:
            raise InvalidInput("--rotate-secret needs the secret key")
        shown = new_secret()
        row.callback_secret = keyring.encrypt(shown)
    row.updated_at = clock.now()
    session.flush()
    return Saved(row, callback_secret=shown, segments=segments_of(row))


def status_url(row: OtpIntegration, url: str, keyring: Keyring | None) -> tuple[str, str | None]:
    """A test send's own status URL, checked, and the integration's signing secret when it
    had none (made now, returned to be shown once): its callbacks are signed like the others."""
    try:
        text = check_url(url)
    except InvalidInput as exc:
        problem = Problem("--status-url", exc.message.partition(": ")[2] or exc.message)
        raise InvalidInput(str(problem), problems=[problem]) from None
    if row.callback_secret is not None:
        return text, None
    if keyring is None:
        raise InvalidInput("--status-url needs the secret key (the integration's signing secret is stored encrypted)")
    shown = new_secret()
    row.callback_secret = keyring.encrypt(shown)
    row.updated_at = clock.now()
    return text, shown


def regenerate_key(session: Session, keys: IdentityKeys, row: OtpIntegration) -> str:
    """A new API key; the old one stops working at once. Returns the key text (shown once)."""
    row.key_id, text, row.secret_hash = codes.new_key(keys)
    row.updated_at = clock.now()
    session.flush()
    return text


_MOVES = {"enable": (("draft", "blocked"), "active"), "disable": (("active",), "blocked")}


def move(session: Session, row: OtpIntegration, action: str) -> OtpIntegration:
    """``enable`` (Draft/Blocked → Active) or ``disable`` (Active → Blocked): a conditional
    UPDATE on the expected states; Conflict (exit 5) when the state does not allow it."""
    allowed, target = _MOVES[action]
    t = OtpIntegration.__table__
    got = session.execute(
        sa.update(t).where(t.c.id == row.id, t.c.state.in_(allowed)).values(state=target, updated_at=clock.now())
    ).rowcount
    session.refresh(row)
    if not got:
        raise Conflict(f"2FA integration {row.name!r} is {row.state}; {action} needs {' or '.join(allowed)}")
    return row


def delete(session: Session, row: OtpIntegration) -> None:
    """The integration, its requests and its result callbacks in the outbox (messages and EDRs stay)."""
    from cpaas_cli.models.callbacks import CallbackOutbox
    from cpaas_cli.models.otp import OtpRequest

    ob = CallbackOutbox.__table__
    session.execute(sa.delete(ob).where(ob.c.otp_integration_id == row.id))
    session.execute(sa.delete(OtpRequest.__table__).where(OtpRequest.__table__.c.integration_id == row.id))
    session.delete(row)
    session.flush()


def integration_url(base: str | None, mode: str, channel: str = "sms") -> str:
    """Where the client POSTs a send: ``<base>/api/v1/2fa/verify/<channel>`` (platform side)
    or ``<base>/api/v1/2fa/send/<channel>`` (client side); the channel is sms or email."""
    host = (base or "https://<host>").rstrip("/")
    return f"{host}{API_PATH}/{'verify' if mode == 'platform' else 'send'}/{channel}"


def integration_dict(session: Session, row: OtpIntegration, *, base_url: str | None = None) -> dict[str, Any]:
    comp = session.get(Company, row.company_id)
    sender = session.get(SenderId, row.sender_id)
    return {
        "id": row.id,
        "name": row.name,
        "company": comp.name if comp else None,
        "mode": row.mode,
        "sender": sender.sender if sender else None,
        "state": row.state,
        "channel": row.channel,
        "text": row.template,
        "subject": (row.subject or DEFAULT_SUBJECT) if row.channel == "email" else None,
        "segments": segments_of(row),
        "digits": row.digits,
        "type": row.code_type,
        "validity_s": row.validity_s,
        "callback_url": row.callback_url,
        "max_checks": row.max_checks,
        "max_sends": row.max_sends,
        "send_window_s": row.send_window_s,
        "key_id": row.key_id,
        "url": integration_url(base_url, row.mode, row.channel),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def authenticate(session: Session, keys: IdentityKeys, text: str) -> OtpIntegration:
    """The integration of an API key text. NotFound when the key is malformed, unknown or
    its secret does not match (the caller answers 401 without saying which)."""
    parts = codes.split_key(text)
    if parts is None:
        raise NotFound("unknown API key")
    row = session.exec(select(OtpIntegration).where(OtpIntegration.key_id == parts[0])).first()
    if row is None or not codes.key_matches(keys, parts[1], row.secret_hash):
        raise NotFound("unknown API key")
    return row
