"""Limits of the HTTP API: body size (413), per-key rate (429 + Retry-After),
one access-log line per request with the key prefix and never the secret."""

from __future__ import annotations

import json
import logging
import warnings

import pytest

from cpaas_cli.api.limits import LimitsMiddleware, settings_of
from cpaas_cli.errors import InvalidInput
from cpaas_cli.ratelimit import Limit
from tests.api_helpers import assert_problem, auth, key_for, tenants
from tests.identity_helpers import identity_env  # noqa: F401

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def limited(db_url, identity_env, tmp_path):  # noqa: F811
    from cpaas_cli.api.app import create_app
    from cpaas_cli.config import load_settings

    cfg = tmp_path / "api.toml"
    cfg.write_text("[api]\nkey_rate = 0.001\nkey_burst = 3\nmax_body_bytes = 1000\n")
    with TestClient(create_app(load_settings(config=str(cfg), db=db_url))) as c:
        yield c


def test_rate_limit_per_key_is_429_with_retry_after(limited, cli):
    tenants(cli)
    a = key_for(cli, "alice", "Client A")
    b = key_for(cli, "bob", "Client B")
    assert [limited.get("/v1/balance", headers=auth(a)).status_code for _ in range(3)] == [200] * 3
    resp = limited.get("/v1/balance", headers=auth(a))
    body = assert_problem(resp, 429, "rate-limited")
    assert int(resp.headers["retry-after"]) >= 900 and "rate" in body["detail"]
    assert limited.get("/v1/balance", headers=auth(b)).status_code == 200  # another key, its own bucket
    assert limited.get("/healthz").status_code == 200  # no key: not counted here


def test_body_over_the_limit_is_413_before_it_is_read(limited, cli):
    tenants(cli)
    a = key_for(cli, "alice", "Client A")
    resp = limited.post("/v1/balance", headers=auth(a), content=b"x" * 1001)
    assert_problem(resp, 413, "payload-too-large")


def test_each_request_is_one_log_line_without_the_secret(limited, cli, caplog):
    tenants(cli)
    a = key_for(cli, "alice", "Client A")
    with caplog.at_level(logging.INFO, logger="cpaas.api.access"):
        limited.get("/v1/balance", headers=auth(a))
        limited.get("/v1/nothing", headers=auth(a))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cpaas.api.access"]
    assert len(lines) == 2
    assert lines[0]["key"] == a[4:12] and lines[0]["route"] == "/v1/balance" and lines[0]["status"] == 200
    assert lines[1]["status"] == 404 and lines[0]["ms"] >= 0
    secret = a.split("_", 2)[2]
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_limit_settings_are_checked():
    assert settings_of({}) == {"max_body_bytes": 10 * 1024 * 1024, "key_rate": 2000.0, "key_burst": 4000.0}
    for bad in ({"key_rate": 0}, {"max_body_bytes": "big"}, {"key_burst": True}):
        with pytest.raises(InvalidInput):
            settings_of(bad)


async def _drain(app, body_parts: list[bytes]):
    sent = []
    parts = [
        {"type": "http.request", "body": p, "more_body": i < len(body_parts) - 1} for i, p in enumerate(body_parts)
    ]

    async def receive():
        return parts.pop(0)

    async def send(m):
        sent.append(m)

    async def reader(scope, receive, send):
        while True:
            m = await receive()
            if not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = LimitsMiddleware(reader, max_body=150, key_limit=Limit(1, 1))
    await mw({"type": "http", "method": "POST", "path": "/x", "headers": []}, receive, send)
    return sent


def test_a_body_without_length_is_counted_as_it_arrives():
    import asyncio

    sent = asyncio.run(_drain(None, [b"a" * 100, b"b" * 100]))
    assert sent[0]["status"] == 413 and b"payload-too-large" in sent[1]["body"]
    sent = asyncio.run(_drain(None, [b"a" * 100, b"b" * 40]))
    assert sent[0]["status"] == 200
