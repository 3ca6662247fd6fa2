"""EDR ingest/rate/show, balances, payments, fees, credit limits through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from cpaas_cli.db.engine import dispose_all, get_engine
from tests.helpers import client, owner_le

DATA = Path(__file__).parent / "data"
EXAMPLE1 = DATA / "example1.yaml"


def setup(cli, *, credit_limit=None):
    owner_le(cli)
    c = client(cli)
    args = ["agreement", "create", "AG-1", "--company", c["name"], "--currency", "EUR", "--from", "2026-01-01"]
    if credit_limit is not None:
        args += ["--credit-limit", credit_limit]
    cli.json(*args)
    cli.json("service", "create", "SMS service", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "SMS service", "--from", "2026-01-01")
    cli("service", "tree", "apply", "SMS service", str(EXAMPLE1))
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-1", "--from", "2026-01-01")


def edr_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(i, mccmnc="21401", sender="ACME", segments=2, **kw):
    base = {
        "external_id": f"x-{i}",
        "agreement": "AG-1",
        "sender": sender,
        "destination": f"3460000{i:04d}",
        "mccmnc": mccmnc,
        "segments": str(segments),
        "prepared_at": f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z",
        "submitted_at": f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z",
        "status": "submitted",
    }
    base.update(kw)
    return base


def test_ingest_rate_balance_idempotent(cli, tmp_path):
    setup(cli)
    p = cli.json(
        "payment",
        "add",
        "--agreement",
        "AG-1",
        "--reference",
        "TOP-1",
        "--amount",
        "100",
        "--confirmed",
        "--date",
        "2026-02-01",
    )
    assert (p["state"], p["replenishment"], p["exchange_rate"]) == ("confirmed", "100.00", "1.0")
    rows = [row(i) for i in range(5)] + [row(5, mccmnc="33201")] + [row(6, direction="mo")]
    f = edr_file(tmp_path / "e.jsonl", rows)
    got = cli.json("edr", "ingest", str(f))
    assert (got["inserted"], got["rated"], got["rejected"]) == (7, 7, 0)
    # 5 × 2 segments × 0.04 + 2 × tier 0.05 (others) + free MO
    b = cli.json("balance", "show", "AG-1")
    assert (b["charges"], b["balance"], b["credit_limit"]) == ("0.50", "99.50", "unlimited")
    again = cli.json("edr", "ingest", str(f))
    assert (again["inserted"], again["skipped"]) == (0, 7)
    assert cli.json("edr", "rate")["rated"] == 0
    assert cli.json("balance", "show", "AG-1")["balance"] == "99.50"
    one = cli.json("edr", "show", "x-0")
    assert one["cost"] == "0.08" and one["rate_path"] == "sms/sms_message/mt/ES/21401"
    assert "0.04" in one["explanation"] and len(one["charges"]) == 1
    mo = cli.json("edr", "show", "x-6")
    assert (mo["rating_state"], mo["cost"], mo["rating_note"]) == ("rated", "0.00", "free")
    hist = cli.json("balance", "history", "AG-1")
    assert hist[-1]["balance"] == "99.50" and hist[0]["kind"] == "payment_inbound"
    assert cli.json("balance", "show", "AG-1", "--at", "2026-02-15")["balance"] == "100.00"
    # the agreement now has charges: its currency is fixed (AMB-14)
    cli("agreement", "update", "AG-1", "--currency", "USD", expect=5)


def test_ingest_of_an_overlapping_file_stores_only_the_new_rows(cli, tmp_path):
    """The second file repeats one EDR of the first in the middle of a chunk (not
    among the ids looked up before a SQLite chunk is trusted to be new): it is
    skipped, every other row is stored and charged once, the balance moves once."""
    setup(cli)
    first = cli.json("edr", "ingest", str(edr_file(tmp_path / "a.jsonl", [row(i) for i in range(100)])))
    assert (first["inserted"], first["skipped"]) == (100, 0)
    rows = [row(i) for i in range(100, 150)] + [row(42)] + [row(i) for i in range(150, 200)]
    got = cli.json("edr", "ingest", str(edr_file(tmp_path / "b.jsonl", rows)))
    assert (got["read"], got["inserted"], got["skipped"], got["rated"]) == (101, 100, 1, 100)
    with get_engine(cli.url).connect() as conn:
        edrs = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM edr")).one()
        charges = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT edr_id) FROM charge WHERE kind = 'edr'")).one()
    assert tuple(edrs) == (200, 200) and tuple(charges) == (200, 200)
    assert len(cli.json("edr", "show", "x-42")["charges"]) == 1
    # 200 EDRs of 2 segments at 0.04
    assert cli.json("balance", "show", "AG-1")["charges"] == "16.00"


def test_rejections_and_credit_limit(cli, tmp_path):
    setup(cli, credit_limit="0.10")
    rows = [row(i) for i in range(3)] + [row(3, agreement="", company="Client A")]
    got = cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert (got["rated"], got["rejected"]) == (1, 3)
    listed = cli.json("edr", "list", "--state", "rejected")
    assert sorted(r["rating_reason"] for r in listed) == ["insufficient_credit", "insufficient_credit", "no_agreement"]
    assert cli.json("balance", "show", "AG-1")["available"] == "0.02"


def test_delivered_billing_and_pending_rate(cli, tmp_path):
    setup(cli)
    doc = EXAMPLE1.read_text().replace("billing_rule: submitted", "billing_rule: delivered")
    (tmp_path / "t.yaml").write_text(doc)
    cli("service", "tree", "apply", "SMS service", str(tmp_path / "t.yaml"))
    f = edr_file(tmp_path / "a.jsonl", [row(0), row(1, status="undelivered", undelivered_at="2026-03-01T10:05:00Z")])
    got = cli.json("edr", "ingest", str(f))
    assert (got["pending"], got["rated"]) == (1, 1)
    assert cli.json("edr", "show", "x-1")["cost"] == "0.00"
    # the receipt arrives later: the dispatch worker calls rate_and_charge
    from cpaas_cli.charging.stored import rate_and_charge
    from cpaas_cli.db.engine import make_session
    from cpaas_cli.edr import queries as edrs

    s = make_session(get_engine(cli.url))
    edr_id = edrs.get(s, "x-0")["id"]
    assert rate_and_charge(s, [edr_id], event="delivered")["rated"] == 1
    s.commit()
    s.close()
    assert cli.json("edr", "show", "x-0")["cost"] == "0.08"


def test_payments_states_and_fx(cli):
    setup(cli)
    p = cli.json(
        "payment",
        "add",
        "--agreement",
        "AG-1",
        "--reference",
        "W-1",
        "--amount",
        "110",
        "--currency",
        "USD",
        "--replenishment",
        "100",
        "--confirm-before",
        "2030-01-01",
        "--date",
        "2026-02-01",
    )
    assert (p["state"], p["exchange_rate"], p["replenishment"]) == ("unconfirmed", "0.9090909091", "100.00")
    cli("payment", "add", "--agreement", "AG-1", "--reference", "W-2", "--amount", "5", "--currency", "USD", expect=4)
    old = cli.json(
        "payment",
        "add",
        "--agreement",
        "AG-1",
        "--reference",
        "W-3",
        "--amount",
        "7",
        "--confirm-before",
        "2026-02-10",
        "--date",
        "2026-02-01",
    )
    assert old["state"] == "expired"
    assert cli.json("balance", "show", "AG-1")["balance"] == "100.00"
    assert cli.json("balance", "show", "AG-1", "--at", "2026-02-05")["balance"] == "107.00"
    cli.json("payment", "confirm", str(old["id"]))
    assert cli.json("balance", "show", "AG-1")["balance"] == "107.00"
    cli.json(
        "payment",
        "add",
        "--agreement",
        "AG-1",
        "--reference",
        "OUT",
        "--amount",
        "7",
        "--direction",
        "outbound",
        "--confirmed",
    )
    assert cli.json("balance", "show", "AG-1")["balance"] == "100.00"
    cli.json("payment", "unconfirm", str(old["id"]), "--confirm-before", "2026-02-02")
    assert cli.json("payment", "list", "--state", "expired")[0]["reference"] == "W-3"
    cli.json("payment", "delete", str(p["id"]), "--yes")
    assert cli.json("balance", "show", "AG-1")["balance"] == "-7.00"


def test_fees_fixed_and_by_tariff(cli, tmp_path):
    setup(cli)
    f = cli.json("fee", "add", "--agreement", "AG-1", "--amount", "12.5", "--description", "setup")
    assert (f["amount"], f["fee_type"]) == ("12.50", "fixed")
    cli("fee", "add", "--agreement", "AG-1", "--volume", "3", expect=3)  # no additional-services service
    (tmp_path / "add.yaml").write_text(
        "tree:\n  additional:\n    depends_on: resource\n    children:\n      additional_service: {price: '5'}\n"
    )
    cli.json("service", "create", "Extras", "--type", "payg", "--currency", "EUR")
    cli.json("service", "scope", "add", "Extras", "--from", "2026-01-01")
    cli("service", "tree", "apply", "Extras", str(tmp_path / "add.yaml"))
    cli.json("agreement", "enable", "Extras", "--agreement", "AG-1", "--from", "2026-01-01")
    f = cli.json("fee", "add", "--agreement", "AG-1", "--volume", "3")
    assert (f["amount"], f["fee_type"], f["unit_price"]) == ("15.00", "tariff", "5.00")
    assert cli.json("balance", "show", "AG-1")["charges"] == "27.50"
    assert len(cli.json("fee", "list", "--agreement", "AG-1")) == 2


def test_bad_rows_write_nothing(cli, tmp_path):
    setup(cli)
    rows = [row(0), row(1, mccmnc="99999"), row(2, segments=0, agreement="NOPE")]
    run = cli("edr", "ingest", str(edr_file(tmp_path / "b.jsonl", rows)), "-o", "json", expect=4)
    assert "row 2" in run.stderr or "row" in run.stderr
    assert cli.json("edr", "list") == []


@pytest.mark.parametrize("field", ["segments", "campaign_id"])
def test_superscript_digit_is_a_bad_cell_not_a_crash(cli, tmp_path, field):
    """'²' passes str.isdigit() but int() refuses it: a row problem (exit 4), never a traceback."""
    setup(cli)
    rows = [row(0), row(1, **{field: "²"})]
    run = cli(
        "edr", "ingest", str(edr_file(tmp_path / "s.jsonl", rows)), "-o", "json", expect=4 if field == "segments" else 0
    )
    if field == "segments":
        assert "segments" in run.stderr and "row 2" in run.stderr
        assert cli.json("edr", "list") == []
    else:  # not a campaign id: stored without one
        assert [e["campaign_id"] for e in cli.json("edr", "list")] == [None, None]


def _twice_at_once(db_url: str, *args: str) -> list[dict]:
    """``cpaas -o json ARGS`` in two real OS processes at once; both must exit 0: their JSON outputs."""
    dispose_all()
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, "-o", "json", *args]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    return [json.loads(o[0]) for o in outs]


def test_two_processes_never_overspend(cli, tmp_path, db_url):
    """Two real OS processes rate the same agreement at once: the credit limit holds."""
    setup(cli, credit_limit="1")
    rows = [row(i, segments=1) for i in range(200)]  # 200 × 0.04 = 8.00 wanted, 1.00 allowed
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)), "--no-rate")
    done = _twice_at_once(db_url, "edr", "rate", "--chunk", "7")
    assert sum(d["rated"] for d in done) == 25 and sum(d["rejected"] for d in done) == 175
    with get_engine(db_url).connect() as conn:
        charged = conn.execute(sa.text("SELECT SUM(amount), COUNT(*) FROM charge")).one()
        spent = conn.execute(sa.text("SELECT spent FROM agreement_balance")).scalar()
        states = dict(conn.execute(sa.text("SELECT rating_state, COUNT(*) FROM edr GROUP BY rating_state")).all())
    assert charged == (1_000_000, 25) and spent == 1_000_000
    assert states == {"rated": 25, "rejected": 175}


def test_balance_at_a_past_time_counts_payments_as_they_stood_then(cli):
    """PAY-03 over time: an unconfirmed payment counts until its confirm-before
    date; confirmed later, it counts from the confirmation on, not before; a
    withdrawn confirmation stops counting after the new confirm-before date."""
    setup(cli)
    p = cli.json(
        "payment", "add", "--agreement", "AG-1", "--reference", "W-3", "--amount", "7",
        "--confirm-before", "2026-02-10", "--date", "2026-02-01",
    )  # fmt: skip
    bal = lambda at: cli.json("balance", "show", "AG-1", "--at", at)["payments"]  # noqa: E731
    assert (bal("2026-01-31"), bal("2026-02-05"), bal("2026-02-15")) == ("0.00", "7.00", "0.00")
    cli.json("payment", "confirm", str(p["id"]), env={"CPAAS_NOW": "2026-03-01T00:00:00+00:00"})
    assert (bal("2026-02-05"), bal("2026-02-15"), bal("2026-03-05")) == ("7.00", "0.00", "7.00")
    cli.json(
        "payment", "unconfirm", str(p["id"]), "--confirm-before", "2026-04-10",
        env={"CPAAS_NOW": "2026-04-01T00:00:00+00:00"},
    )  # fmt: skip
    assert (bal("2026-02-15"), bal("2026-03-05"), bal("2026-04-05"), bal("2026-04-20")) == (
        "0.00",
        "7.00",
        "7.00",
        "0.00",
    )
    cli.json("payment", "delete", str(p["id"]), "--yes")
    assert bal("2026-03-05") == "0.00"


def test_two_processes_ingesting_the_same_file_store_each_edr_once(cli, tmp_path, db_url):
    """Two real OS processes ingest the same file at once, in chunks of 100: both
    succeed, every EDR is stored and charged once, and between them each row was
    inserted by one and skipped by the other."""
    setup(cli)
    path = edr_file(tmp_path / "e.jsonl", [row(i, segments=1) for i in range(1500)])
    done = _twice_at_once(db_url, "edr", "ingest", str(path), "--chunk", "100")
    assert sum(d["inserted"] for d in done) == 1500 and sum(d["skipped"] for d in done) == 1500
    with get_engine(db_url).connect() as conn:
        edrs = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM edr")).one()
        charges = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT edr_id) FROM charge WHERE kind = 'edr'")).one()
    assert tuple(edrs) == (1500, 1500) and tuple(charges) == (1500, 1500)


def _fresh(db_url: str, *args: str) -> tuple[int, str, str]:
    """``cpaas -o json ARGS`` in a new OS process (only the modules its command imports are loaded)."""
    dispose_all()
    cmd = [sys.executable, "-m", "cpaas_cli", "--db", db_url, "-o", "json", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_currency_of_an_agreement_with_charges_is_fixed_in_a_fresh_process(cli, tmp_path, db_url):
    """AMB-14 in a new process: `agreement update --currency` loads no billing
    module, and still sees the charges (and, on another agreement, a payment)."""
    setup(cli)
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(0)])))
    code, out, err = _fresh(db_url, "agreement", "update", "AG-1", "--currency", "USD")
    assert (code, out) == (5, "") and err == "error: agreement 'AG-1' has charges; its currency can no longer change\n"
    cli.json("agreement", "create", "AG-2", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    cli.json("payment", "add", "--agreement", "AG-2", "--reference", "P-1", "--amount", "5", "--confirmed")
    code, _out, err = _fresh(db_url, "agreement", "update", "AG-2", "--currency", "USD")
    assert (code, err) == (5, "error: agreement 'AG-2' has charges; its currency can no longer change\n")
    # a description still changes; the currency stayed
    code, out, _err = _fresh(db_url, "agreement", "update", "AG-1", "--description", "renewed")
    assert code == 0 and (json.loads(out)["currency"], json.loads(out)["description"]) == ("EUR", "renewed")


SENDER_TYPE_TREE = """
service: SMS service
tree:
  sms:
    depends_on: resource
    children:
      sms_message:
        depends_on: direction
        billing_rule: submitted
        quantity_rule: segments
        children:
          mt:
            depends_on: sender_type
            children:
              short_code: {price: "0.01"}
              long_code: {price: "0.02"}
              alphanumeric: {price: "0.03"}
"""


@pytest.mark.parametrize(
    ("sender", "kind", "cost"),
    [
        ("12345", "short_code", "0.01"),
        ("1234567", "short_code", "0.01"),  # rates lookup said long_code (≤ 6), rating short_code (≤ 8)
        ("12345678", "short_code", "0.01"),
        ("123456789", "long_code", "0.02"),
        ("+34600000001", "long_code", "0.02"),  # rating said alphanumeric: the '+' was not a digit
        ("ACME", "alphanumeric", "0.03"),
    ],
)
def test_sender_type_is_one_rule_for_lookup_and_rating(cli, tmp_path, sender, kind, cost):
    """`rates lookup --sender` and the rating of an EDR derive the sender type
    with the same rule: digits only (a leading + aside), at most 8 → short code."""
    setup(cli)
    (tmp_path / "t.yaml").write_text(SENDER_TYPE_TREE)
    cli("service", "tree", "apply", "SMS service", str(tmp_path / "t.yaml"))
    looked = cli.json("rates", "lookup", "--agreement", "AG-1", "--mccmnc", "21401", "--sender", sender)
    assert (looked["price"], looked["matched"]) == (cost, f"sms/sms_message/mt/{kind}")
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(0, sender=sender, segments=1)])))
    rated = cli.json("edr", "show", "x-0")
    assert (rated["cost"], rated["rate_path"]) == (cost, f"sms/sms_message/mt/{kind}")
