"""Sending e-mail through the configured SMTP server (stdlib smtplib).

Configuration (`[smtp]` in cpaas.toml, or environment):

    [smtp]
    host = "127.0.0.1"       # CPAAS_SMTP_HOST
    port = 25                # CPAAS_SMTP_PORT
    from = "billing@hub.example"   # CPAAS_SMTP_FROM
    starttls = false
    username_env = "SMTP_USER"     # names of environment variables, never the secrets
    password_env = "SMTP_PASSWORD"
    max_attachment_mb = 25

The password is read from the named environment variable at send time and is
never printed or logged.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path
from typing import Any

from cpaas_cli.errors import InvalidInput, Upstream


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "cpaas@localhost"
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    max_attachment_bytes: int = 25 * 1024 * 1024
    timeout: float = 30.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> SmtpSettings:
        host = os.environ.get("CPAAS_SMTP_HOST") or section.get("host")
        if not host:
            raise InvalidInput("no SMTP server configured: set [smtp] host in cpaas.toml or CPAAS_SMTP_HOST")
        try:
            port = int(os.environ.get("CPAAS_SMTP_PORT") or section.get("port") or 25)
            max_mb = float(section.get("max_attachment_mb", 25))
        except ValueError as exc:
            raise InvalidInput(f"[smtp]: {exc}") from exc
        return cls(
            host=str(host),
            port=port,
            sender=str(os.environ.get("CPAAS_SMTP_FROM") or section.get("from") or "cpaas@localhost"),
            starttls=bool(section.get("starttls", False)),
            username_env=section.get("username_env"),
            password_env=section.get("password_env"),
            max_attachment_bytes=int(max_mb * 1024 * 1024),
        )


def send(
    settings: SmtpSettings,
    *,
    to: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[Path] = (),
    sender_name: str | None = None,
) -> None:
    """Send one message; attachments over the size limit are refused before connecting.
    ``sender_name``: the display name of the From address (the address is ``[smtp] from``)."""
    recipients = [a.strip() for a in to if a and a.strip()]
    if not recipients:
        raise InvalidInput("no e-mail recipients")
    total = sum(Path(p).stat().st_size for p in attachments)
    if total > settings.max_attachment_bytes:
        raise InvalidInput(
            f"attachments are {total / 1048576:.1f} MB, over the {settings.max_attachment_bytes / 1048576:g} MB "
            "e-mail limit ([smtp] max_attachment_mb)"
        )
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, settings.sender)) if sender_name else settings.sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content(body)
    for path in attachments:
        p = Path(path)
        maintype, subtype = _mime(p)
        msg.add_attachment(p.read_bytes(), maintype=maintype, subtype=subtype, filename=p.name)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls()
            user = os.environ.get(settings.username_env) if settings.username_env else None
            password = os.environ.get(settings.password_env) if settings.password_env else None
            if user and password:
                smtp.login(user, password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise Upstream(f"SMTP {settings.host}:{settings.port}: {type(exc).__name__}: {exc}") from exc


def _mime(path: Path) -> tuple[str, str]:
    return {
        ".pdf": ("application", "pdf"),
        ".csv": ("text", "csv"),
        ".tsv": ("text", "tab-separated-values"),
        ".jsonl": ("application", "x-ndjson"),
        ".gz": ("application", "gzip"),
        ".xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    }.get(path.suffix.lower(), ("application", "octet-stream"))
