"""acceptMO (SPEC CMP-18, CMP-24, CMP-25) in-process: the partner's MO messages
mode, the API's refusals (exact status, problem type and the seed's text), the
flag on the queue row."""

from __future__ import annotations

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from tests.api_helpers import api, assert_problem, auth  # noqa: F401
from tests.identity_helpers import identity_env, make_user  # noqa: F401
from tests.test_serve import setup

ES = "34620000001"
ES2 = "34620000002"
Q = OutboundMessage.__table__
MO_OFF = "Partner's MO messages mode is off!"
MO_FLASH = "MO messages are not supported in FlashMessages!"


def ready(cli, *, mo: bool, url: str | None = "http://127.0.0.1:9/cb") -> tuple[str, int]:
    """Client A sending as ACME over `sim` (no SMSC needed: nothing is sent here); an API key
    (with a callback URL unless ``url`` is None); the MO messages mode on or off. (key, key id)"""
    setup(cli, 9)
    make_user(cli, "alice", "Client A", department="Admin")
    key = cli.json("apikey", "create", "--user", "alice", "--name", "app")
    if url:
        cli.json("apikey", "update", str(key["id"]), "--callback-url", url)
    if mo:
        assert cli.json("tenant", "update", "Client A", "--mo-messages")["mo_messages"] is True
    return key["key"], key["id"]


def queue_rows(db_url) -> list[dict]:
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(Q).order_by(Q.c.id))]


# ---------------------------------------------------------------- the partner's option


def test_mo_messages_mode_is_a_company_option_off_by_default(cli):
    setup(cli, 9)
    assert cli.json("tenant", "show", "Client A")["mo_messages"] is False
    assert cli.json("tenant", "update", "Client A", "--mo-messages")["mo_messages"] is True
    assert cli.json("tenant", "show", "Client A")["mo_messages"] is True
    assert cli.json("tenant", "update", "Client A", "--no-mo-messages")["mo_messages"] is False
    assert cli.json("tenant", "create", "Client M", "--mo-messages")["mo_messages"] is True


# ---------------------------------------------------------------- the API's rules


def test_send_sms_accept_mo_refusals_and_acceptance(api, cli, db_url):  # noqa: F811
    key, _ = ready(cli, mo=False)
    h = auth(key)
    body = {"channels": "SMS", "from": "ACME", "to": ES, "message": "Reply YES", "acceptMO": True}
    got = assert_problem(api.post("/api/send_sms", headers=h, json=body), 400, "mo-off")
    assert got["detail"] == MO_OFF
    got = assert_problem(api.post("/api/send_sms", headers=h, json={**body, "isFlashed": True}), 400, "mo-flash")
    assert got["detail"] == MO_FLASH
    got = assert_problem(api.get("/api/send_sms", headers=h, params={**body, "acceptMO": "true"}), 400, "mo-off")
    assert got["detail"] == MO_OFF
    assert queue_rows(db_url) == []  # nothing written

    cli.json("tenant", "update", "Client A", "--mo-messages")
    got = assert_problem(api.post("/api/send_sms", headers=h, json={**body, "isFlashed": True}), 400, "mo-flash")
    assert got["detail"] == MO_FLASH  # flash never goes with MO, mode on or off
    assert queue_rows(db_url) == []
    r = api.post("/api/send_sms", headers=h, json=body)
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    plain = api.post("/api/send_sms", headers=h, json={**body, "to": ES2, "acceptMO": False})
    assert plain.status_code == 200, plain.text
    rows = queue_rows(db_url)
    assert [(str(r["id"]), r["phone"], r["accept_mo"]) for r in rows] == [
        (result.split(": ")[1], ES, True),
        (plain.json()["results"][0].split(": ")[1], ES2, False),
    ]
    with get_engine(db_url).connect() as conn:
        sources = conn.execute(sa.select(Campaign.__table__.c.sources).order_by(Campaign.__table__.c.id)).scalars()
        assert [s["api"]["accept_mo"] for s in sources] == [True, False]


def test_v1_messages_accept_mo_refusals_and_acceptance(api, cli, db_url):  # noqa: F811
    key, _ = ready(cli, mo=False)
    h = auth(key)
    ok = {"from": "ACME", "to": ES, "text": "Reply YES", "accept_mo": True}
    got = assert_problem(api.post("/v1/messages", headers=h, json=ok), 400, "mo-off")
    assert got["detail"] == MO_OFF and got["title"]
    got = assert_problem(api.post("/v1/messages", headers=h, json={**ok, "flash": True}), 400, "mo-flash")
    assert got["detail"] == MO_FLASH
    # a batch is one transaction: one refused message refuses the request, nothing is queued
    batch = {"messages": [{**ok, "accept_mo": False}, ok]}
    assert_problem(api.post("/v1/messages", headers=h, json=batch), 400, "mo-off")
    assert_problem(api.post("/v1/messages", headers=h, json={**ok, "accept_mo": "maybe"}), 422, "invalid-input")
    assert queue_rows(db_url) == []

    cli.json("tenant", "update", "Client A", "--mo-messages")
    assert_problem(api.post("/v1/messages", headers=h, json={**ok, "flash": True}), 400, "mo-flash")
    r = api.post("/v1/messages", headers=h, json=batch)
    assert r.status_code == 202, r.text
    ids = [m["id"] for m in r.json()["messages"]]
    assert [(str(r["id"]), r["accept_mo"]) for r in queue_rows(db_url)] == [(ids[0], False), (ids[1], True)]
