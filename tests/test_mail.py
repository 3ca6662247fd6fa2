"""The SMTP sender against a real aiosmtpd server on loopback."""

from __future__ import annotations

import pytest

from cpaas_cli.errors import InvalidInput, Upstream
from cpaas_cli.mail import SmtpSettings, send
from tests.smtp import _free_port, smtp_server  # noqa: F401


def test_send_with_attachment(smtp_server, tmp_path):  # noqa: F811
    f = tmp_path / "report.csv"
    f.write_text("a,b\n1,2\n")
    settings = SmtpSettings.from_config({"from": "billing@hub.test"})
    send(settings, to=["ops@client.test", "cfo@client.test"], subject="Report", body="see attached", attachments=[f])
    (msg,) = smtp_server.messages
    assert msg["Subject"] == "Report" and msg["From"] == "billing@hub.test"
    assert msg["X-Envelope-To"] == "ops@client.test, cfo@client.test"
    parts = [p for p in msg.walk() if p.get_filename()]
    assert parts[0].get_filename() == "report.csv" and parts[0].get_payload(decode=True) == b"a,b\n1,2\n"


def test_size_limit_is_checked_before_connecting(tmp_path):
    f = tmp_path / "big.csv"
    f.write_bytes(b"x" * 2048)
    settings = SmtpSettings(host="127.0.0.1", port=_free_port(), max_attachment_bytes=1024)
    with pytest.raises(InvalidInput, match="over the"):
        send(settings, to=["a@b.test"], subject="s", body="b", attachments=[f])


def test_unreachable_server_is_upstream():
    settings = SmtpSettings(host="127.0.0.1", port=_free_port(), timeout=2)
    with pytest.raises(Upstream):
        send(settings, to=["a@b.test"], subject="s", body="b")


def test_missing_host_is_invalid(monkeypatch):
    monkeypatch.delenv("CPAAS_SMTP_HOST", raising=False)
    with pytest.raises(InvalidInput, match="no SMTP server"):
        SmtpSettings.from_config({})
