"""Chain-rating properties (RAT-10) with hypothesis, on the real database.

One tenant tree per test, chains of depth 1 to 4:

    owner ─ C1                       (C1-A sold by the owner at plan P0)
      └ R1 ─ C2                      (C2-A sold by R1 at P1; R1 buys on R1-PUR at P0)
          └ R2 ─ C3                  (C3-A sold by R2 at P2; R2 buys on R2-PUR at P1)
              └ R3 ─ C4              (C4-A sold by R3 at P3; R3 buys on R3-PUR at P2)

Flat prices per destination and part, different at every plan; P1 has no DE
price, so a DE message of C2, C3 or C4 is refused at the level that buys at
P1. R2 has a credit limit, so its clients' traffic is refused once it is used
up. The oracle below is plain arithmetic over the same events: it knows
nothing of the rater.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cpaas_cli.db.engine import get_engine, make_session
from tests.helpers import owner_le
from tests.test_catalog import write_csv
from tests.test_reseller_chain import link, service, tree

PRICES = {  # micro-units per part
    0: {"ES": 11_000, "FR": 12_000, "DE": 13_000},
    1: {"ES": 21_000, "FR": 22_000},
    2: {"ES": 31_000, "FR": 32_000, "DE": 33_000},
    3: {"ES": 41_000, "FR": 42_000, "DE": 43_000},
}
CHAIN = {
    1: ["C1-A"],
    2: ["C2-A", "R1-PUR"],
    3: ["C3-A", "R2-PUR", "R1-PUR"],
    4: ["C4-A", "R3-PUR", "R2-PUR", "R1-PUR"],
}
PLAN_OF = {"C1-A": 0, "R1-PUR": 0, "C2-A": 1, "R2-PUR": 1, "C3-A": 2, "R3-PUR": 2, "C4-A": 3}
R2_CREDIT = 250_000  # R2 may owe 0.25: used up within a few examples
PHONES = {"ES": ("34600", "21401"), "FR": ("33600", "20801"), "DE": ("49151", "26201")}
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
_ids = itertools.count(1)


def _price(v: int) -> str:
    return f"{v / 1_000_000:.6f}"


def _plan_tree(k: int) -> dict:
    p = PRICES[k]
    return tree(_price(p["ES"]), _price(p["FR"]), de=_price(p["DE"]) if "DE" in p else None)


def _company(cli, name: str, *, parent: str | None, reseller: bool, n: int) -> None:
    args = ["tenant", "create", name] + (["--parent", parent] if parent else [])
    if reseller:
        args += ["--type", "reseller", "--creator-of-resellers"]
    cli.json(*args)
    extra = ["--legal-id", f"B{n:08d}"] if reseller else []
    cli.json(
        "tenant", "legal-entity", "add", f"{name} LE", "--company", name, "--legal-name", f"{name} Legal",
        "--country", "ES", *extra,
    )  # fmt: skip


def build(cli, tmp_path) -> None:
    owner_le(cli)
    seller = None
    for n in (1, 2, 3):
        _company(cli, f"R{n}", parent=seller, reseller=True, n=n)
        credit = ["--credit-limit", _price(R2_CREDIT)] if n == 2 else []
        cli.json("agreement", "create", f"R{n}-PUR", "--company", f"R{n}", "--currency", "EUR", "--from", "2026-01-01",
                 *credit)  # fmt: skip
        seller = f"R{n}"
    for n, parent in ((1, None), (2, "R1"), (3, "R2"), (4, "R3")):
        _company(cli, f"C{n}", parent=parent, reseller=False, n=10 + n)
        cli.json("agreement", "create", f"C{n}-A", "--company", f"C{n}", "--currency", "EUR", "--from", "2026-01-01")
    owners = {0: None, 1: "R1", 2: "R2", 3: "R3"}
    for k in range(4):
        service(cli, tmp_path, f"P{k}", _plan_tree(k), owner=owners[k])
    for ag, k in PLAN_OF.items():
        cli.json("agreement", "enable", f"P{k}", "--agreement", ag, "--from", "2026-01-01")
    for n in (1, 2, 3):
        link(cli, f"R{n}", f"R{n}-PUR")


def ledger(cli) -> dict[str, int]:
    with make_session(get_engine(cli.url), actor="pytest") as s:
        rows = s.execute(
            sa.text(
                "SELECT a.code, COALESCE(SUM(c.amount), 0) FROM agreement a "
                "LEFT JOIN charge c ON c.agreement_id = a.id GROUP BY a.code"
            )
        ).all()
    return {code: int(total) for code, total in rows}


def ingest(cli, tmp_path, events: list[tuple[int, str, int]]) -> list[str]:
    """Events (depth, country, parts) as an EDR file, one second apart; their external ids."""
    head = ["external_id", "agreement", "sender", "destination", "mccmnc", "segments", "submitted_at", "status"]
    rows, ids = [head], []
    start = T0 + timedelta(minutes=next(_ids))
    for i, (depth, cc, parts) in enumerate(events):
        ext = f"p{next(_ids)}"
        ids.append(ext)
        prefix, mccmnc = PHONES[cc]
        at = (start + timedelta(seconds=i)).isoformat()
        rows.append([ext, CHAIN[depth][0], "ACME", f"{prefix}{i:05d}", mccmnc, str(parts), at, "submitted"])
    path = tmp_path / f"e{ids[0]}.csv"
    write_csv(path, rows)
    got = cli.json("edr", "ingest", str(path))
    assert got["inserted"] == len(events)
    return ids


def oracle(events: list[tuple[int, str, int]], r2_headroom: int) -> tuple[dict[str, int], list[bool]]:
    """What each agreement is charged, and which events go: every level's price, all or none."""
    delta: dict[str, int] = {}
    went = []
    for depth, cc, parts in events:
        chain = CHAIN[depth]
        costs = [PRICES[PLAN_OF[a]].get(cc) for a in chain]
        if any(c is None for c in costs):
            went.append(False)
            continue
        costs = [c * parts for c in costs]  # type: ignore[operator]
        if "R2-PUR" in chain and costs[chain.index("R2-PUR")] > r2_headroom:
            went.append(False)
            continue
        for a, c in zip(chain, costs, strict=True):
            delta[a] = delta.get(a, 0) + c
        if "R2-PUR" in chain:
            r2_headroom -= costs[chain.index("R2-PUR")]
        went.append(True)
    return delta, went


EVENTS = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from(["ES", "FR", "DE"]), st.integers(1, 3)), min_size=1, max_size=12
)
SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def test_every_level_is_charged_its_own_prices_or_none_is(cli, tmp_path):
    build(cli, tmp_path)

    @SETTINGS
    @given(events=EVENTS)
    @example(events=[(3, "ES", 3)] * 5 + [(4, "FR", 1), (1, "DE", 2), (4, "ES", 2)])
    def run(events):
        # R2 is topped up to R2_CREDIT of room before each example: its limit is met within one
        avail = int(Decimal(cli.json("balance", "show", "R2-PUR")["available"]) * 1_000_000)
        if avail < R2_CREDIT:
            cli.json("payment", "add", "--agreement", "R2-PUR", "--reference", f"T{next(_ids)}", "--amount",
                     _price(R2_CREDIT - avail), "--confirmed", "--date", "2026-06-01")  # fmt: skip
        before = ledger(cli)
        headroom = R2_CREDIT
        expected, went = oracle(events, headroom)
        ids = ingest(cli, tmp_path, events)
        after = ledger(cli)
        assert {a: after[a] - before[a] for a in after if after[a] != before[a]} == {
            a: v for a, v in expected.items() if v
        }
        states = [cli.json("edr", "show", e)["rating_state"] for e in ids]
        assert states == ["rated" if w else "rejected" for w in went]

    run()


def test_rerate_of_one_level_leaves_the_others_and_invoices_reconcile(cli, tmp_path):
    build(cli, tmp_path)

    @SETTINGS
    @given(events=EVENTS, bump=st.integers(1, 9))
    def run(events, bump):
        ingest(cli, tmp_path, events)
        before = ledger(cli)
        # R1's plan P1 moves: ES and FR up by `bump` thousandths. Only the agreements that buy at P1 change.
        PRICES[1] = {"ES": 21_000 + bump * 1_000, "FR": 22_000 + bump * 1_000}
        try:
            (tmp_path / "p1.json").write_text(json.dumps(_plan_tree(1)))
            cli("service", "tree", "apply", "P1", str(tmp_path / "p1.json"))
            task = cli.json(
                "rerate", "create", "--from", "2026-06-01", "--till", "2026-06-02", "--company", "R2",
                "--agreement", "R2-PUR", "--draft",
            )  # fmt: skip
            done = cli.json("rerate", "run", str(task["id"]))
            assert done["status"] == "completed"
            after = ledger(cli)
            # every other level is unchanged
            assert {a: v for a, v in after.items() if a != "R2-PUR"} == {
                a: v for a, v in before.items() if a != "R2-PUR"
            }
            # R2-PUR now holds P1's new prices applied to the parts of its reseller CDRs
            with make_session(get_engine(cli.url), actor="pytest") as s:
                rows = s.execute(
                    sa.text(
                        "SELECT e.country, l.quantity FROM edr_level l JOIN edr e ON e.id = l.edr_id "
                        "JOIN agreement a ON a.id = l.agreement_id WHERE a.code = 'R2-PUR'"
                    )
                ).all()
            assert after["R2-PUR"] == sum(PRICES[1][cc] * q for cc, q in rows)
        finally:
            PRICES[1] = {"ES": 21_000, "FR": 22_000}
            (tmp_path / "p1.json").write_text(json.dumps(_plan_tree(1)))
            cli("service", "tree", "apply", "P1", str(tmp_path / "p1.json"))
            cli.json(
                "rerate", "run",
                str(cli.json("rerate", "create", "--from", "2026-06-01", "--till", "2026-06-02", "--company", "R2",
                             "--agreement", "R2-PUR", "--draft")["id"]),
            )  # fmt: skip

    run()
    # Invoices per level: each one's charges total is exactly that agreement's ledger.
    made = cli.json("invoice", "run", "--as-of", "2026-07-01T00:00:00Z")
    totals = ledger(cli)
    for inv in made:
        shown = cli.json("invoice", "show", str(inv["id"]))
        assert int(Decimal(shown["charges_total"]) * 1_000_000) == totals[inv["agreement"]]
    assert {i["agreement"] for i in made} == {a for a, v in totals.items() if v}
