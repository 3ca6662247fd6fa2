"""The rerate unit rule (rerate/units.py) on plain values: no database."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cpaas_cli.billing.periods import VersionTerms
from cpaas_cli.catalog import tree as tr
from cpaas_cli.rating import engine as en
from cpaas_cli.rating import lookup as lk
from cpaas_cli.rerate import units
from tests.test_rerate import TIER_A, tree

MARCH, APRIL, MAY = (datetime(2026, m, 1, tzinfo=UTC) for m in (3, 4, 5))
MONTHLY = [
    VersionTerms(
        effective_from=datetime(2026, 1, 1, tzinfo=UTC), effective_till=None, billing_period="monthly", billing_day=1
    )
]


def plan() -> en.Plan:
    snap = lk.Snapshot.of(tr.parse_document(tree(TIER_A)), service_id=1, scope_id=1, currency="EUR")
    far = datetime(2026, 1, 1, tzinfo=UTC)
    entry = en.Entry(1, en.PAYG, "payg", far, None, ((far, None, snap),))
    return en.Plan(1, "EUR", (entry,), lambda t: t.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def event(prepared: datetime, submitted: datetime | None) -> en.Event:
    q = lk.query(channel="sms", direction="mt", mccmnc="20801", country="FR")
    return en.Event(1, prepared, q, submitted_at=submitted, final=submitted is None)


def test_window_periods_are_whole_periods_once_with_the_window_inside_each():
    got = units.window_periods(MONTHLY, MARCH + timedelta(days=10), APRIL + timedelta(days=5))
    assert [(p.start, p.end, lo, hi) for p, lo, hi in got] == [
        (MARCH, APRIL, MARCH + timedelta(days=10), APRIL),
        (APRIL, MAY, APRIL, APRIL + timedelta(days=5)),
    ]
    assert units.window_periods(MONTHLY, MARCH, MARCH + timedelta(hours=1))[0][0].end == APRIL


def test_spans_reach_straddle_lag_across_a_boundary():
    (p, lo, hi), _ = units.window_periods(MONTHLY, MARCH, MAY)
    assert units.arriving_span(p) == (MARCH - units.STRADDLE_LAG, MARCH)
    assert units.leaving_span(p) == (APRIL - units.STRADDLE_LAG, APRIL)
    # a window ending before the last week of the period: nothing can leave from it
    assert units.leaving_span(p, lo, MARCH + timedelta(days=3)) == (
        APRIL - units.STRADDLE_LAG,
        MARCH + timedelta(days=3),
    )


def test_a_straddler_belongs_to_the_period_of_its_charge():
    pl = plan()
    late = APRIL - timedelta(minutes=1)
    assert units.owner(pl, event(late, APRIL + timedelta(minutes=1))) == APRIL
    assert units.owner(pl, event(late, late)) == MARCH
    assert units.owner(pl, event(late, None)) == MARCH  # never submitted: no charge, its own period
    early = APRIL - units.STRADDLE_LAG - timedelta(seconds=1)
    assert units.owner(pl, event(early, APRIL + timedelta(hours=1))) == MARCH
    # only periods from ``end`` on; May is more than STRADDLE_LAG after March's event
    evs = [event(late, APRIL + timedelta(minutes=1)), event(late, late), event(late, MAY + timedelta(days=1))]
    assert units.later_owners(pl, evs, APRIL) == {APRIL}
    evs.append(event(MAY - timedelta(hours=1), MAY + timedelta(hours=1)))
    assert units.later_owners(pl, evs, APRIL) == {APRIL, MAY}
    assert units.later_owners(pl, evs, MAY) == {MAY}


def test_the_rule_module_touches_no_database():
    source = Path(units.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported  # the walk saw the imports
    assert not {
        m for m in imported if m.split(".")[0] in ("sqlalchemy", "sqlmodel") or ".db" in m or m.endswith("service")
    }
    assert "Session" not in source
