"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests: `smtp_server` fixture.

Import the fixture in a test module with `from tests.smtp import smtp_server  # noqa: F401`.
"""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass, field
from email.message import Message

import pytest
from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox

    @property
    def messages(self) -> list[Message]:
        return self.inbox.messages

    def env(self) -> dict[str, str]:
        return {"CPAAS_SMTP_HOST": self.host, "CPAAS_SMTP_PORT": str(self.port)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(monkeypatch) -> SmtpServer:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    server = SmtpServer("127.0.0.1", port, inbox)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    yield server
    controller.stop()
