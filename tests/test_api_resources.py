"""Reading and managing through the HTTP API in-process: the rate of the next
message, campaigns from groups (now, scheduled, lifecycle), contacts upsert, stop list."""

from __future__ import annotations

from tests.api_helpers import api, assert_problem, auth, key_for  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_serve import setup, smsc  # noqa: F401

ES = "34620000001"


def ready(cli, port: int, **kw) -> str:
    setup(cli, port, **kw)
    return key_for(cli, "alice", "Client A")


def test_rate_is_the_rates_lookup(api, cli, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    got = api.get("/v1/rate", headers=auth(key), params={"to": ES, "from": "ACME"})
    assert got.status_code == 200, got.text
    body = got.json()
    looked = cli.json("rates", "lookup", "--agreement", "AG-1", "--mccmnc", "214", "--sender", "ACME")
    assert body["price"] == looked["price"] == "0.08" and body["matched"] == looked["matched"]
    assert body["to"] == ES and body["agreement"] == "AG-1" and body["country"] == "ES"
    assert (
        api.get("/v1/rate", headers=auth(key), params={"to": "34600000001", "from": "ACME"}).json()["price"] == "0.04"
    )
    assert_problem(api.get("/v1/rate", headers=auth(key), params={"to": "+34", "from": "ACME"}), 422, "invalid-input")
    assert_problem(api.get("/v1/rate", headers=auth(key), params={"to": ES, "from": "NOBODY"}), 404, "not-found")
    assert_problem(api.get("/v1/rate", headers=auth(key), params={"to": ES}), 422, "invalid-input")


def test_contacts_upsert_stoplist_and_campaign_lifecycle(api, cli, db_url, smsc):  # noqa: F811
    key = ready(cli, smsc.port)
    h = auth(key)
    cli.json("contacts", "group", "add", "VIP", "--company", "Client A")
    assert_problem(api.put(f"/v1/contacts/{ES}", headers=h, json={"first_name": "Ana"}), 422, "invalid-input")
    made = api.put(f"/v1/contacts/{ES}", headers=h, json={"groups": ["VIP"], "first_name": "Ana"})
    assert made.status_code == 201 and made.json()["first_name"] == "Ana", made.text
    again = api.put(f"/v1/contacts/{ES}", headers=h, json={"last_name": "Ruiz"})
    assert again.status_code == 200 and (again.json()["first_name"], again.json()["last_name"]) == ("Ana", "Ruiz")
    api.put("/v1/contacts/34620000002", headers=h, json={"groups": ["VIP"]})
    api.put("/v1/contacts/34620000003", headers=h, json={"groups": ["VIP"]})
    assert_problem(api.put("/v1/contacts/12", headers=h, json={"groups": ["VIP"]}), 422, "invalid-input")
    assert_problem(api.put("/v1/contacts/34620000004", headers=h, json={"groups": ["Nope"]}), 404, "not-found")

    assert api.post("/v1/stoplist", headers=h, json={"phones": ["34620000003"]}).json() == {"added": 1}
    assert api.post("/v1/stoplist", headers=h, json={"phones": ["34620000003"]}).json() == {"added": 0}
    listed = cli.json("contacts", "stoplist", "list", "--company", "Client A")
    assert [(r["phone"], r["sender"]) for r in listed] == [("34620000003", "ALL")]

    body = {
        "from": "ACME",
        "text": "Hello {{ first_name }}",
        "groups": ["VIP"],
        "schedule": {"at": "2099-01-01 09:00", "tz": "Europe/Madrid"},
    }
    r = api.post("/v1/campaigns", headers=h, json=body)
    assert r.status_code == 201, r.text
    camp = r.json()
    assert camp["state"] == "scheduled" and camp["recipients"] == 2 and camp["personalised"] is True
    cid = camp["id"]
    assert api.get(f"/v1/campaigns/{cid}", headers=h).json()["state"] == "scheduled"
    assert_problem(api.post(f"/v1/campaigns/{cid}/pause", headers=h), 409, "conflict")
    started = api.post(f"/v1/campaigns/{cid}/start", headers=h)
    assert started.status_code == 200 and started.json()["state"] == "in_progress" and started.json()["messages"] == 2
    assert api.post(f"/v1/campaigns/{cid}/pause", headers=h).json()["state"] == "paused"
    assert api.post(f"/v1/campaigns/{cid}/resume", headers=h).json()["state"] == "in_progress"
    assert api.post(f"/v1/campaigns/{cid}/pause", headers=h).json()["state"] == "paused"
    assert api.post(f"/v1/campaigns/{cid}/cancel", headers=h).json()["state"] == "canceled"
    assert_problem(api.post(f"/v1/campaigns/{cid}/explode", headers=h), 422, "invalid-input")
    assert_problem(api.get("/v1/campaigns/99999", headers=h), 404, "not-found")

    now = api.post("/v1/campaigns", headers=h, json={"from": "ACME", "text": "Now", "groups": ["VIP"]})
    assert now.status_code == 201 and now.json()["state"] == "in_progress"
    draft = api.post("/v1/campaigns", headers=h, json={"from": "ACME", "text": "D", "groups": ["VIP"], "start": False})
    assert draft.json()["state"] == "draft"
    assert_problem(
        api.post("/v1/campaigns", headers=h, json={"from": "ACME", "text": "x", "groups": []}), 422, "invalid-input"
    )

    # Another company's key sees none of it; a viewer key cannot act.
    from tests.helpers import client

    client(cli, "Client B")
    other = key_for(cli, "bob", "Client B")
    assert_problem(api.get(f"/v1/campaigns/{cid}", headers=auth(other)), 404, "not-found")
    assert_problem(api.post(f"/v1/campaigns/{draft.json()['id']}/cancel", headers=auth(other)), 404, "not-found")
    viewer = key_for(cli, "carol", "Client A", scopes=("campaign.view",))
    assert api.get(f"/v1/campaigns/{cid}", headers=auth(viewer)).status_code == 200
    assert_problem(api.post(f"/v1/campaigns/{now.json()['id']}/pause", headers=auth(viewer)), 403, "forbidden")
    assert_problem(api.post("/v1/stoplist", headers=auth(viewer), json={"phones": [ES]}), 403, "forbidden")


def test_campaign_without_credit_is_402_and_kept_failed(api, cli, smsc):  # noqa: F811
    key = ready(cli, smsc.port, credit="0.10")
    cli.json("contacts", "group", "add", "G", "--company", "Client A")
    for p in ("34620000001", "34620000002"):
        api.put(f"/v1/contacts/{p}", headers=auth(key), json={"groups": ["G"]})
    got = assert_problem(
        api.post("/v1/campaigns", headers=auth(key), json={"from": "ACME", "text": "x", "groups": ["G"]}),
        402,
        "insufficient-credit",
    )
    assert got["campaign"]["state"] == "failed"
    assert cli.json("campaign", "show", str(got["campaign"]["id"]))["state"] == "failed"  # as `campaign send` leaves it
