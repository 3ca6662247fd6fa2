"""Rerate tasks: tier scale across a price change, packs, invoices, restart
(an exception between units, and SIGKILL of a real `cpaas rerate run`),
idempotence, EDRs straddling a billing-period boundary."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import sqlalchemy as sa
import yaml

from cpaas_cli.db.engine import dispose_all, get_engine, make_session
from cpaas_cli.rerate import tasks as rerate
from tests.conftest import PG_URL, Cli, _pg_admin_url, _pg_exec
from tests.test_money_cli import edr_file, row, setup

TIER_A = {"type": "tier", "steps": [[3, "0.05"], [None, "0.03"]]}
TIER_B = {"type": "tier", "steps": [[2, "0.10"], [None, "0.02"]]}


def tree(scale: dict, *, es_price: str = "0.04", quantity_rule: str = "segments") -> dict:
    return {
        "service": "SMS service",
        "tree": {
            "sms": {
                "depends_on": "resource",
                "children": {
                    "sms_message": {
                        "depends_on": "direction",
                        "billing_rule": "submitted",
                        "quantity_rule": quantity_rule,
                        "children": {
                            "mo": {"price_type": "free"},
                            "mt": {
                                "depends_on": "country",
                                "children": {"ES": {"price": es_price}, "others": {"scale": scale}},
                            },
                        },
                    }
                },
            }
        },
    }


def apply(cli, tmp_path, doc: dict, service: str = "SMS service") -> None:
    p = tmp_path / "tree.yaml"
    p.write_text(yaml.safe_dump(doc))
    cli("service", "tree", "apply", service, str(p))


def french(i: int, day: int = 1, **kw) -> dict:
    return row(i, mccmnc="20801", segments=1, prepared_at=f"2026-03-{day:02d}T10:00:{i:02d}Z",
               submitted_at=f"2026-03-{day:02d}T10:00:{i:02d}Z", **kw)  # fmt: skip


def ledger_sum(cli) -> tuple[int, int]:
    eng = get_engine(cli.url)
    with eng.connect() as c:
        charged = c.execute(sa.text("SELECT COALESCE(SUM(amount), 0) FROM charge")).scalar()
        spent = c.execute(sa.text("SELECT COALESCE(SUM(spent), 0) FROM agreement_balance")).scalar()
    return int(charged), int(spent)


def create(cli, *extra: str, frm="2026-03-01T10:00:00Z", till="2026-03-01T10:00:03Z") -> dict:
    return cli.json("rerate", "create", "--from", frm, "--till", till, "--company", "Client A", "--draft", *extra)


def test_tier_price_change_mid_month_whole_period(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [french(i) for i in range(5)])))
    # tier A: 3 × 0.05 + 2 × 0.03
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.21"
    apply(cli, tmp_path, tree(TIER_B))
    t = create(cli)
    assert (t["status"], t["estimated"]) == ("draft", 5)  # widened to the whole March period
    prev = cli.json("rerate", "preview", str(t["id"]))
    ag = prev["agreements"][0]
    # tier B: 2 × 0.10 + 3 × 0.02; the threshold is crossed earlier
    assert (ag["old_cost"], ag["new_cost"], ag["delta"], ag["edrs"], ag["cost_changed"]) == (
        "0.21", "0.26", "0.05", 5, 5)  # fmt: skip
    assert prev["destinations"][0]["country"] == "FR"
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.21"  # dry run wrote nothing
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["status"], done["processed"], done["updated"], done["unchanged"], done["failed"]) == (
        "completed", 5, 5, 0, 0)  # fmt: skip
    assert done["run_by"] and done["started_at"]
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.26"
    # EDRs of the same period outside the window are re-priced too (x-4 at 10:00:04)
    outside = cli.json("edr", "show", "x-4")
    assert outside["cost"] == "0.02" and sum(float(c["amount"]) for c in outside["charges"]) == pytest.approx(0.02)
    assert [c["kind"] for c in outside["charges"]] == ["edr", "rerate"]
    charged, spent = ledger_sum(cli)
    assert charged == spent == 260_000
    # idempotent: the same window again with unchanged rates updates nothing
    again = cli.json("rerate", "run", str(create(cli)["id"]))
    assert (again["processed"], again["updated"], again["unchanged"]) == (5, 0, 5)
    assert ledger_sum(cli) == (260_000, 260_000)
    cli("rerate", "run", str(t["id"]), expect=5)  # completed
    # new EDRs rated afterwards continue from the recomputed counter (5 units: price 0.02)
    cli.json("edr", "ingest", str(edr_file(tmp_path / "f.jsonl", [french(9, day=2)])))
    assert cli.json("edr", "show", "x-9")["cost"] == "0.02"


def test_newly_no_rate_reported_and_refunded(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(0), french(1)])))
    doc = tree(TIER_A)
    doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]["ES"] = {"price_type": "not_included"}
    apply(cli, tmp_path, doc)
    t = create(cli, till="2026-03-02T00:00:00Z")
    prev = cli.json("rerate", "preview", str(t["id"]))
    assert prev["state_changed"] == 1
    assert prev["state_changes"][0]["external_id"] == "x-0"
    assert prev["state_changes"][0]["to"] == "rejected/no_rate"
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["processed"], done["updated"], done["unchanged"], done["failed"]) == (2, 0, 1, 1)
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.05"
    again = cli.json("rerate", "run", str(create(cli, till="2026-03-02T00:00:00Z")["id"]))
    assert (again["updated"], again["unchanged"], again["failed"], again["report"]["state_changed"]) == (0, 1, 1, 0)


@pytest.mark.parametrize(("chunk", "per_statement"), [(2, 100), (2, 1), (1000, 2)])
def test_many_small_chunks_give_the_result_of_one(cli, tmp_path, monkeypatch, chunk, per_statement):
    """Chunks of two EDRs: on PostgreSQL each chunk's writes overlap the rating
    of the next one. Money-only updates (the French tier) and full ones (Spain
    newly without a rate) alternate within the chunks. On SQLite the ledger rows
    and price updates go ``per_statement`` rows per INSERT (whole statements
    and a shorter last one)."""
    from cpaas_cli.db import bulk
    from cpaas_cli.rerate import loop

    monkeypatch.setattr(bulk, "ROWS_PER_STATEMENT", per_statement)
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    rows = [french(i) if i % 2 == 0 else row(i) for i in range(7)]  # FR 0, 2, 4, 6; ES 1, 3, 5 (2 segments)
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.42"  # FR 3 × 0.05 + 0.03; ES 3 × 0.08
    doc = tree(TIER_B)
    doc["tree"]["sms"]["children"]["sms_message"]["children"]["mt"]["children"]["ES"] = {"price_type": "not_included"}
    apply(cli, tmp_path, doc)
    monkeypatch.setattr(loop, "CHUNK", chunk)
    done = cli.json("rerate", "run", str(create(cli)["id"]))
    assert (done["processed"], done["updated"], done["unchanged"], done["failed"]) == (7, 4, 0, 3)
    costs = {f"x-{i}": cli.json("edr", "show", f"x-{i}") for i in range(7)}
    assert [costs[f"x-{i}"]["cost"] for i in (0, 2, 4, 6)] == ["0.10", "0.10", "0.02", "0.02"]
    assert {costs[f"x-{i}"]["rating_state"] for i in (1, 3, 5)} == {"rejected"}
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.24"
    assert ledger_sum(cli) == (240_000, 240_000)
    again = cli.json("rerate", "run", str(create(cli)["id"]))
    assert (again["updated"], again["unchanged"], again["failed"]) == (0, 4, 3)
    assert ledger_sum(cli) == (240_000, 240_000)


def test_pack_exhausted_earlier(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    pack = {
        "tree": {
            "sms": {
                "children": {
                    "sms_message": {
                        "depends_on": "country",
                        "quantity_rule": "messages",
                        "children": {"ES": {"price_type": "included"}, "others": {"price_type": "not_included"}},
                    }
                }
            }
        }
    }
    cli.json("service", "create", "Spain 4", "--type", "unit-pack", "--size", "4")
    cli.json("service", "scope", "add", "Spain 4", "--from", "2026-01-01")
    apply(cli, tmp_path, pack, "Spain 4")
    cli.json("agreement", "enable", "Spain 4", "--agreement", "AG-1", "--from", "2026-02-01", "--free")
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [row(i) for i in range(3)])))  # 2 segments each
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.00"  # 3 of 4 messages from the pack
    pack["tree"]["sms"]["children"]["sms_message"]["quantity_rule"] = "segments"
    apply(cli, tmp_path, pack, "Spain 4")
    t = create(cli)
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["updated"], done["unchanged"]) == (3, 0)  # pack units change on all three
    third = cli.json("edr", "show", "x-2")
    assert (third["pack_enabled_id"], third["cost"]) == (None, "0.08")  # the pack ran out after two
    assert cli.json("balance", "show", "AG-1")["charges"] == "0.08"
    s = make_session(get_engine(cli.url))
    assert s.execute(sa.text("SELECT used FROM pack_usage")).scalar() == 4
    s.close()
    again = cli.json("rerate", "run", str(create(cli)["id"]))
    assert (again["updated"], again["unchanged"]) == (0, 3)
    s = make_session(get_engine(cli.url))
    assert s.execute(sa.text("SELECT used FROM pack_usage")).scalar() == 4
    s.close()


def test_confirmed_invoice_gets_correction_on_next(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", [french(i) for i in range(5)])))
    cli.json("invoice", "run", "--as-of", "2026-04-02")
    march = next(i for i in cli.json("invoice", "list") if i["local_start_date"] == "2026-03-01")
    cli.json("invoice", "confirm", str(march["id"]), "--at", "2026-04-02")
    before = cli.json("invoice", "show", str(march["id"]))
    apply(cli, tmp_path, tree(TIER_B))
    cli.json("rerate", "run", str(create(cli)["id"]))
    assert cli.json("invoice", "show", str(march["id"])) == before  # confirmed: never changed
    cli.json("invoice", "run", "--as-of", "2026-05-02")
    april = next(i for i in cli.json("invoice", "list") if i["local_start_date"] == "2026-04-01")
    lines = cli.json("invoice", "show", str(april["id"]))["lines"]
    corr = [ln for ln in lines if "correction" in ln["description"]]
    assert len(corr) == 1 and corr[0]["exact"] == "0.05" and "re-rating" in corr[0]["description"]


def test_kill_and_rerun_equals_clean_run(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    rows = [french(i) for i in range(4)] + [french(i, day=1, mccmnc="20801") for i in ()]
    rows += [{**french(10 + i), "prepared_at": f"2026-04-0{i + 1}T10:00:00Z",
              "submitted_at": f"2026-04-0{i + 1}T10:00:00Z"} for i in range(3)]  # fmt: skip
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    apply(cli, tmp_path, tree(TIER_B))
    t = create(cli, till="2026-05-01T00:00:00Z")
    s = make_session(get_engine(cli.url), actor="test")

    def die(n: int) -> None:
        raise KeyboardInterrupt("killed after unit 1")

    with pytest.raises(KeyboardInterrupt):
        rerate.run(s, t["id"], after_unit=die)
    s.close()
    mid = cli.json("rerate", "show", str(t["id"]))
    assert mid["status"] == "running"  # the process died: no final state was written
    assert ledger_sum(cli)[0] == ledger_sum(cli)[1]
    done = cli.json("rerate", "run", str(t["id"]))
    assert (done["status"], done["processed"], done["updated"], done["report"]["units"]) == ("completed", 7, 7, 2)
    # equals the figures of a clean run: March 2×0.10+2×0.02, April 2×0.10+0.02
    assert ledger_sum(cli) == (460_000, 460_000)
    again = cli.json("rerate", "run", str(create(cli, till="2026-05-01T00:00:00Z")["id"]))
    assert again["updated"] == 0


def at(i: int, prepared: str, submitted: str) -> dict:
    return row(i, mccmnc="20801", segments=1, prepared_at=prepared, submitted_at=submitted)


def counters(cli) -> dict[str, int]:
    with get_engine(cli.url).connect() as c:
        got = c.execute(sa.text("SELECT period_start, quantity FROM scale_counter")).all()
    return {str(p)[:7]: q for p, q in got}


def test_edr_straddling_a_period_boundary_is_rerated_once_by_the_unit_of_its_charge(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    rows = [at(i, f"2026-03-10T10:00:0{i}Z", f"2026-03-10T10:00:0{i}Z") for i in range(2)]
    # prepared in March, submitted (the billing trigger) in April: an April charge
    rows.append(at(5, "2026-03-31T23:59:30Z", "2026-04-01T00:00:30Z"))
    rows += [at(10 + i, f"2026-04-02T10:00:0{i}Z", f"2026-04-02T10:00:0{i}Z") for i in range(3)]
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert cli.json("edr", "show", "x-5")["charges"][0]["at"].startswith("2026-04-01")
    assert counters(cli) == {"2026-03": 2, "2026-04": 4}
    assert ledger_sum(cli) == (280_000, 280_000)  # March 2 × 0.05; April 3 × 0.05 + 0.03
    apply(cli, tmp_path, tree(TIER_B))

    # April alone: the straddler is April's first unit of the tier (event order).
    april = cli.json("rerate", "run", str(create(cli, frm="2026-04-01T00:00:00Z", till="2026-05-01T00:00:00Z")["id"]))
    assert (april["report"]["units"], april["processed"], april["updated"]) == (1, 4, 4)
    assert cli.json("edr", "show", "x-5")["cost"] == "0.10"
    # March: its unit leaves the straddler to April's unit, which the task takes in
    # (the straddler is in the window); nothing there changes any more.
    march = cli.json("rerate", "run", str(create(cli, frm="2026-03-01T00:00:00Z", till="2026-04-01T00:00:00Z")["id"]))
    assert (march["report"]["units"], march["processed"], march["updated"], march["unchanged"]) == (2, 6, 2, 4)

    straddler = cli.json("edr", "show", "x-5")
    assert [c["kind"] for c in straddler["charges"]] == ["edr", "rerate"]  # re-rated once
    assert sum(int(round(float(c["amount"]) * 1_000_000)) for c in straddler["charges"]) == 100_000
    assert counters(cli) == {"2026-03": 2, "2026-04": 4}  # the straddler counted in April only
    # March 2 × 0.10; April 2 × 0.10 + 2 × 0.02
    assert ledger_sum(cli) == (440_000, 440_000)
    again = cli.json("rerate", "run", str(create(cli, frm="2026-03-01T00:00:00Z", till="2026-05-01T00:00:00Z")["id"]))
    assert (again["processed"], again["updated"]) == (6, 0)
    # the next April EDR continues from the recomputed counter: 5th unit at 0.02
    cli.json(
        "edr", "ingest", str(edr_file(tmp_path / "f.jsonl", [at(20, "2026-04-03T10:00:00Z", "2026-04-03T10:00:00Z")]))
    )
    assert cli.json("edr", "show", "x-20")["cost"] == "0.02"


def test_owner_of_a_straddler_is_the_period_of_its_charge():
    from datetime import UTC, datetime, timedelta

    from cpaas_cli.catalog import tree as tr
    from cpaas_cli.rating import engine as en
    from cpaas_cli.rating import lookup as lk
    from cpaas_cli.rerate import units

    snap = lk.Snapshot.of(tr.parse_document(tree(TIER_A)), service_id=1, scope_id=1, currency="EUR")
    far = datetime(2026, 1, 1, tzinfo=UTC)
    entry = en.Entry(1, en.PAYG, "payg", far, None, ((far, None, snap),))
    month = {3: datetime(2026, 3, 1, tzinfo=UTC), 4: datetime(2026, 4, 1, tzinfo=UTC)}
    plan = en.Plan(1, "EUR", (entry,), lambda t: month[t.month])
    q = lk.query(channel="sms", direction="mt", mccmnc="20801", country="FR")

    def ev(prepared: datetime, submitted: datetime | None) -> en.Event:
        return en.Event(1, prepared, q, submitted_at=submitted, final=submitted is None)

    late = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
    assert units.owner(plan, ev(late, late + timedelta(minutes=2))) == month[4]
    assert units.owner(plan, ev(late, late)) == month[3]
    assert units.owner(plan, ev(late, None)) == month[3]  # never submitted: no charge, its own period
    # prepared longer than STRADDLE_LAG before the charge period: stays with its event period
    early = month[4] - units.STRADDLE_LAG - timedelta(seconds=1)
    assert units.owner(plan, ev(early, month[4] + timedelta(hours=1))) == month[3]


# ------------------------------------------------------------ kill -9 and rerun

MONTHS = (3, 4, 5, 6)
PER_MONTH = 4000
DEADLINE = 120.0


def month_rows(m: int) -> list[dict]:
    out = []
    for i in range(PER_MONTH):
        t = f"2026-{m:02d}-{1 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z"
        mccmnc = ("20801", "21401", "20810")[i % 3]  # the FR tier, the ES price, the FR tier again
        out.append(row(m * 100_000 + i, mccmnc=mccmnc, segments=1 + i % 2, prepared_at=t, submitted_at=t))
    return out


def clone(url: str, tmp_path) -> str:
    """A copy of the test database (to run the same task without interruption)."""
    dispose_all()
    if PG_URL:
        name = f"cpaas_c_{uuid.uuid4().hex[:12]}"
        _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{sa.engine.make_url(url).database}"')
        return _pg_admin_url().set(database=name).render_as_string(hide_password=False)
    path = tmp_path / "clean.db"
    shutil.copyfile(url.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


def markers(url: str, task_id: int) -> int:
    with get_engine(url).connect() as c:
        return c.execute(sa.text("SELECT COUNT(*) FROM rerate_unit WHERE task_id = :t"), {"t": task_id}).scalar()


def money(url: str) -> dict:
    """Everything a rerate writes, without row ids and creation times."""
    with get_engine(url).connect() as c:
        return {
            "charges": c.execute(sa.text(
                "SELECT edr_id, kind, revision, amount, at, period_start FROM charge ORDER BY edr_id, kind, revision"
            )).all(),
            "edrs": c.execute(sa.text(
                "SELECT id, rating_state, rate_path, unit_price, quantity, cost FROM edr ORDER BY id"
            )).all(),
            "spent": c.execute(sa.text("SELECT spent FROM agreement_balance")).all(),
            "counters": c.execute(sa.text(
                "SELECT node_key, group_value, period_start, quantity FROM scale_counter"
                " ORDER BY node_key, group_value, period_start"
            )).all(),
        }  # fmt: skip


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(cli, tmp_path):
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    rows = [r for m in MONTHS for r in month_rows(m)]
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    apply(cli, tmp_path, tree(TIER_B, es_price="0.05"))
    task = create(cli, frm="2026-03-01T00:00:00Z", till="2026-07-01T00:00:00Z")["id"]
    clean_url = clone(cli.url, tmp_path)
    try:
        clean = Cli(clean_url).json("rerate", "run", str(task))
        assert (clean["status"], clean["report"]["units"]) == ("completed", len(MONTHS))
        expected = money(clean_url)
        dispose_all()

        proc = subprocess.Popen(
            [sys.executable, "-m", "cpaas_cli", "--db", cli.url, "rerate", "run", str(task), "-o", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + DEADLINE
        while markers(cli.url, task) < 1:
            assert proc.poll() is None, "rerate run ended before it could be killed"
            assert time.monotonic() < end, "rerate run made no progress"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        done_at_kill = markers(cli.url, task)
        assert 1 <= done_at_kill < len(MONTHS), "the kill came too late to test anything"
        mid = cli.json("rerate", "show", str(task))
        assert mid["status"] == "running"  # the process died without a final state
        assert ledger_sum(cli)[0] == ledger_sum(cli)[1]  # committed units only, each whole

        again = cli.json("rerate", "run", str(task))
        assert again["status"] == "completed"
        for k in ("processed", "updated", "unchanged", "failed"):
            assert again[k] == clean[k], k
        got = money(cli.url)
        assert got == expected
        rerates = [r for r in got["charges"] if r.kind == "rerate"]
        assert len({r.edr_id for r in rerates}) == len(rerates) == clean["updated"]  # one per changed EDR
        per_edr: dict[int, int] = {}
        for r in got["charges"]:
            per_edr[r.edr_id] = per_edr.get(r.edr_id, 0) + r.amount
        assert all(per_edr.get(e.id, 0) == e.cost for e in got["edrs"])  # Σ charges = current cost
        assert ledger_sum(cli) == ledger_sum(Cli(clean_url))
    finally:
        dispose_all()
        if PG_URL:
            _pg_exec(f'DROP DATABASE IF EXISTS "{sa.engine.make_url(clean_url).database}" WITH (FORCE)')


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's HOT updates and storage parameters")
def test_rerate_on_postgresql_updates_edrs_in_their_pages(cli, tmp_path):
    """A rerate changes only columns no index holds; with the EDR table's pages
    half full (migration 0018) PostgreSQL makes those updates HOT: no new entry
    in any of the table's indexes. 900 EDRs fill ~30 pages, so with full pages
    nearly every update would have to move its row."""
    setup(cli)
    rows = [row(i) for i in range(900)]  # 2 segments each, Spain at 0.04
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    apply(cli, tmp_path, tree(TIER_A, es_price="0.05"))
    eng = get_engine(cli.url)

    def hot() -> tuple[int, int]:
        dispose_all()  # the CLI's server processes end and report their counts
        with eng.connect() as c:
            for _ in range(50):
                c.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
                got = c.execute(sa.text(
                    "SELECT n_tup_upd, n_tup_hot_upd, (SELECT numbackends FROM pg_stat_database"
                    " WHERE datname = current_database()) FROM pg_stat_user_tables WHERE relname = 'edr'")).one()  # fmt: skip
                if got[2] == 1:  # only this connection: every other backend has exited and flushed
                    return int(got[0]), int(got[1])
                time.sleep(0.1)
        raise AssertionError("the CLI's database sessions did not end")

    upd0, hot0 = hot()
    done = cli.json("rerate", "run", str(create(cli, till="2026-03-02T00:00:00Z")["id"]))
    assert (done["processed"], done["updated"]) == (900, 900)
    upd, hot_ = hot()
    assert upd - upd0 == 900
    assert hot_ - hot0 >= 0.95 * 900, f"{hot_ - hot0} of 900 updates HOT"
    assert cli.json("balance", "show", "AG-1")["charges"] == "90.00"  # 900 × 2 segments × 0.05


def test_a_window_period_taken_in_as_a_later_owner_still_hands_its_own_straddlers_on(cli, tmp_path):
    """March's straddler brings April in as a later owner; April is in the window
    too, and its own straddler (prepared 30 April, charged 1 May) makes May a unit."""
    setup(cli)
    apply(cli, tmp_path, tree(TIER_A))
    rows = [
        at(1, "2026-03-10T10:00:00Z", "2026-03-10T10:00:00Z"),
        at(5, "2026-03-31T23:59:30Z", "2026-04-01T00:00:30Z"),  # prepared in March, charged in April
        at(7, "2026-04-30T23:59:30Z", "2026-05-01T00:00:30Z"),  # prepared in April, charged in May
    ]
    cli.json("edr", "ingest", str(edr_file(tmp_path / "e.jsonl", rows)))
    assert cli.json("edr", "show", "x-7")["charges"][0]["at"].startswith("2026-05-01")
    assert cli.json("edr", "show", "x-7")["cost"] == "0.05"
    apply(cli, tmp_path, tree(TIER_B))
    run = cli.json("rerate", "run", str(create(cli, frm="2026-03-01T00:00:00Z", till="2026-05-01T00:00:00Z")["id"]))
    assert run["report"]["units"] == 3  # March, April, and May for x-7's charge
    straddler = cli.json("edr", "show", "x-7")
    assert straddler["cost"] == "0.10"  # May's first unit of TIER_B
    assert [c["kind"] for c in straddler["charges"]] == ["edr", "rerate"]
