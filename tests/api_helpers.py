"""Shared set-up for the HTTP API tests: the app in-process, API keys, a sending company."""

from __future__ import annotations

import warnings

import pytest

from tests.helpers import client, owner_le
from tests.identity_helpers import make_user

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def api(db_url, identity_env):
    from cpaas_cli.api.app import create_app
    from cpaas_cli.config import load_settings

    with TestClient(create_app(load_settings(db=db_url)), raise_server_exceptions=True) as c:
        yield c


def key_for(cli, login: str, company: str, *, role: str | None = "Admin", scopes: tuple[str, ...] = ()) -> str:
    make_user(cli, login, company, role=role, department="Admin")
    args = ["apikey", "create", "--user", login, "--name", f"{login}-key"]
    for s in scopes:
        args += ["--scope", s]
    return cli.json(*args)["key"]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tenants(cli) -> None:
    """The owner, Client A and Client B (each with agreement AG-A / AG-B in EUR)."""
    owner_le(cli)
    client(cli)
    client(cli, "Client B")
    for code, comp in (("AG-A", "Client A"), ("AG-B", "Client B")):
        cli.json("agreement", "create", code, "--company", comp, "--currency", "EUR", "--from", "2026-01-01")


def assert_problem(resp, status: int, name: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["type"] == f"urn:cpaas:problem:{name}" and body["status"] == status, body
    return body
