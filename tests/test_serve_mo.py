"""MO opt-outs through `serve --once` against the project's SMSC: national
source numbers become the E.164 number campaigns use, and an opt-out belongs
to the one company whose sender (or number) the handset answered."""

from __future__ import annotations

import threading
import time

from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from tests.helpers import client
from tests.test_serve import campaign, serve_once, setup

HANDSET = "34600000001"


def serve_with_mo(cli, sim: SimSmsc, mos: list[tuple], *extra: str) -> dict:
    """serve --once while the SMSC sends ``mos`` [(source, dest, text, ton)] once a submit went out."""

    def inject():
        end = time.monotonic() + 30
        while sim.counters.accepted < 1:
            assert time.monotonic() < end, "nothing was submitted"
            time.sleep(0.02)
        for source, dest, text, ton in mos:
            sim.inject_mo(source, dest, text, source_ton=ton).result(10)

    t = threading.Thread(target=inject)
    t.start()
    try:
        return serve_once(cli, *extra)
    finally:
        t.join()


def smsc() -> SimSmsc:
    return SimSmsc(SmscOptions(port=free_port(), id_width=10, lifetime=120, receipt_delay=1.5))


def draft(cli, tmp_path, company: str, phones: list[str], name: str, sender: str = "ACME") -> dict:
    f = tmp_path / f"{name}.csv"
    f.write_text("phone\n" + "".join(p + "\n" for p in phones))
    return cli.json("campaign", "create", "--company", company, "--sender", sender, "--file", str(f), "--text", "x")


def stoplist(cli, company: str) -> list[tuple[str, str]]:
    return [(b["phone"], b["sender"]) for b in cli.json("contacts", "stoplist", "list", "--company", company)]


def test_a_national_stop_blocks_the_e164_number(cli, tmp_path):
    with smsc() as sim:
        setup(cli, sim.port)
        cli.json("connection", "update", "sim", "--default-country", "ES")
        campaign(cli, tmp_path, [HANDSET, "34600000002"], "Hi", "c1")
        out = serve_with_mo(
            cli,
            sim,
            [("600000001", "ACME", "STOP", 2), ("600000002", "ACME", "baja", 0)],  # TON 2; TON 0 without +34
        )
    assert out["mo"] == 2 and out["opt_outs"] == 2, out
    assert stoplist(cli, "Client A") == [(HANDSET, "ACME"), ("34600000002", "ACME")]
    mo = cli.json("inbound", "list", "--kind", "mo")
    assert sorted(m["source"] for m in mo) == [HANDSET, "34600000002"]
    again = draft(cli, tmp_path, "Client A", [HANDSET, "34600000002", "34600000003"], "again")
    assert again["recipients"] == 1 and again["excluded"]["stop_list"] == 2


def test_a_national_stop_without_a_default_country_is_kept_with_the_reason(cli, tmp_path):
    with smsc() as sim:
        setup(cli, sim.port)
        campaign(cli, tmp_path, [HANDSET], "Hi", "c1")
        out = serve_with_mo(cli, sim, [("600000001", "ACME", "STOP", 2)])
    assert out["mo"] == 1 and out["opt_outs"] == 0, out
    assert stoplist(cli, "Client A") == []
    (mo,) = cli.json("inbound", "list", "--kind", "mo")
    assert mo["source"] == "600000001" and mo["action"] is None
    assert "no default country" in mo["reason"]


def test_connection_default_country_is_checked(cli):
    setup(cli, free_port())
    r = cli("connection", "update", "sim", "--default-country", "XX", expect=4)
    assert "--default-country" in r.stderr
    assert cli.json("connection", "update", "sim", "--default-country", "es")["default_country"] == "ES"
    assert cli.json("connection", "update", "sim", "--default-country", "")["default_country"] is None


def test_a_stop_to_a_number_the_company_owns_but_does_not_send_from(cli, tmp_path):
    """The short code 12345 is Client A's (a draft sender ID, not used to send):
    a STOP to it stops every sender of Client A for that handset."""
    with smsc() as sim:
        setup(cli, sim.port)
        cli.json("sender", "add", "12345", "--type", "short_code", "--company", "Client A", "--agreement", "AG-1")
        campaign(cli, tmp_path, [HANDSET], "Hi", "c1")
        out = serve_with_mo(cli, sim, [(HANDSET, "12345", "STOP", 1)])
    assert out["opt_outs"] == 1, out
    assert stoplist(cli, "Client A") == [(HANDSET, "ALL")]
    (mo,) = cli.json("inbound", "list", "--kind", "mo")
    assert mo["company_id"] is not None and mo["action"] == "opt_out"
    again = draft(cli, tmp_path, "Client A", [HANDSET, "34600000002"], "again")
    assert again["recipients"] == 1 and again["excluded"]["stop_list"] == 1


def test_a_stop_to_a_number_nobody_owns_is_kept_with_the_reason(cli, tmp_path):
    with smsc() as sim:
        setup(cli, sim.port)
        campaign(cli, tmp_path, [HANDSET], "Hi", "c1")
        out = serve_with_mo(cli, sim, [(HANDSET, "99999", "STOP", 1)])
    assert out["opt_outs"] == 0
    (mo,) = cli.json("inbound", "list", "--kind", "mo")
    assert mo["action"] is None and "no company owns '99999'" in mo["reason"]


def test_a_stop_to_a_shared_sender_name_is_for_the_company_that_messaged_the_handset(cli, tmp_path):
    """Client A and Client B both send as ACME. The handset got A's message and
    answers STOP: A's next campaign leaves it out, B's still reaches it."""
    with smsc() as sim:
        setup(cli, sim.port)
        b = client(cli, "Client B")
        cli.json("agreement", "create", "AG-2", "--company", str(b["id"]), "--currency", "EUR", "--from", "2026-01-01")
        cli.json("agreement", "enable", "SMS service", "--agreement", "AG-2", "--from", "2026-01-01")
        cli.json(
            "sender", "add", "ACME", "--company", "Client B", "--agreement", "AG-2", "--active", "--connection", "sim"
        )
        campaign(cli, tmp_path, [HANDSET], "Hi from A", "a1")
        out = serve_with_mo(cli, sim, [(HANDSET, "ACME", "STOP", 1)])
    assert out["opt_outs"] == 1, out
    assert stoplist(cli, "Client A") == [(HANDSET, "ACME")]
    assert stoplist(cli, "Client B") == []
    a = draft(cli, tmp_path, "Client A", [HANDSET, "34600000002"], "a2")
    assert a["recipients"] == 1 and a["excluded"]["stop_list"] == 1
    bb = draft(cli, tmp_path, "Client B", [HANDSET, "34600000002"], "b2")
    assert bb["recipients"] == 2 and bb["excluded"]["stop_list"] == 0
    (mo,) = cli.json("inbound", "list", "--kind", "mo")
    assert mo["company_id"] == cli.json("campaign", "show", str(a["id"]))["company_id"]


def test_a_stop_to_a_long_number_written_nationally_finds_its_sender(cli, tmp_path):
    """The MO's destination is Client A's long number without its country code."""
    with smsc() as sim:
        setup(cli, sim.port)
        cli.json("connection", "update", "sim", "--default-country", "ES")
        cli.json(
            "sender", "add", "+34 911 234 567", "--type", "long_code", "--company", "Client A",
            "--agreement", "AG-1", "--active", "--connection", "sim",
        )  # fmt: skip
        campaign(cli, tmp_path, [HANDSET], "Hi", "c1")
        out = serve_with_mo(cli, sim, [("600000001", "911234567", "STOP", 2)])
    assert out["opt_outs"] == 1, out
    assert stoplist(cli, "Client A") == [(HANDSET, "34911234567")]
