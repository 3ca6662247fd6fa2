"""Sending through the HTTP API in-process: /v1/messages and the seed's /api/send_sms,
queued on the campaigns' queue and charged by `serve` like campaign messages."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from cpaas_cli.db.engine import get_engine
from cpaas_cli.models.campaigns import Campaign, OutboundMessage
from tests.api_helpers import api, assert_problem, auth, key_for  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_serve import edrs, serve_once, setup, smsc  # noqa: F401

ES = "34620000001"  # Spain, others leaf: 0.08 a message (tests/test_catalog.EXAMPLE1)


def queue_rows(db_url) -> list[dict]:
    t = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(t.c.id))]


def ready(cli, port: int, **kw) -> str:
    setup(cli, port, **kw)
    return key_for(cli, "alice", "Client A")


def test_async_send_is_queued_then_sent_and_charged_by_serve(api, cli, db_url, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    r = api.post("/v1/messages", headers=auth(key), json={"from": "ACME", "to": ES, "text": "Hi", "label": "otp"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["errors"] == [] and len(body["messages"]) == 1
    m = body["messages"][0]
    assert m["to"] == ES and m["status"] == "queued" and m["label"] == "otp"
    (row,) = queue_rows(db_url)
    assert str(row["id"]) == m["id"] and row["state"] == "queued" and row["label"] == "otp" and row["api_key_id"]
    shown = api.get(f"/v1/messages/{m['id']}", headers=auth(key)).json()
    assert shown["status"] == "queued" and shown["text"] == "Hi" and shown["cost"] is None

    out = serve_once(cli)
    assert out["submitted"] == 1 and out["completed_campaigns"] == 1, out
    (edr,) = edrs(db_url)
    assert edr["label"] == "otp" and edr["api_key_id"] == row["api_key_id"] and edr["cost"] == 80_000
    shown = api.get(f"/v1/messages/{m['id']}", headers=auth(key)).json()
    assert shown["status"] in ("delivered", "undelivered") and shown["cost"] == "0.08" and shown["currency"] == "EUR"
    assert [h["status"] for h in shown["history"]][:2] == ["prepared", "submitted"] and shown["vendor_message_id"]
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.08"


def test_credit_is_checked_as_for_campaigns_402_and_nothing_written(api, cli, db_url, smsc):  # noqa: F811
    key = ready(cli, smsc.port, credit="0.10")
    body = {"from": "ACME", "to": [ES, "34620000002"], "text": "Hi"}  # 0.16 > 0.10
    got = assert_problem(api.post("/v1/messages", headers=auth(key), json=body), 402, "insufficient-credit")
    assert got["required"] == "0.16" and got["available"] == "0.10" and got["currency"] == "EUR"
    assert queue_rows(db_url) == []
    with get_engine(db_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Campaign.__table__)).scalar() == 0
    seed = {"channels": "SMS", "from": "ACME", "to": f"{ES},34620000002", "message": "Hi"}
    assert_problem(api.post("/api/send_sms", headers=auth(key), json=seed), 402, "insufficient-credit")
    one = api.post("/v1/messages", headers=auth(key), json={**body, "to": ES})
    assert one.status_code == 202  # 0.08 fits


def test_idempotency_key(api, cli, db_url, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    h = {**auth(key), "Idempotency-Key": "order-42"}
    body = {"from": "ACME", "to": ES, "text": "Your code 1234"}
    first = api.post("/v1/messages", headers=h, json=body)
    again = api.post("/v1/messages", headers=h, json=dict(reversed(body.items())))  # same body, other key order
    assert first.status_code == again.status_code == 202 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and len(queue_rows(db_url)) == 1
    other = api.post("/v1/messages", headers=h, json={**body, "text": "Your code 9999"})
    got = assert_problem(other, 409, "idempotency-conflict")
    assert "order-42" in got["detail"] and len(queue_rows(db_url)) == 1
    fresh = api.post("/v1/messages", headers={**auth(key), "Idempotency-Key": "order-43"}, json=body)
    assert fresh.status_code == 202 and len(queue_rows(db_url)) == 2


def test_batch_and_per_recipient_refusals(api, cli, db_url, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    cli.json("contacts", "stoplist", "add", "+34620000003", "--company", "Client A", "--sender", "ALL")
    body = {
        "messages": [
            {"from": "ACME", "to": [ES, ES, "+34620000002", "12", "34620000003"], "text": "A", "label": "a"},
            {"from": "ACME", "to": "34620000004", "text": "B"},
        ]
    }
    got = api.post("/v1/messages", headers=auth(key), json=body).json()
    assert [(m["to"], m["label"]) for m in got["messages"]] == [(ES, "a"), ("34620000004", _today())]
    assert [(e["index"], e["to"], e["error"].split(":")[0]) for e in got["errors"]] == [
        (0, "+34620000002", "invalid number"),
        (0, "12", "invalid number"),
        (0, "34620000003", "blocked by the stop list"),
    ]
    assert len(queue_rows(db_url)) == 2


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def test_bad_input_has_its_status_and_type(api, cli, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    h = auth(key)
    ok = {"from": "ACME", "to": ES, "text": "Hi"}
    cases = [
        ({**ok, "text": "  "}, 422, "invalid-input", "text"),
        ({k: v for k, v in ok.items() if k != "text"}, 422, "invalid-input", "text"),
        ({**ok, "to": [f"3462{i:07d}" for i in range(701)]}, 422, "invalid-input", "to"),
        ({**ok, "to": []}, 422, "invalid-input", "to"),
        ({**ok, "label": "x" * 101}, 422, "invalid-input", "label"),
        ({**ok, "mode": "later"}, 422, "invalid-input", "mode"),
        ({**ok, "extra": 1}, 422, "invalid-input", "extra"),
        ({**ok, "from": "NOBODY"}, 404, "not-found", "NOBODY"),
        ({**ok, "channel": "viber"}, 422, "invalid-input", "sms sender ID"),
    ]
    for body, status, name, word in cases:
        got = assert_problem(api.post("/v1/messages", headers=h, json=body), status, name)
        assert word in got["detail"] or word in str(got.get("problems")), (body, got)
    cli.json("sender", "disable", "ACME")
    got = assert_problem(api.post("/v1/messages", headers=h, json=ok), 422, "invalid-input")
    assert "disabled" in got["detail"]


def test_seed_send_sms(api, cli, db_url, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    h = auth(key)
    many = [f"3462{i:07d}" for i in range(1, 702)]
    body = [{"channels": "SMS", "from": "ACME", "to": ",".join([many[0], *many]), "message": "Hi"}]
    got = api.post("/api/send_sms", headers=h, json=body)
    assert got.status_code == 200, got.text
    results = got.json()["results"]
    assert len(results) == 700  # the duplicate ignored, the 701st not sent
    ids = [r.split(": ")[1] for r in results]
    rows = queue_rows(db_url)
    assert [r.split(": ")[0] for r in results] == many[:700] and ids == [str(r["id"]) for r in rows]
    assert {r["label"] for r in rows} == {_today()}

    bad_sender = {"channels": "SMS", "from": "NOBODY", "to": ES, "message": "Hi"}
    got = api.post("/api/send_sms", headers=h, json=bad_sender)
    assert got.status_code == 200 and got.json() == {"results": [f"{ES}: For message: can't validate sender NOBODY"]}
    assert_problem(
        api.post("/api/send_sms", headers=h, json={**bad_sender, "from": "ACME", "message": None}), 422, "invalid-input"
    )
    missing = {k: v for k, v in bad_sender.items() if k != "message"}
    got = assert_problem(api.post("/api/send_sms", headers=h, json=missing), 422, "invalid-input")
    assert got["problems"][0]["field"] == "message"
    flash_mo = {**bad_sender, "from": "ACME", "isFlashed": True, "acceptMO": "true"}
    got = assert_problem(api.post("/api/send_sms", headers=h, json=flash_mo), 400, "mo-flash")
    assert got["detail"] == "MO messages are not supported in FlashMessages!"
    got = assert_problem(api.post("/api/send_sms", headers=h, json={**flash_mo, "isFlashed": False}), 400, "mo-off")
    assert got["detail"] == "Partner's MO messages mode is off!"
    assert_problem(api.post("/api/send_sms", headers=h, json={**bad_sender, "channels": "Fax"}), 422, "invalid-input")
    before = len(queue_rows(db_url))
    for viber_only in ({"trafficType": "PROMOTION"}, {"imageUrl": "https://x.example/a.png"}, {"fallbackTtl": 60},
                       {"buttonActionUrl": "https://x.example"}, {"buttonCaption": "Go"}):  # fmt: skip
        got = assert_problem(
            api.post("/api/send_sms", headers=h, json={**bad_sender, "from": "ACME", **viber_only}),
            422,
            "invalid-input",
        )
        assert got["problems"][0]["field"] == next(iter(viber_only)) and "Viber" in got["detail"]
    assert len(queue_rows(db_url)) == before  # refused, not sent without them
    q = api.get(
        "/api/send_sms",
        headers=h,
        params={"channels": "SMS", "from": "ACME", "to": "34629999999", "message": "Q", "label": "get"},
    )
    assert q.status_code == 200 and q.json()["results"][0].startswith("34629999999: ")
    assert queue_rows(db_url)[-1]["label"] == "get"


def test_scope_and_permission(api, cli, db_url, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    mid = api.post("/v1/messages", headers=auth(key), json={"from": "ACME", "to": ES, "text": "Hi"}).json()
    mid = mid["messages"][0]["id"]
    from tests.helpers import client

    client(cli, "Client B")
    other = key_for(cli, "bob", "Client B")
    assert_problem(api.get(f"/v1/messages/{mid}", headers=auth(other)), 404, "not-found")
    assert_problem(api.get("/v1/messages/999999", headers=auth(key)), 404, "not-found")
    viewer = key_for(cli, "carol", "Client A", scopes=("campaign.view",))
    got = assert_problem(
        api.post("/v1/messages", headers=auth(viewer), json={"from": "ACME", "to": ES, "text": "x"}), 403, "forbidden"
    )
    assert "campaign.send" in got["detail"]
    assert api.get(f"/v1/messages/{mid}", headers=auth(viewer)).status_code == 200
    # Another company's sender ID is not this key's: not found
    assert_problem(
        api.post("/v1/messages", headers=auth(other), json={"from": "ACME", "to": ES, "text": "x"}), 404, "not-found"
    )


def test_list_by_label_with_cursor(api, cli, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    for i in range(5):
        api.post(
            "/v1/messages",
            headers=auth(key),
            json={"from": "ACME", "to": f"3462000010{i}", "text": "x", "label": "L" if i % 2 == 0 else "M"},
        )
    page = api.get("/v1/messages", headers=auth(key), params={"label": "L", "limit": 2}).json()
    assert [m["to"] for m in page["messages"]] == ["34620000104", "34620000102"] and page["next_cursor"]
    rest = api.get(
        "/v1/messages", headers=auth(key), params={"label": "L", "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [m["to"] for m in rest["messages"]] == ["34620000100"] and rest["next_cursor"] is None
    allq = api.get("/v1/messages", headers=auth(key), params={"status": "queued"}).json()
    assert len(allq["messages"]) == 5
    assert api.get("/v1/messages", headers=auth(key), params={"status": "delivered"}).json()["messages"] == []
    assert_problem(api.get("/v1/messages", headers=auth(key), params={"status": "lost"}), 422, "invalid-input")
    assert_problem(api.get("/v1/messages", headers=auth(key), params={"cursor": "abc"}), 422, "invalid-input")


def test_idempotency_records_expire_after_24_hours(api, cli, db_url, smsc):  # noqa: F811
    from datetime import timedelta

    from cpaas_cli import clock
    from cpaas_cli.scheduler.jobs import all_jobs
    from cpaas_cli.sending import idempotency

    key = ready(cli, smsc.port)
    h = {**auth(key), "Idempotency-Key": "k1"}
    body = {"from": "ACME", "to": ES, "text": "A"}
    assert api.post("/v1/messages", headers=h, json=body).status_code == 202
    (job,) = [j for j in all_jobs() if j.name == "idempotency-purge"]
    assert job.func(get_engine(db_url)) == {"purged": 0}
    base = clock.now()
    clock.set_clock(lambda: base + timedelta(hours=24, seconds=1))
    try:
        again = api.post("/v1/messages", headers=h, json={**body, "text": "B"})  # the old record expired: a new send
        assert again.status_code == 202 and len(queue_rows(db_url)) == 2
        clock.set_clock(lambda: base + timedelta(hours=49))
        assert idempotency.purge_job(get_engine(db_url)) == {"purged": 1}
    finally:
        clock.set_clock(None)
