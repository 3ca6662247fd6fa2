"""Campaign estimates by country and network: carrier of the number range →
MCC/MNC of the dictionary → the rate tree's network leaf, or the country row
when the carrier is unknown or ambiguous; queue rows and EDRs carry the network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.campaigns import destinations as dst
from cpaas_cli.catalog.dictionary import network_keys, networks_for_carrier
from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch.claim import edr_row
from cpaas_cli.models.campaigns import OutboundMessage
from tests.test_campaigns import setup

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

# Spanish numbers by the carrier of their range (phonenumbers carrier data).
VODAFONE = ["34600111222", "34610111222", "34670111222"]  # 21401: its own leaf in EXAMPLE1, 0.04
MOVISTAR = ["34620111222", "34620111333"]  # 21407: recognised, no leaf of its own → ES others, 0.08
DIGI = "34641000000"  # 21422: a tier scale leaf, first step 0.005
LYCA = "34632111222"  # Lycamobile: not in the MCC/MNC dictionary → the country row (ES others, 0.08)
FIXED = "34911234567"  # a Madrid fixed line: no carrier → the country row
FR = "33612345678"  # SFR (20810); France has no network level in EXAMPLE1: others, 0.05
ALL = [*VODAFONE, *MOVISTAR, DIGI, LYCA, FIXED, FR]


@pytest.fixture(autouse=True)
def pinned_clock():
    clock.set_clock(lambda: NOW)
    yield
    clock.set_clock(None)


# ---------------------------------------------------------------- pure


@pytest.mark.parametrize(
    "carrier,country,found",
    [
        ("Vodafone", "ES", ("21401",)),
        ("Movistar", "ES", ("21407",)),
        ("Orange", "ES", ("21403",)),
        ("DigiMobil", "ES", ("21422",)),  # "DIGI mobil (Best Spain Telecom)"
        ("O2", "DE", ("26203",)),  # the alias in "Telefonica Germany (O2)"
        ("T-Mobile", "PL", ("26002",)),  # "T-Mobile Poland"
        ("Three", "GB", ("23420",)),  # "Three UK"
        ("Bouygues", "FR", ("20820",)),  # "Bouygues Telecom"
        ("AT&T", "US", ("310410",)),
        ("Vodafone", "AF", ()),  # another country's Vodafone does not count
        ("Lycamobile", "ES", ()),
        ("T-Mobile", "DE", ()),  # the dictionary says "Telekom Deutschland"
    ],
)
def test_carrier_names_match_dictionary_networks(carrier, country, found):
    assert networks_for_carrier(carrier, country) == found


def test_network_keys_fold_case_punctuation_and_suffixes():
    full, keys = network_keys("DIGI mobil (Best Spain Telecom)", "ES")
    assert full == {"digimobil", "bestspaintelecom"}
    assert {"digi", "bestspain"} <= keys
    assert network_keys("T-MOBILE, Poland", "PL")[1] == {"tmobilepoland", "tmobile"}


@pytest.mark.parametrize(
    "phone,dest",
    [
        ("34600111222", ("ES", "214", "01", "Vodafone")),
        ("34620111222", ("ES", "214", "07", "Movistar")),
        ("34632111222", ("ES", "214", None, "Lycamobile")),
        ("34911234567", ("ES", "214", None, None)),
        ("447400123456", ("GB", "234", "20", "Three")),
        ("447700900123", ("GB", "234", None, None)),  # not a valid number (drama range): no carrier
        ("12025550123", ("US", "310", None, None)),
    ],
)
def test_destination_of_a_number(phone, dest):
    assert dst.destination(phone) == dest


def test_prefix_memo_gives_the_same_answers():
    dst._memo.clear()
    dst._invalid.clear()
    first = [dst.destination(p) for p in ALL]
    again = [dst.destination(p) for p in ALL]
    assert first == again
    # invalid numbers of a prefix are parsed a few times before their answer is kept
    for _ in range(dst._INVALID_TRIES + 1):
        assert dst.destination("447700900123") == ("GB", "234", None, None)
    assert ("44770090", 12) in dst._memo


def test_ambiguous_carrier_is_priced_for_the_country(monkeypatch):
    dst.network_for.cache_clear()
    monkeypatch.setattr(dst, "networks_for_carrier", lambda carrier, country: ("21401", "21406"))
    try:
        net = dst.network_for("ES", "Vodafone")
        assert (net.mcc, net.mnc, net.recognised) == ("214", None, False)
        assert "several networks (21401, 21406)" in net.note
    finally:
        dst.network_for.cache_clear()


# ---------------------------------------------------------------- estimate


def _rows(e: dict) -> list[tuple]:
    return [
        (d["country"], d["mccmnc"], d["network"], d["network_recognised"], d["recipients"], d["segments"])
        + (d["unit_price"], d["cost"], d["matched"])
        for d in e["destinations"]
    ]


EXPECTED = [
    ("ES", "21401", "Vodafone Spain", True, 3, 3, "0.04", "0.12", "sms/sms_message/mt/ES/21401"),
    ("ES", "21407", "Movistar", True, 2, 2, "0.08", "0.16", "sms/sms_message/mt/ES/others*"),
    ("ES", "21422", "DIGI mobil (Best Spain Telecom)", True, 1, 1, "0.005", "0.005", "sms/sms_message/mt/ES/21422"),
    ("ES", None, "Lycamobile", False, 1, 1, "0.08", "0.08", "sms/sms_message/mt/ES/others*"),
    ("ES", None, None, False, 1, 1, "0.08", "0.08", "sms/sms_message/mt/ES/others*"),
    ("FR", "20810", "SFR", True, 1, 1, "0.05", "0.05", "sms/sms_message/mt/others*"),
]


def _create(cli, text: str) -> int:
    args = ["campaign", "create", "--company", "Client A", "--sender", "ACME", "--text", text]
    for p in ALL:
        args += ["--to", p]
    return cli.json(*args)["id"]


@pytest.mark.parametrize("text", ["Hello", "Hi {{ phone }}"], ids=["plain", "personalised"])
def test_estimate_by_country_and_network(cli, db_url, text):
    setup(cli)
    cid = _create(cli, text)
    e = cli.json("campaign", "estimate", str(cid))
    assert _rows(e) == EXPECTED
    by_carrier = {d["carrier"]: d for d in e["destinations"]}
    assert by_carrier["Lycamobile"]["mcc"] == "214" and by_carrier["Lycamobile"]["mnc"] is None
    assert "not in the MCC/MNC dictionary" in by_carrier["Lycamobile"]["network_note"]
    assert "no carrier data" in by_carrier[None]["network_note"]
    assert by_carrier["Vodafone"]["network_note"] is None and by_carrier["Vodafone"]["mnc"] == "01"
    assert e["estimated_cost"] == "0.495" and e["unpriced_messages"] == 0
    assert e["countries"] == [
        {"country": "ES", "recipients": 8, "messages": 8, "segments": 8, "cost": "0.445"},
        {"country": "FR", "recipients": 1, "messages": 1, "segments": 1, "cost": "0.05"},
    ]
    assert "not of number portability" in e["network_note"]
    assert "fits" in cli("campaign", "estimate", str(cid), "-o", "table").stdout  # renders

    # Starting it: the queue rows carry the network, and so do the EDRs made from them.
    sent = cli.json("campaign", "send", str(cid))
    assert sent["estimated_cost"] == "0.495"
    q = OutboundMessage.__table__
    with get_engine(db_url).connect() as conn:
        cols = (q.c.id, q.c.campaign_id, q.c.phone, q.c.country, q.c.sender, q.c.text, q.c.encoding, q.c.segments)
        queued = conn.execute(sa.select(*cols, q.c.mcc, q.c.mnc, q.c.network).order_by(q.c.id)).all()
    assert {r.phone: (r.mcc, r.mnc, r.network) for r in queued} == {
        **{p: ("214", "01", "Vodafone") for p in VODAFONE},
        **{p: ("214", "07", "Movistar") for p in MOVISTAR},
        DIGI: ("214", "22", "DigiMobil"),
        LYCA: ("214", None, "Lycamobile"),
        FIXED: ("214", None, None),
        FR: ("208", "10", "SFR"),
    }
    for r in queued:
        from_row = edr_row(1, r, 1, 1, "sms", NOW)  # read with the network columns
        from_phone = edr_row(1, tuple(r[:8]), 1, 1, "sms", NOW)  # read without: looked up from the number
        assert (from_row["mcc"], from_row["mnc"]) == (from_phone["mcc"], from_phone["mnc"]) == (r.mcc, r.mnc)
        assert from_row["network"] == from_phone["network"]
    vf = edr_row(1, next(r for r in queued if r.phone == VODAFONE[0]), 1, 1, "sms", NOW)
    assert (vf["mcc"], vf["mnc"], vf["network"], vf["country"]) == ("214", "01", "Vodafone Spain", "ES")


def test_repeat_keeps_the_networks(cli):
    setup(cli)
    cid = _create(cli, "Hello")
    cli.json("campaign", "send", str(cid))
    cli.json("campaign", "pause", str(cid))
    cli.json("campaign", "cancel", str(cid), "--yes")
    again = cli.json("campaign", "repeat", str(cid))
    assert _rows(cli.json("campaign", "estimate", str(again["id"]))) == EXPECTED


def test_recipients_stored_without_networks_are_priced_for_the_country(cli, db_url):
    """Recipients written before the network columns existed (NULL mcc/mnc/network)."""
    from cpaas_cli.models.campaigns import CampaignRecipient

    setup(cli)
    cid = _create(cli, "Hello")
    r = CampaignRecipient.__table__
    with get_engine(db_url).begin() as conn:
        conn.execute(sa.update(r).values(mcc=None, mnc=None, network=None))
    e = cli.json("campaign", "estimate", str(cid))
    rows = [(d["country"], d["mcc"], d["network_recognised"], d["recipients"], d["cost"]) for d in e["destinations"]]
    assert rows == [("ES", "214", False, 8, "0.64"), ("FR", "208", False, 1, "0.05")]
    assert "before networks" in e["destinations"][0]["network_note"]
