"""`cpaas secrets rotate` moves the callback signing secrets too: a 2FA integration's
(and an API key's) secret opens with the new key alone afterwards, and the
integration's result callbacks are still signed with the same secret, verifiably."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from cryptography.fernet import Fernet

from cpaas_cli.callbacks import signing
from cpaas_cli.callbacks.sender import Sender, SenderOptions
from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.callbacks import ApiKeyCallback
from cpaas_cli.models.otp import OtpIntegration
from cpaas_cli.secretbox import Keyring
from tests.api_helpers import api  # noqa: F401
from tests.callback_receiver import Receiver
from tests.identity_helpers import identity_env, make_user  # noqa: F401
from tests.test_otp_api import ES, basic, code_of, short_sync  # noqa: F401
from tests.test_secrets import key_file, new_key
from tests.test_serve import setup


def tokens(db_url) -> tuple[str, str]:
    with get_engine(db_url).connect() as conn:
        otp = conn.execute(sa.select(OtpIntegration.__table__.c.callback_secret)).scalar_one()
        key = conn.execute(sa.select(ApiKeyCallback.__table__.c.secret)).scalar_one()
    return otp, key


def test_rotate_re_encrypts_callback_secrets_and_signing_still_verifies(api, cli, db_url, tmp_path, monkeypatch):  # noqa: F811
    old, new = new_key(), new_key()
    monkeypatch.setenv("CPAAS_SECRET_KEY", old)
    setup(cli, 9)
    make_user(cli, "alice", "Client A", department="Admin")
    apikey = cli.json("apikey", "create", "--user", "alice", "--name", "ci")
    key_secret = cli.json("apikey", "update", str(apikey["id"]), "--callback-url", "https://hooks.example/cb")[
        "callback_secret"
    ]
    with Receiver() as rx:
        made = cli.json(
            "otp", "integration", "create", "-c", "Client A", "--name", "Login", "-s", "ACME", "--text",
            "Code {{code}}", "--callback-url", rx.url,
        )  # fmt: skip
        before = tokens(db_url)

        out = cli.json("secrets", "rotate", "--new-key-file", str(key_file(tmp_path / "new.key", new)))
        assert out["rotated"] == 2 and out["otp_integrations"] == ["Login"] and out["api_keys"] == ["ci"]
        after = tokens(db_url)
        assert all(a != b for a, b in zip(after, before, strict=True))
        assert Fernet(new.encode()).decrypt(after[0].encode()).decode() == made["callback_secret"]
        assert Fernet(new.encode()).decrypt(after[1].encode()).decode() == key_secret
        stale = cli("secrets", "check", env={"CPAAS_SECRET_KEY": old}, expect=4)
        assert "the callback signing secret does not decrypt" in stale.stderr
        checked = cli.json("secrets", "check", env={"CPAAS_SECRET_KEY": new})
        assert checked["otp_integrations"] == ["Login"] and checked["api_keys"] == ["ci"] and checked["ok"] is True

        # the new key first, the old one below it: keyed hashes (the integration's API key) still check
        monkeypatch.setenv("CPAAS_SECRET_KEY", f"{new},{old}")
        rid = api.post("/api/v1/2fa/verify/sms", headers=basic(made["api_key"]), data={"number": ES}).json()[
            "requestId"
        ]
        r = api.post("/api/v1/2fa/verify", headers=basic(made["api_key"]),
                     data={"requestId": rid, "code": code_of(db_url, rid)})  # fmt: skip
        assert r.status_code == 200, r.text
        # the sender opens the secret with the new key alone and signs as before
        sender = Sender(get_engine(db_url), Keyring([new], "the new key"), options=SenderOptions())
        try:
            assert sender.step() == 1
        finally:
            sender.close()
        ((headers, body),) = rx.got
    assert signing.verify(made["callback_secret"], headers["x-cpaas-signature"], body, now=time.time())
    assert json.loads(body)["status"] == "VERIFIED" and json.loads(body)["requestId"] == rid
