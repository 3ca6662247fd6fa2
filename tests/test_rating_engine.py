"""The pure rating engine: hand-computed vectors, packs, billing rules, invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cpaas_cli.catalog import tree as tr
from cpaas_cli.rating import engine as en
from cpaas_cli.rating import lookup as lk
from cpaas_cli.rating.scales import total

T0 = datetime(2026, 3, 1, tzinfo=UTC)
P0 = datetime(2026, 3, 1, tzinfo=UTC)


def snap(leaf: dict, *, scope_id=1, currency="EUR", billing="submitted", qty="messages") -> lk.Snapshot:
    doc = {
        "tree": {
            "sms": {
                "depends_on": "resource",
                "children": {
                    "sms_message": {
                        "depends_on": "direction",
                        "billing_rule": billing,
                        "quantity_rule": qty,
                        "children": {
                            "mo": {"price_type": "free"},
                            "mt": {
                                "depends_on": "country",
                                "children": {"ES": leaf, "FR": {"price_type": "blocked"}, "others": {"price": "0.10"}},
                            },
                        },
                    }
                },
            }
        }
    }
    return lk.Snapshot.of(tr.parse_document(doc), service_id=scope_id, scope_id=scope_id, currency=currency)


def plan(*entries: en.Entry, currency="EUR") -> en.Plan:
    return en.Plan(1, currency, tuple(entries), lambda at: P0 if at >= P0 else None)


def payg(s: lk.Snapshot, eid=10) -> en.Entry:
    return en.Entry(eid, en.PAYG, "payg", T0 - timedelta(days=30), None, ((T0 - timedelta(days=30), None, s),))


def ev(i=0, country="ES", sender="ACME", segments=1, delivered=False, submitted=True, final=True, direction="mt"):
    at = T0 + timedelta(seconds=i)
    return en.Event(
        i,
        at,
        lk.query(channel="sms", direction=direction, country=country),
        segments=segments,
        sender=sender,
        submitted_at=at if submitted else None,
        delivered_at=at if delivered else None,
        final=final,
    )


SCALE = {"type": "tier", "steps": [[1000, "1"], [None, "2"]]}


def run(p: en.Plan, events) -> tuple[list[en.Decision], en.State]:
    state = en.State()
    return en.rate_all(events, p, state), state


def money(ds) -> int:
    return sum(sum(en.money_charge(d)) for d in ds)


def test_seed_1050_tier_and_back_to_first():
    tier = plan(payg(snap({"scale": SCALE})))
    ds, state = run(tier, [ev(i) for i in range(1050)])
    assert money(ds) == (1000 * 1 + 50 * 2) * 1_000_000
    assert all(d.adjustment == 0 for d in ds)
    btf = plan(payg(snap({"scale": {**SCALE, "type": "back_to_first"}})))
    ds, state = run(btf, [ev(i) for i in range(1050)])
    assert money(ds) == 1050 * 2 * 1_000_000
    # the crossing event carries one explicit adjustment re-pricing the first 1,000
    adj = [d for d in ds if d.adjustment]
    assert len(adj) == 1 and adj[0].adjustment == 1000 * 1_000_000 and adj[0].amount == 2_000_000
    assert list(state.counters.values()) == [1050]


def test_counter_group_per_sender():
    p = plan(payg(snap({"scale": SCALE, "counter_group": "sender_id"})))
    events = [ev(i, sender="A") for i in range(700)] + [ev(700 + i, sender="B") for i in range(700)]
    ds, state = run(p, events)
    # each sender counts alone: 700 each, all under the 1,000 threshold
    assert money(ds) == 1400 * 1_000_000
    assert sorted(state.counters.values()) == [700, 700]
    ungrouped = plan(payg(snap({"scale": SCALE})))
    ds, _ = run(ungrouped, events)
    assert money(ds) == (1000 + 400 * 2) * 1_000_000


def test_segments_quantity_and_flat_price():
    p = plan(payg(snap({"price": "0.04"}, qty="segments")))
    ds, _ = run(p, [ev(0, segments=3)])
    assert (ds[0].quantity, ds[0].unit_price, ds[0].amount) == (3, 40_000, 120_000)
    p = plan(payg(snap({"price": "0.04"}, qty="messages")))
    ds, _ = run(p, [ev(0, segments=3)])
    assert ds[0].amount == 40_000


def test_billing_rule_delivered():
    p = plan(payg(snap({"price": "1"}, billing="delivered")))
    pending = en.rate(ev(0, delivered=False, final=False), p, en.State())
    assert pending.state == en.PENDING
    undelivered = en.rate(ev(0, delivered=False, final=True), p, en.State())
    assert undelivered.state == en.RATED and undelivered.amount == 0 and "never" in undelivered.note
    ok = en.rate(ev(0, delivered=True), p, en.State())
    assert ok.state == en.RATED and ok.amount == 1_000_000


def test_rejections_have_reasons():
    p = plan(payg(snap({"price": "1"})))
    assert en.rate(ev(0, country="FR"), p, en.State()).reason == "blocked"
    assert en.rate(ev(0), plan(), en.State()).reason == "no_rate"
    free = en.rate(ev(0, direction="mo"), p, en.State())
    assert (free.state, free.amount, free.note) == (en.RATED, 0, "free")
    late = en.Plan(1, "EUR", p.entries, lambda at: None)
    assert en.rate(ev(0), late, en.State()).reason == "no_agreement"


def test_not_included_moves_to_next_tree():
    first = payg(snap({"price_type": "not_included"}, scope_id=1), eid=10)
    second = payg(snap({"price": "0.50"}, scope_id=2), eid=11)
    d = en.rate(ev(0), plan(first, second), en.State())
    assert (d.amount, d.scope_id) == (500_000, 2)


def test_unit_packs_first_earliest_first_then_payg():
    pack_snap = snap({"price_type": "included"}, scope_id=5, qty="segments")
    a = en.Entry(1, en.PACK, "unit-pack", T0 - timedelta(days=2), None, ((T0 - timedelta(days=9), None, pack_snap),), 4)
    b = en.Entry(2, en.PACK, "unit-pack", T0 - timedelta(days=1), None, ((T0 - timedelta(days=9), None, pack_snap),), 3)
    p = plan(a, b, payg(snap({"price": "1"})))
    ds, state = run(p, [ev(i, segments=2) for i in range(4)])
    assert [d.pack_id for d in ds] == [1, 1, 2, None]  # 2+2 from a, 2 from b (1 left < 2), then pay
    assert state.pack_used == {1: 4, 2: 2}
    assert money(ds) == 1_000_000
    # FR is not included in the pack tree → pay-as-you-go even when units are left
    assert en.rate(ev(9, country="FR"), p, en.State()).reason == "blocked"


def test_monetary_pack_pays_payg_price():
    pack_snap = snap({"price_type": "included"}, scope_id=5)
    m = en.Entry(
        3,
        en.PACK,
        "monetary-pack",
        T0 - timedelta(days=2),
        None,
        ((T0 - timedelta(days=9), None, pack_snap),),
        2_500_000,
    )
    p = plan(m, payg(snap({"price": "1"})))
    ds, state = run(p, [ev(i) for i in range(3)])
    assert [d.pack_id for d in ds] == [3, 3, None]
    assert state.pack_used == {3: 2_000_000} and money(ds) == 1_000_000


STEPS = st.lists(st.integers(1, 50), min_size=1, max_size=3, unique=True).map(sorted)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["tier", "back_to_first"]),
    thresholds=STEPS,
    prices=st.lists(st.integers(1, 9), min_size=4, max_size=4),
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=40),
)
def test_scale_charges_sum_to_total(kind, thresholds, prices, sizes):
    steps = [[t, str(prices[i])] for i, t in enumerate(thresholds)] + [[None, str(prices[-1])]]
    p = plan(payg(snap({"scale": {"type": kind, "steps": steps}}, qty="segments")))
    ds, state = run(p, [ev(i, segments=s) for i, s in enumerate(sizes)])
    micro = [(u, int(pr) * 1_000_000) for u, pr in steps]
    assert money(ds) == total(kind, micro, sum(sizes))
    assert sum(state.counters.values()) == sum(sizes)
    # rating is a function of (event, state): the same inputs give the same decision
    again, _ = run(p, [ev(i, segments=s) for i, s in enumerate(sizes)])
    assert [d.explain() for d in again] == [d.explain() for d in ds]


def test_sub_cent_prices_stay_exact_per_event():
    """A2P prices below one cent are charged exactly (no rounding of an event to cents)."""
    p = plan(payg(snap({"price": "0.004"})))
    ds, _ = run(p, [ev(i) for i in range(3)])
    assert [sum(en.money_charge(d)) for d in ds] == [4000, 4000, 4000]
    scaled = plan(payg(snap({"scale": {"type": "tier", "steps": [[2, "0.0055"], [None, "0.0045"]]}})))
    ds, _ = run(scaled, [ev(i) for i in range(3)])
    assert money(ds) == 5500 + 5500 + 4500


def test_memoised_routes_follow_scope_and_entry_boundaries():
    """One plan rates a stream of events across the instants where a scope
    ends and the next starts, a pack ends and a second tree starts (events at
    those very instants included); each decision equals the one a new plan,
    with nothing memoised, gives for the same event and state."""
    t1, t2, t3 = T0 + timedelta(seconds=40), T0 + timedelta(seconds=80), T0 + timedelta(seconds=120)
    old, new = snap({"price": "0.04"}, scope_id=1), snap({"price": "0.05"}, scope_id=2)
    pack_tree = snap({"price_type": "included"}, scope_id=3)
    other = snap({"price_type": "not_included"}, scope_id=4)
    entries = (
        en.Entry(7, en.PACK, "unit-pack", T0, t2, ((T0, None, pack_tree),), 25),
        en.Entry(10, en.PAYG, "payg", t3, None, ((t3, None, other),)),
        en.Entry(
            11, en.PAYG, "payg", T0 - timedelta(days=1), None, ((T0 - timedelta(days=1), t1, old), (t1, None, new))
        ),
    )

    def fresh() -> en.Plan:
        return en.Plan(1, "EUR", entries, lambda at: P0 if at >= P0 else None)

    events = [
        ev(i, country=c, segments=1 + i % 2, direction="mo" if i % 17 == 0 else "mt")
        for i in range(-5, 160)
        for c in ("ES", "FR", "DE")
    ]
    queries: dict[tuple, dict] = {}
    for e in events[: len(events) // 2]:  # the first half shares its query dicts, as edr ingest does
        e.query = queries.setdefault(tuple(e.query.items()), e.query)
    shared, state = fresh(), en.State()
    seen = set()
    for e in events:
        want = en.rate(e, fresh(), state)
        got = en.rate(e, shared, state)
        assert got == want, (e.at, e.query)
        en.apply(state, got)
        seen.add((got.source, got.scope_id, got.reason, got.unit_price))
    # the stream met each answer: pack, both scopes of the price tree, blocked, no period before P0
    assert {(en.PACK, 3), (en.PAYG, 1), (en.PAYG, 2)} <= {(s, sc) for s, sc, _r, _p in seen}
    assert {"blocked", "no_agreement"} <= {r for _s, _sc, r, _p in seen}
    # one route per (stretch, query); identity entries only for the dicts that first asked
    assert 3 < len(shared._routes) < len(events) / 3
    assert 0 < len(shared._by_query) <= len(shared._routes)
