"""Invoice run throughput: 1,000 agreements, 1,000,000 rated EDRs with their charges.

A fresh database (temporary SQLite file, or --db URL of an empty PostgreSQL
database) is migrated; companies, legal entities, agreements (monthly, billing
day 1), EDRs and charges are bulk-inserted directly (March 2026, spread over
countries and networks, sub-cent amounts). Then ``invoice run --as-of
2026-04-01`` is timed (one draft per agreement, lines by GROUP BY), then a
second run (nothing new) and a recalculation after 1,000 late charges.

    .venv/bin/python benchmarks/invoice.py [--agreements 1000] [--edrs 1000000] [--db URL]

Target: the first run ≤ 30 s on SQLite.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from cpaas_cli.db.engine import dispose_all, get_engine, session_scope
from cpaas_cli.db.migrate import upgrade
from cpaas_cli.invoices import service as invoices
from cpaas_cli.models.all import Agreement, AgreementVersion, Company, LegalEntity
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.edr import Edr

T0 = datetime(2026, 3, 1, tzinfo=UTC)
COUNTRIES = [("ES", "Movistar"), ("ES", "Vodafone"), ("FR", "Orange"), ("FR", "SFR"), ("DE", "Telekom"), ("IT", "TIM")]


def populate(url: str, n_ag: int, n_edr: int) -> None:
    eng = get_engine(url)
    now = datetime.now(UTC)
    ts = {"created_at": now, "updated_at": now}
    with eng.begin() as c:
        if c.execute(sa.select(Company.__table__.c.id).where(Company.__table__.c.id == 1)).first() is None:
            c.execute(sa.insert(Company.__table__), [{"id": 1, "name": "Owner", "kind": "owner", "enabled": True,
                                                      "creator_of_resellers": True, **ts}])  # fmt: skip
        owner_le = c.execute(
            sa.insert(LegalEntity.__table__).returning(LegalEntity.__table__.c.id),
            [{"company_id": 1, "name": "Hub", "legal_name": "Hub SL", "country": "ES", "is_default": True, **ts}],
        ).scalar_one()
        base = c.execute(sa.select(sa.func.coalesce(sa.func.max(Company.__table__.c.id), 0))).scalar()
        c.execute(
            sa.insert(Company.__table__),
            [{"id": base + i + 1, "name": f"C{i}", "kind": "client", "parent_id": 1, "enabled": True,
              "creator_of_resellers": False, **ts} for i in range(n_ag)],
        )  # fmt: skip
        c.execute(
            sa.insert(LegalEntity.__table__),
            [{"id": owner_le + i + 1, "company_id": base + i + 1, "name": f"C{i} LE", "legal_name": f"C{i} Ltd",
              "country": "FR", "is_default": True, **ts} for i in range(n_ag)],
        )  # fmt: skip
        c.execute(
            sa.insert(Agreement.__table__),
            [{"id": i + 1, "code": f"AG-{i}", "seller_company_id": 1, "company_id": base + i + 1, "direction": "CLIENT",
              "legal_entity_id": owner_le + i + 1, "own_legal_entity_id": owner_le, "agreement_date": date(2026, 1, 1),
              "currency": "EUR", "effective_from": datetime(2026, 1, 1, tzinfo=UTC), "effective_from_tz": "UTC",
              "effective_till_tz": "UTC", **ts} for i in range(n_ag)],
        )  # fmt: skip
        c.execute(
            sa.insert(AgreementVersion.__table__),
            [{"agreement_id": i + 1, "effective_from": datetime(2026, 1, 1, tzinfo=UTC), "tz": "UTC",
              "billing_period": "monthly", "billing_day": 1, "split_by_month": False, "billing_tz": "UTC",
              "days_for_payment": 30, "emails": {}, "tax_rate": 20_000_000, **ts} for i in range(n_ag)],
        )  # fmt: skip
    rnd = random.Random(1)
    chunk = 100_000
    span = 31 * 86400
    for lo in range(0, n_edr, chunk):
        edrs, charges = [], []
        for k in range(lo, min(n_edr, lo + chunk)):
            ag = k % n_ag + 1
            country, network = COUNTRIES[rnd.randrange(len(COUNTRIES))]
            at = T0 + timedelta(seconds=rnd.randrange(span))
            seg = rnd.choice((1, 1, 1, 2, 3))
            price = rnd.choice((3_500, 4_000, 41_250, 7_777))
            edrs.append(
                {"id": k + 1, "company_id": base + ag, "agreement_id": ag, "channel": "sms", "direction": "mt",
                 "country": country, "network": network, "segments": seg, "status": "delivered", "event_at": at,
                 "rating_state": "rated", "service_id": None, "unit_price": price, "quantity": seg,
                 "cost": price * seg, "currency": "EUR", "ingested_at": now}
            )  # fmt: skip
            charges.append(
                {"agreement_id": ag, "kind": "edr", "edr_id": k + 1, "amount": price * seg, "currency": "EUR",
                 "at": at, "period_start": T0, "details": {}, "created_at": now}
            )  # fmt: skip
        with eng.begin() as c:
            c.execute(sa.insert(Edr.__table__), edrs)
            c.execute(sa.insert(Charge.__table__), charges)
    with eng.begin() as c:
        if eng.dialect.name == "postgresql":
            c.execute(sa.text("ANALYZE"))


def timed(url: str, label: str, **kw) -> dict:
    eng = get_engine(url)
    t = time.perf_counter()
    with session_scope(eng, actor="bench", command="invoice run") as s:
        res = invoices.run(s, as_of=datetime(2026, 4, 1, tzinfo=UTC), **kw)
    dt = time.perf_counter() - t
    print(
        f"{label}: {dt:.2f} s  created={res['created']} recalculated={res['recalculated']} unchanged={res['unchanged']}"
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agreements", type=int, default=1000)
    ap.add_argument("--edrs", type=int, default=1_000_000)
    ap.add_argument("--db", help="database URL (an empty database); default a temporary SQLite file")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = a.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        t = time.perf_counter()
        populate(url, a.agreements, a.edrs)
        print(f"backend {get_engine(url).dialect.name}: {a.agreements} agreements, {a.edrs} EDR charges "
              f"(setup {time.perf_counter() - t:.1f} s)")  # fmt: skip
        res = timed(url, "invoice run (3 closed periods per agreement, only March with charges)")
        timed(url, "second run (nothing new)")
        eng = get_engine(url)
        now = datetime.now(UTC)
        with eng.begin() as c:
            c.execute(
                sa.insert(Charge.__table__),
                [{"agreement_id": i + 1, "kind": "fee", "amount": 1_234_567, "currency": "EUR",
                  "at": T0 + timedelta(days=3), "details": {"description": "late"}, "created_at": now}
                 for i in range(a.agreements)],
            )  # fmt: skip
        timed(url, "run after one late charge per agreement (recalculate drafts)")
        total = sum(int(x["charge_count"]) for x in res["invoices"])
        print(f"charges invoiced in the first run: {total}")
        dispose_all()


if __name__ == "__main__":
    main()
