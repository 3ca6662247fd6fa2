"""The personalised bulk API (SPEC CMP-26): CSV with HTTP Basic user/password,
30 requests a minute per user (429 + Retry-After), 3,000 recipients a request."""

from __future__ import annotations

import base64

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.campaigns import OutboundMessage
from tests.api_helpers import api, assert_problem  # noqa: F401
from tests.identity_helpers import identity_env, ready_user  # noqa: F401
from tests.test_serve import setup

Q = OutboundMessage.__table__


def basic(login: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "text/csv"}


def _ready(cli) -> dict[str, str]:
    setup(cli, 9)  # Client A, agreement AG-1, sender ACME (no SMSC needed to queue)
    pw = ready_user(cli, "bulkuser", "Client A", department="Admin")
    return basic("bulkuser", pw)


def test_csv_rows_become_a_started_campaign_with_each_rows_text(api, cli, db_url):  # noqa: F811
    h = _ready(cli)
    body = "to,message\n34600000001,Hello Ann\n34600000002,Hello Bob\n34600000001,dup\n"
    resp = api.post("/api/bulk_sms", params={"from": "ACME", "label": "spring"}, headers=h, content=body)
    assert resp.status_code == 202, resp.text
    got = resp.json()
    assert got["recipients"] == 2 and got["excluded"]["duplicate"] == 1 and got["started"] is True
    assert got["state"] == "in_progress"
    with get_engine(db_url).connect() as conn:
        rows = conn.execute(sa.select(Q.c.phone, Q.c.text).order_by(Q.c.id)).all()
    assert [tuple(r) for r in rows] == [("34600000001", "Hello Ann"), ("34600000002", "Hello Bob")]
    camp = cli.json("campaign", "show", str(got["campaign_id"]))
    assert camp["name"] == "API bulk spring"


def test_one_template_over_the_csv_columns(api, cli, db_url):  # noqa: F811
    h = _ready(cli)
    body = "phone,name\n34600000001,Ann\n34600000002,Bob\n"
    resp = api.post("/api/bulk_sms", params={"from": "ACME", "message": "Hi {{ name }}"}, headers=h, content=body)
    assert resp.status_code == 202, resp.text
    assert resp.json()["recipients"] == 2


def test_basic_auth_is_required_and_checked(api, cli):  # noqa: F811
    h = _ready(cli)
    body = "to,message\n34600000001,x\n"
    resp = api.post("/api/bulk_sms", params={"from": "ACME"}, content=body)
    assert_problem(resp, 401, "unauthenticated")
    assert resp.headers["www-authenticate"].startswith("Basic")
    bad = basic("bulkuser", "Wrong-pass9")
    assert_problem(
        api.post("/api/bulk_sms", params={"from": "ACME"}, headers=bad, content=body), 401, "unauthenticated"
    )
    garbled = {"Authorization": "Basic !!!", "Content-Type": "text/csv"}
    assert_problem(
        api.post("/api/bulk_sms", params={"from": "ACME"}, headers=garbled, content=body), 401, "unauthenticated"
    )
    resp = api.post("/api/bulk_sms", params={"from": "ACME"}, headers=h, content=body)
    assert resp.status_code == 202, resp.text


def test_more_than_3000_recipients_is_refused_whole(api, cli, db_url):  # noqa: F811
    h = _ready(cli)
    body = "to,message\n" + "".join(f"3460{n:07d},hi\n" for n in range(3001))
    body_ok = "to,message\n" + "".join(f"3460{n:07d},hi\n" for n in range(3000))
    got = assert_problem(
        api.post("/api/bulk_sms", params={"from": "ACME"}, headers=h, content=body), 422, "too-many-recipients"
    )
    assert got["limit"] == 3000
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Q)).scalar_one() == 0
    resp = api.post("/api/bulk_sms", params={"from": "ACME"}, headers=h, content=body_ok)
    assert resp.status_code == 202 and resp.json()["recipients"] == 3000


def test_thirty_requests_a_minute_then_429_with_retry_after(api, cli):  # noqa: F811
    h = _ready(cli)
    for _ in range(30):
        resp = api.post("/api/bulk_sms", params={"from": "ACME"}, headers=h, content="to,message\n")
        assert_problem(resp, 422, "invalid-input")  # counted although refused
    resp = api.post("/api/bulk_sms", params={"from": "ACME"}, headers=h, content="to,message\n34600000001,x\n")
    body = assert_problem(resp, 429, "rate-limited")
    assert 1 <= int(resp.headers["retry-after"]) <= 2 and body["retry_after"] == int(resp.headers["retry-after"])


def test_bad_input_problems(api, cli):  # noqa: F811
    h = _ready(cli)
    no_text = api.post("/api/bulk_sms", params={"from": "ACME"}, headers=h, content="to\n34600000001\n")
    assert "message" in assert_problem(no_text, 422, "invalid-input")["detail"]
    assert_problem(api.post("/api/bulk_sms", headers=h, content="to,message\n1,x\n"), 422, "invalid-input")
    not_utf8 = api.post("/api/bulk_sms", params={"from": "ACME"}, headers=h, content=b"to,message\n1,\xff\n")
    assert_problem(not_utf8, 422, "invalid-input")
    unknown_sender = api.post(
        "/api/bulk_sms", params={"from": "NOPE"}, headers=h, content="to,message\n34600000001,x\n"
    )
    assert "NOPE" in assert_problem(unknown_sender, 404, "not-found")["detail"]
