"""Shared set-up for the identity tests: a secret key, the cheap password profile."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

PASSWORD = "Start-pass1"


@pytest.fixture(autouse=True)
def identity_env(monkeypatch) -> str:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CPAAS_SECRET_KEY", key)
    monkeypatch.setenv("CPAAS_PASSWORD_PROFILE", "fast")
    return key


def make_user(cli, login: str, company: str = "1", *, role: str | None = "Admin", password: str = PASSWORD, **opts):
    args = ["user", "create", login, "--company", company, "--first-name", login.title(), "--last-name", "Test"]
    if role:
        args += ["--role", role]
    for key, value in opts.items():
        args += [f"--{key.replace('_', '-')}", value]
    return cli.json(*args, "--password-stdin", input=password + "\n")


def ready_user(
    cli, login: str, company: str = "1", *, role: str | None = "Admin", password: str = "Ready-pass2", **opts
):
    """A user whose first password change is done: it can sign in with ``password``."""
    make_user(cli, login, company, role=role, **opts)
    cli.json("user", "set-password", login, "--own", "--password-stdin", input=f"{PASSWORD}\n{password}\n")
    return password
