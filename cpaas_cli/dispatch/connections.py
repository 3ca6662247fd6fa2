"""Vendor connections: create, change, list, and turn one into gateway settings.

Passwords: a connection names an environment variable (``password_env``,
resolved when binding) or keeps a password typed at a prompt, stored only as
a Fernet token made with the secret key, which is never in the database
(cpaas_cli/secretbox.py): storing one without a key configured is refused.
Neither the password nor anything derived from it is ever returned by
``connection_dict``; the audit hook masks every column whose name contains "pass".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import phonenumbers
from sqlmodel import Session, col, select

from cpaas_cli.dispatch.receipts import StatusMap, parse_id_formats
from cpaas_cli.errors import Conflict, InvalidInput, Problem, require
from cpaas_cli.models.catalog import Service
from cpaas_cli.models.dispatch import (
    AFTER_CRASH,
    BIND_MODES,
    CONCATS,
    GSM7_CODINGS,
    MULTIPART_FINAL,
    VendorConnection,
)
from cpaas_cli.refs import by_ref
from cpaas_cli.secretbox import HINT as KEY_HINT
from cpaas_cli.timeutil import iso

if TYPE_CHECKING:
    from cpaas_cli.secretbox import Keyring

MASK = "***"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSET: Any = object()
TONS = range(7)  # SMPP 3.4 §5.2.5: 0 unknown ... 6 abbreviated
NPIS = (0, 1, 3, 4, 6, 8, 9, 10, 14, 18)  # SMPP 3.4 §5.2.6


@dataclass
class SmppInput:
    """Fields of an SMPP connection; None means "not given" (keep, or default)."""

    host: str | None = None
    port: int | None = None
    system_id: str | None = None
    password_env: str | None = None
    password: str | None = None
    system_type: str | None = None
    tls: bool | None = None
    bind_mode: str | None = None
    rps: int | None = _UNSET
    window: int | None = None
    message_id_format: str | None = None
    status_map: Mapping[str, Any] | None = None
    default_country: str | None = None  # "" clears it
    multipart_final: str | None = None
    description: str | None = None
    source_ton: int | None = _UNSET  # None: by the sender ID's kind
    source_npi: int | None = _UNSET
    dest_ton: int | None = None
    dest_npi: int | None = None
    gsm7_coding: str | None = None
    concat: str | None = None
    enquire_link: float | None = None
    response_timeout: float | None = None
    bind_retry_after: float | None = None
    after_crash: str | None = None  # resend | hold


def parse_address_code(text: str | None, flag: str) -> int | None:
    """``auto`` (None: by the sender ID's kind) or a number; InvalidInput otherwise."""
    if text is None or text.strip().lower() == "auto":
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{flag}: {text!r} is not a number or auto", problems=[Problem(flag, "a number or auto")]
        ) from None


def _validate(data: SmppInput, problems: list[Problem]) -> None:
    if data.host is not None and not data.host.strip():
        problems.append(Problem("--host", "must not be empty"))
    if data.port is not None and not 1 <= data.port <= 65535:
        problems.append(Problem("--port", f"{data.port} is not a TCP port (1-65535)"))
    if data.system_id is not None and not 1 <= len(data.system_id) <= 15:
        problems.append(Problem("--system-id", "must be 1 to 15 characters (SMPP 3.4)"))
    if data.system_type is not None and len(data.system_type) > 12:
        problems.append(Problem("--system-type", "must be at most 12 characters (SMPP 3.4)"))
    if data.password is not None and not 1 <= len(data.password) <= 8:
        # SMPP 3.4 caps the bind password at 8 octets; longer ones are refused by most SMSCs.
        problems.append(Problem("password", "must be 1 to 8 characters (SMPP 3.4)"))
    if data.password_env is not None and not _ENV_NAME.fullmatch(data.password_env):
        problems.append(Problem("--password-env", f"{data.password_env!r} is not an environment variable name"))
    if data.bind_mode is not None and data.bind_mode not in BIND_MODES:
        problems.append(Problem("--bind", f"{data.bind_mode!r} is not one of {', '.join(BIND_MODES)}"))
    if data.rps is not _UNSET and data.rps is not None and data.rps <= 0:
        problems.append(Problem("--rps", "must be positive (leave it out for no limit)"))
    if data.window is not None and not 1 <= data.window <= 10000:
        problems.append(Problem("--window", "must be 1 to 10000"))
    if data.multipart_final is not None and data.multipart_final not in MULTIPART_FINAL:
        problems.append(
            Problem("--multipart-final", f"{data.multipart_final!r} is not one of {', '.join(MULTIPART_FINAL)}")
        )
    for value, flag, allowed in (
        (data.source_ton, "--source-ton", TONS),
        (data.dest_ton, "--dest-ton", TONS),
        (data.source_npi, "--source-npi", NPIS),
        (data.dest_npi, "--dest-npi", NPIS),
    ):
        if value is not _UNSET and value is not None and value not in allowed:
            kind = "TON" if "ton" in flag else "NPI"
            problems.append(Problem(flag, f"{value} is not an SMPP {kind} ({', '.join(map(str, allowed))})"))
    if data.gsm7_coding is not None and data.gsm7_coding not in GSM7_CODINGS:
        problems.append(Problem("--gsm7-coding", f"{data.gsm7_coding!r} is not one of {', '.join(GSM7_CODINGS)}"))
    if data.concat is not None and data.concat not in CONCATS:
        problems.append(Problem("--concat", f"{data.concat!r} is not one of {', '.join(CONCATS)}"))
    for value, flag, low, high in (
        (data.enquire_link, "--enquire-link", 0.1, 3600),
        (data.response_timeout, "--response-timeout", 0.1, 600),
        (data.bind_retry_after, "--bind-retry-after", 1, 86400),
    ):
        if value is not None and not low <= value <= high:
            problems.append(Problem(flag, f"must be {low:g} to {high:g} seconds"))
    if data.after_crash is not None and data.after_crash not in AFTER_CRASH:
        problems.append(Problem("--after-crash", f"{data.after_crash!r} is not one of {', '.join(AFTER_CRASH)}"))
    if data.message_id_format is not None:
        try:
            parse_id_formats(data.message_id_format)
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if data.default_country and data.default_country.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
        problems.append(Problem("--default-country", f"{data.default_country!r} is not a country code (ES, FR, ...)"))
    if data.status_map is not None:
        try:
            StatusMap.from_dict(data.status_map)
        except InvalidInput as exc:
            problems.extend(exc.problems or [Problem("--status-map", exc.message)])


def connection(session: Session, ref: str | int) -> VendorConnection:
    return by_ref(session, VendorConnection, ref, what="connection")


def _unique(session: Session, name: str, exclude_id: int | None = None) -> None:
    q = select(VendorConnection.id).where(VendorConnection.name == name)
    if exclude_id is not None:
        q = q.where(VendorConnection.id != exclude_id)
    if session.exec(q).first() is not None:
        raise Conflict(f"connection {name!r} already exists")


def require_keyring(keys: Keyring | None, name: str) -> Keyring:
    """The keyring that encrypts a typed password; InvalidInput when no key is configured."""
    if keys is None:
        raise InvalidInput(
            f"connection {name!r}: no secret key to encrypt the password with: {KEY_HINT}; "
            "or give --password-env VAR instead"
        )
    return keys


def add_smpp(session: Session, *, name: str, data: SmppInput, keys: Keyring | None = None) -> VendorConnection:
    """Add an SMPP connection; a typed password (``data.password``) is stored encrypted with ``keys``."""
    problems: list[Problem] = []
    if not name.strip():
        problems.append(Problem("NAME", "must not be empty"))
    for field, flag in (("host", "--host"), ("port", "--port"), ("system_id", "--system-id")):
        if getattr(data, field) is None:
            problems.append(Problem(flag, "is required"))
    if data.password_env is None and data.password is None:
        problems.append(Problem("password", "give --password-env VAR or type it at the prompt"))
    _validate(data, problems)
    require(problems, "connection")
    _unique(session, name)
    stored = None if data.password_env else require_keyring(keys, name).encrypt(data.password)
    row = VendorConnection(
        name=name,
        kind="smpp",
        host=data.host.strip(),
        port=data.port,
        system_id=data.system_id,
        password_env=data.password_env,
        password=stored,
        system_type=data.system_type or "",
        tls=bool(data.tls),
        bind_mode=data.bind_mode or "trx",
        rps=None if data.rps is _UNSET else data.rps,
        window_size=data.window or 10,
        message_id_format=(data.message_id_format or "auto").lower(),
        default_country=(data.default_country or "").strip().upper() or None,
        status_map=StatusMap.from_dict(data.status_map).as_dict() if data.status_map else {},
        multipart_final=data.multipart_final or "all",
        after_crash=data.after_crash or "resend",
        description=data.description,
        source_ton=None if data.source_ton is _UNSET else data.source_ton,
        source_npi=None if data.source_npi is _UNSET else data.source_npi,
        dest_ton=1 if data.dest_ton is None else data.dest_ton,
        dest_npi=1 if data.dest_npi is None else data.dest_npi,
        gsm7_coding=data.gsm7_coding or "gsm7",
        concat=data.concat or "udh8",
        enquire_link=30.0 if data.enquire_link is None else data.enquire_link,
        response_timeout=10.0 if data.response_timeout is None else data.response_timeout,
        bind_retry_after=300.0 if data.bind_retry_after is None else data.bind_retry_after,
    )
    session.add(row)
    session.flush()
    return row


def update_smpp(
    session: Session,
    row: VendorConnection,
    *,
    name: str | None = None,
    data: SmppInput,
    keys: Keyring | None = None,
) -> VendorConnection:
    """Change a connection; a new typed password is stored encrypted with ``keys``."""
    problems: list[Problem] = []
    _validate(data, problems)
    if name is not None and not name.strip():
        problems.append(Problem("--name", "must not be empty"))
    require(problems, "connection")
    if name is not None and name != row.name:
        _unique(session, name, exclude_id=row.id)
        row.name = name
    for field in (
        *(
            "host",
            "port",
            "system_id",
            "system_type",
            "tls",
            "bind_mode",
            "multipart_final",
            "after_crash",
            "description",
        ),
        *("dest_ton", "dest_npi", "gsm7_coding", "concat", "enquire_link", "response_timeout", "bind_retry_after"),
    ):
        value = getattr(data, field)
        if value is not None:
            setattr(row, field, value)
    for field in ("source_ton", "source_npi"):
        if getattr(data, field) is not _UNSET:
            setattr(row, field, getattr(data, field))
    if data.rps is not _UNSET:
        row.rps = data.rps
    if data.window is not None:
        row.window_size = data.window
    if data.message_id_format is not None:
        row.message_id_format = data.message_id_format.lower()
        row.message_id_learned = None  # declared again: an auto connection learns anew
    if data.default_country is not None:
        row.default_country = data.default_country.strip().upper() or None
    if data.status_map is not None:
        row.status_map = StatusMap.from_dict(data.status_map).as_dict() if data.status_map else {}
    # One source of the password at a time.
    if data.password_env is not None:
        row.password_env, row.password = data.password_env, None
    elif data.password is not None:
        row.password_env, row.password = None, require_keyring(keys, row.name).encrypt(data.password)
    session.add(row)
    session.flush()
    return row


def set_vendor_plan(session: Session, row: VendorConnection, plan_ref: str | int | None) -> VendorConnection:
    """Attach the vendor price plan ``plan_ref`` (a service of type ``vendor``) to the
    connection, or detach it (None): EDRs sent from now on get their vendor cost from
    it (`edr cost` recomputes stored ones)."""
    if plan_ref is None:
        row.vendor_plan_id = None
    else:
        plan = by_ref(session, Service, plan_ref, what="service")
        if plan.type != "vendor":
            raise InvalidInput(
                f"--vendor-plan: {plan.name!r} is a {plan.type} service; a vendor plan is a service of type vendor "
                "(service create NAME --type vendor --currency CUR)"
            )
        if plan.archived_at is not None:
            raise Conflict(f"vendor plan {plan.name!r} is archived")
        row.vendor_plan_id = plan.id
    session.add(row)
    session.flush()
    return row


def vendor_plan_name(session: Session, row: VendorConnection) -> str | None:
    plan = session.get(Service, row.vendor_plan_id) if row.vendor_plan_id is not None else None
    return plan.name if plan is not None else None


def set_enabled(session: Session, row: VendorConnection, enabled: bool) -> VendorConnection:
    row.enabled = enabled
    session.add(row)
    session.flush()
    return row


def list_connections(
    session: Session, *, kind: str | None = None, enabled: bool | None = None
) -> list[VendorConnection]:
    q = select(VendorConnection)
    if kind:
        q = q.where(VendorConnection.kind == kind)
    if enabled is not None:
        q = q.where(VendorConnection.enabled == enabled)
    return list(session.exec(q.order_by(col(VendorConnection.name))))


def connection_dict(row: VendorConnection) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "host": row.host,
        "port": row.port,
        "system_id": row.system_id,
        "password": MASK if row.password else None,
        "password_env": row.password_env,
        "system_type": row.system_type,
        "tls": row.tls,
        "bind": row.bind_mode,
        "rps": row.rps,
        "window": row.window_size,
        "message_id_format": row.message_id_format,
        "message_id_learned": row.message_id_learned,
        "default_country": row.default_country,
        "status_map": row.status_map or {},
        "multipart_final": row.multipart_final,
        "source_ton": "auto" if row.source_ton is None else row.source_ton,
        "source_npi": "auto" if row.source_npi is None else row.source_npi,
        "dest_ton": row.dest_ton,
        "dest_npi": row.dest_npi,
        "gsm7_coding": row.gsm7_coding,
        "concat": row.concat,
        "enquire_link": row.enquire_link,
        "response_timeout": row.response_timeout,
        "bind_retry_after": row.bind_retry_after,
        "after_crash": row.after_crash,
        "enabled": row.enabled,
        "vendor_plan_id": row.vendor_plan_id,
        "description": row.description,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def resolve_password(
    row: VendorConnection, environ: Mapping[str, str] | None = None, keys: Keyring | None = None
) -> str:
    """The bind password: the named environment variable, else the stored one decrypted with ``keys``."""
    env = os.environ if environ is None else environ
    if row.password_env:
        value = env.get(row.password_env)
        if value is None:
            raise InvalidInput(
                f"connection {row.name!r}: environment variable {row.password_env} is not set",
                problems=[Problem("password_env", f"{row.password_env} is not set")],
            )
        return value
    if row.password is None:
        raise InvalidInput(f"connection {row.name!r} has no password (set --password-env or enter one)")
    if keys is None:
        raise InvalidInput(
            f"connection {row.name!r}: its password is stored encrypted and no secret key is set: {KEY_HINT}"
        )
    return keys.decrypt(row.password, f"connection {row.name!r}: the stored password")


def smpp_settings(
    row: VendorConnection, environ: Mapping[str, str] | None = None, *, keys: Keyring | None = None, **overrides: Any
):
    """Gateway settings for an SMPP connection (imports the SMPP module lazily);
    ``keys`` decrypt a stored password."""
    from cpaas_cli.dispatch.smpp import SmppSettings

    if row.kind != "smpp":
        raise InvalidInput(f"connection {row.name!r} is a {row.kind} connection, not SMPP")
    kwargs: dict[str, Any] = {
        "name": row.name,
        "host": row.host,
        "port": row.port,
        "system_id": row.system_id or "",
        "password": resolve_password(row, environ, keys),
        "system_type": row.system_type or "",
        "tls": row.tls,
        "bind_mode": row.bind_mode,
        "rps": row.rps,
        "window": row.window_size,
        "status_map": StatusMap.from_dict(row.status_map),
        "id_formats": parse_id_formats(row.message_id_format),
        "enquire_every": row.enquire_link,
        "response_timeout": row.response_timeout,
        "auth_retry_after": row.bind_retry_after,
    }
    kwargs.update(overrides)
    return SmppSettings(**kwargs)


def test_connection(
    row: VendorConnection,
    *,
    timeout: float = 5.0,
    environ: Mapping[str, str] | None = None,
    keys: Keyring | None = None,
) -> dict:
    """Bind, enquire_link, unbind; raises Upstream with the reason on failure."""
    from cpaas_cli.dispatch.txrx import make_gateway

    settings = smpp_settings(row, environ, keys=keys, connect_timeout=timeout, response_timeout=timeout)
    times = make_gateway(settings).probe()
    return {"name": row.name, "host": row.host, "port": row.port, "bind": row.bind_mode, "ok": True, **times}
