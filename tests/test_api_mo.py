"""acceptMO (SPEC CMP-18, CMP-24, CMP-25) in-process: the partner's MO messages
mode, the API's refusals (exact status, problem type and the seed's text), the
flag on the queue row, and which API message an MO answers (its MO callback
row is written in the transaction that stores the MO)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch import inbound
from cpaas_cli.models.callbacks import CallbackOutbox
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from cpaas_cli.models.dispatch import VendorConnection
from tests.api_helpers import api, assert_problem, auth  # noqa: F401
from tests.identity_helpers import identity_env, make_user  # noqa: F401
from tests.test_serve import setup

ES = "34620000001"
ES2 = "34620000002"
Q = OutboundMessage.__table__
OB = CallbackOutbox.__table__
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


def mo_rows(db_url) -> list[dict]:
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(OB).where(OB.c.message.isnot(None)))]


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


# ---------------------------------------------------------------- which message an MO answers


def _sent(db_url, queue_id: int, *, ago: timedelta = timedelta(minutes=5), state: str = "submitted") -> None:
    """What a worker does to a queue row it sent (claimed at, the SMSC's answer)."""
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.update(Q).where(Q.c.id == queue_id).values(state=state, claimed_at=clock.now() - ago))


def _send(client, key: str, to: str = ES, accept_mo: bool = True) -> int:
    r = client.post(
        "/v1/messages", headers=auth(key), json={"from": "ACME", "to": to, "text": "Hi", "accept_mo": accept_mo}
    )
    assert r.status_code == 202, r.text
    return int(r.json()["messages"][0]["id"])


def _mo(session, db_url, source: str = ES, dest: str = "ACME", *, connection: str = "sim", text: str = "YES"):
    conn_id = session.execute(
        sa.select(VendorConnection.__table__.c.id).where(VendorConnection.__table__.c.name == connection)
    ).scalar_one()
    got = inbound.handle_mo(
        session, source=source, dest=dest, text=text, connection_id=conn_id, source_ton=1,
        stop_words=["STOP"], start_words=["START"],
    )  # fmt: skip
    session.commit()
    return got


def test_an_mo_answering_an_accept_mo_message_gets_its_callback(api, cli, db_url, session):  # noqa: F811
    key, key_id = ready(cli, mo=True)
    older, newer = _send(api, key), _send(api, key)
    _sent(db_url, older, ago=timedelta(hours=2))
    _sent(db_url, newer, ago=timedelta(hours=1), state="done")
    handled = _mo(session, db_url, text="Yes, café ✓")
    assert handled.action is None and handled.answered is not None and handled.answered.queue_id == newer
    (row,) = mo_rows(db_url)
    assert row["api_key_id"] == key_id and row["transaction_id"] == str(newer)  # the most recent one
    assert (row["dnis"], row["status"], row["channel"], row["message"]) == (ES, "DELIVERED", "SMS", "Yes, café ✓")
    assert row["state"] == "pending" and row["event_at"] is not None
    (stored,) = cli.json("inbound", "list", "--kind", "mo")
    assert stored["message_id"] == str(newer) and stored["text"] == "Yes, café ✓"
    # a STOP answering it opts out and is called back too
    handled = _mo(session, db_url, text="STOP")
    assert handled.action == "opt_out" and handled.answered.queue_id == newer
    assert [r["message"] for r in mo_rows(db_url)] == ["Yes, café ✓", "STOP"]


def test_an_mo_that_answers_no_accept_mo_message_is_stored_as_before(api, cli, db_url, session):  # noqa: F811
    key, _ = ready(cli, mo=True)
    cli.json(
        "connection",
        "add-smpp",
        "other",
        "--host",
        "127.0.0.1",
        "--port",
        "10",
        "--system-id",
        "o",
        "--password-env",
        "X",
    )
    cli.json(
        "sender", "add", "OTHER", "--company", "Client A", "--agreement", "AG-1", "--active", "--connection", "sim"
    )
    _sent(db_url, _send(api, key, accept_mo=False))  # to ES, without acceptMO
    _sent(db_url, _send(api, key, to=ES2), ago=timedelta(days=7, minutes=1))  # to ES2, out of the window
    failed = _send(api, key, to="34620000003")
    _sent(db_url, failed, state="failed")  # refused by the SMSC: nothing to answer
    queued = _send(api, key, to="34620000004")  # not sent yet
    assert queued
    misses = [
        dict(source=ES),  # its message did not ask for MO
        dict(source=ES2),  # older than 7 days
        dict(source="34620000003"),
        dict(source="34620000004"),
        dict(source="34620000009"),  # nobody messaged this handset
    ]
    answered = _send(api, key, to="34620000005")
    _sent(db_url, answered)
    misses += [
        dict(source="34620000005", dest="OTHER"),  # another sender of the company
        dict(source="34620000005", connection="other"),  # came in over another connection
    ]
    for m in misses:
        assert _mo(session, db_url, **m).answered is None, m
    assert mo_rows(db_url) == []
    assert len(cli.json("inbound", "list", "--kind", "mo")) == len(misses)
    cli.json("tenant", "update", "Client A", "--no-mo-messages")  # the partner's mode off stops them at once
    assert _mo(session, db_url, source="34620000005").answered is None
    cli.json("tenant", "update", "Client A", "--mo-messages")
    assert _mo(session, db_url, source="34620000005").answered.queue_id == answered
    assert len(mo_rows(db_url)) == 1


def test_without_a_callback_url_the_mo_is_matched_and_nothing_is_posted(api, cli, db_url, session):  # noqa: F811
    key, _ = ready(cli, mo=True, url=None)
    qid = _send(api, key)
    _sent(db_url, qid)
    assert _mo(session, db_url).answered.queue_id == qid
    assert mo_rows(db_url) == []
    assert cli.json("inbound", "list", "--kind", "mo")[0]["message_id"] == str(qid)
