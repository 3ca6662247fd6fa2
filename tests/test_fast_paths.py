"""The ingest fast paths give exactly what the general code gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cpaas_cli.db.bulk import sqlite_time
from cpaas_cli.imports.readers import read_csv
from cpaas_cli.money import round_event

TRICKY = (
    "id,name,note,city\r\n"
    '1," Ana, ""the"" first ",,Madrid\r\n'
    '2,Bob,"line one\nline two", Paris \r\n'
    ",,,\r\n"
    "3,Cy\r\n"
    "4,Di,x,Rome,extra,cells\r\n"
    '5,"",  ,\r\n'
)


def general(path, names):
    """The per-column reading the fast path must match."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    out = []
    for n, values in enumerate(rows, start=2):
        if not any(v.strip() for v in values):
            continue
        out.append((n, {nm: (values[i].strip() if i < len(values) else "") for i, nm in enumerate(names) if nm}))
    return out


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("header", ["id,name,note,city", "id,name,,city"])
def test_csv_fast_path_matches_general_reading(tmp_path, bom, header):
    p = tmp_path / "t.csv"
    text = TRICKY.replace("id,name,note,city", header, 1)
    p.write_bytes(bom + text.encode())
    got = list(read_csv(p))
    assert got == general(p, header.split(","))
    assert got[0] == (
        2,
        {"id": "1", "name": 'Ana, "the" first', **({"note": ""} if "note" in header else {}), "city": "Madrid"},
    )
    assert [n for n, _ in got] == [2, 3, 5, 6, 7]
    assert got[2][1]["name"] == "Cy" and got[2][1]["city"] == ""


@pytest.mark.parametrize(
    "value",
    [
        None,
        datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
        datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_sqlite_time_fast_path(value):
    want = None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert sqlite_time(value) == want


def test_round_event_whole_micros_unchanged():
    from decimal import Decimal

    assert round_event(1_234_567, "EUR") == 1_234_567
    assert round_event(Decimal("2.5"), "EUR") == 3
    assert round_event(-7, "EUR") == -7


# ------------------------------------------------- edr ingest: column-wise parse


def test_csv_lists_are_the_dict_rows(tmp_path):
    from cpaas_cli.imports.readers import read_csv_lists

    p = tmp_path / "t.csv"
    p.write_text(TRICKY.replace("id,name,note,city", "id,name,,city", 1))
    names, rows = read_csv_lists(p)
    rows = list(rows)
    assert names == ["id", "name", "", "city"] and all(len(cells) == 4 for _n, cells in rows)
    as_dicts = [(n, {nm: c for nm, c in zip(names, cells, strict=True) if nm}) for n, cells in rows]
    assert as_dicts == list(read_csv(p))


COLUMN_POOLS = {
    "agreement": ["AG-1", "AG-1", "", "NOPE"],
    "company": ["", "Client A", "Client B", "Nobody"],
    "vendor_message_id": ["", "v-1", "v-2"],
    "campaign_id": ["", "7", "x"],
    "sender": ["", "ACME", "12345", "123456789012"],
    "channel": ["", "sms", "SMS", "Viber"],
    "direction": ["", "mt", "MO", "xx"],
    "source": ["", "SRC"],
    "destination": ["", "34600000001"],
    "mccmnc": ["", "21401", "214001", "214-01", "214/1", "21401x", "1"],
    "mcc": ["", "214", "208"],
    "mnc": ["", "01", "7"],
    "country": ["", "es", "FR"],
    "network": ["", "Movistar"],
    "encoding": ["", "gsm7"],
    "segments": ["", "1", "3", "0", "x"],
    "status": ["", "submitted", "DELIVERED", "seen", "nope"],
    "vendor_error": ["", "0x45"],
}
TIME_POOL = [
    "",
    "2026-03-01T10:00:00Z",
    "2026-03-01T10:00:00+02:00",
    "2026-03-01 10:00:00",
    "2026-03-01T10:00:00.123456+00:00",
    "2026-03-01",
    "bad",
]


@pytest.fixture
def refs(cli):
    from cpaas_cli.db.engine import get_engine, make_session
    from cpaas_cli.edr import parse
    from tests.test_money_cli import setup

    setup(cli)
    from tests.helpers import client

    client(cli, "Client B")
    s = make_session(get_engine(cli.url))
    yield parse.Refs(s)
    s.close()


def _general(names, rows, refs):
    """parse_row over the rows plus the duplicate check: (columns, problems)."""
    from cpaas_cli.edr import parse

    problems = []
    out = []
    for n, cells in enumerate(rows, start=2):
        r = parse.parse_row(n, {nm: c for nm, c in zip(names, cells, strict=True) if nm}, refs, problems)
        if r is not None:
            out.append(r)
    exts = [r["external_id"] for r in out]
    if len(set(exts)) != len(exts):
        problems.append("dup")
    return {c: [r[c] for r in out] for c in parse.PARSED_COLUMNS}, problems


def _assert_same_parse(names, rows, refs, *, valid=False):
    from cpaas_cli.edr import parse

    want, problems = _general(names, rows, refs)
    got = parse.parse_columns(names, rows, refs)
    if problems and valid:
        raise AssertionError(problems)
    if problems:
        assert got is None, problems
    else:
        assert got is not None
        for c in parse.PARSED_COLUMNS:
            assert list(map(repr, got[c])) == list(map(repr, want[c])), c  # types and time zones too
    return bool(problems)


def _valid_chunk(rng, trial):
    """A random header (some columns, an unnamed one at times) and rows that parse."""
    from cpaas_cli.edr.parse import TIME_COLUMNS

    bad = {"NOPE", "Client B", "Nobody", "xx", "0", "x", "nope", "21401x", "214/1", "1"}
    pools = {k: [v for v in vals if v not in bad] for k, vals in COLUMN_POOLS.items()}
    pools["mnc"] = ["", "01", "001"]
    times = ["", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00+02:00", "2026-03-01 10:00:00", "2026-03-01T09:00:00.5"]
    names = ["external_id", *rng.sample(sorted(pools), rng.randint(0, len(pools)))]
    names += rng.sample(TIME_COLUMNS, rng.randint(1, 3))
    if "agreement" not in names:
        names.append("agreement")
    if rng.random() < 0.2:
        names.insert(rng.randrange(len(names) + 1), "")
    rng.shuffle(names)
    tcols = [c for c in names if c in TIME_COLUMNS]
    first = rng.choice(tcols)  # one time column always given
    rows = []
    for i in range(rng.randint(1, 40)):
        cells = []
        for nm in names:
            if nm == "external_id":
                cells.append(f"e-{trial}-{i}")
            elif nm == "agreement":
                cells.append("AG-1")
            elif nm in TIME_COLUMNS:
                cells.append(rng.choice(times[1:] if nm == first else times))
            elif nm:
                cells.append(rng.choice(pools[nm]))
            else:
                cells.append("junk")
        rows.append(cells)
    return names, rows


def test_parse_columns_is_parse_row_on_valid_chunks(refs):
    import random

    rng = random.Random(1)
    for trial in range(300):
        names, rows = _valid_chunk(rng, trial)
        _assert_same_parse(names, rows, refs, valid=True)


# One bad cell (or row) each: what parse_row reports, parse_columns must refuse.
FAULTS = [
    ("external_id", ""),
    ("external_id", "x" * 101),
    ("external_id", "DUP"),
    ("agreement", "NOPE"),
    ("agreement", ""),
    ("company", "Client B"),
    ("company", "Nobody"),
    ("direction", "xx"),
    ("mccmnc", "21401x"),
    ("mccmnc", "1"),
    ("segments", "0"),
    ("segments", "x"),
    ("status", "nope"),
    ("time", "bad"),
    ("time", "2026-13-01"),
    ("time", ""),  # every time cell of the row empty
]


def test_parse_columns_refuses_every_chunk_parse_row_refuses(refs):
    import random

    from cpaas_cli.edr.parse import TIME_COLUMNS

    rng = random.Random(2)
    for trial in range(600):
        names, rows = _valid_chunk(rng, trial)
        col, value = FAULTS[trial % len(FAULTS)]
        if col == "time":
            targets = [i for i, nm in enumerate(names) if nm in TIME_COLUMNS]
        else:
            if col not in names:
                names.append(col)
                for r in rows:
                    r.append("Client A" if col == "company" else "")
            targets = [names.index(col)]
        k = rng.randrange(len(rows))
        if value == "DUP":
            if len(rows) == 1:
                rows.append(list(rows[0]))
            else:
                rows[k][targets[0]] = rows[k - 1][targets[0]]
        elif col == "time" and not value:
            for t in targets:
                rows[k][t] = ""
        else:
            rows[k][rng.choice(targets)] = value
        if col == "agreement" and not value and "company" in names:
            rows[k][names.index("company")] = ""
        want, problems = _general(names, rows, refs)
        assert problems, (col, value)
        _assert_same_parse(names, rows, refs)


def test_result_columns_and_events_are_the_per_row_ones():
    from datetime import UTC, datetime

    from cpaas_cli.charging import events, rater
    from cpaas_cli.rating import engine as en

    now = datetime(2026, 3, 2, tzinfo=UTC)
    ds = [
        en.Decision(en.RATED, amount=5, unit_price=5, quantity=1, currency="EUR", path="a/b", service_id=1),
        en.Decision(en.REJECTED, reason="no_rate", note="x" * 400, amount=3),
        en.Decision(en.RATED, note="", path="", pack_id=4, pack_units=0),
        en.Decision(en.RATED, pack_id=4, pack_units=2, note="taken"),
    ]
    for decisions in (ds, [*ds, None], ds[:1], ds[2:]):
        got = rater.result_columns(decisions, now)
        want = [rater.UNRATED if d is None else rater.result_values(d, now) for d in decisions]
        assert [tuple(got[c][i] for c in rater.RESULT_COLUMNS) for i in range(len(decisions))] == want

    t = datetime(2026, 3, 1, 10, tzinfo=UTC)
    rows = [
        {"sender": "ACME", "channel": "sms", "direction": "mt", "mcc": "214", "mnc": "01", "country": "ES",
         "segments": 2, "status": "delivered", "event_at": t, "submitted_at": t, "delivered_at": None, "seen_at": t},
        {"sender": None, "channel": "sms", "direction": "mo", "mcc": None, "mnc": None, "country": None,
         "segments": 1, "status": "submitted", "event_at": t, "submitted_at": None, "delivered_at": t, "seen_at": None},
    ]  # fmt: skip
    cols = {c: [r[c] for r in rows] for c in rows[0]}
    got = events.events_of([7, 8], cols, {})
    assert got == [events.event_of({**r, "id": i}) for r, i in zip(rows, [7, 8], strict=True)]


def test_time_and_json_columns_are_the_per_value_ones():
    from cpaas_cli.db import bulk

    t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    other = datetime(2026, 3, 1, 14, 0, 0, 7, tzinfo=timezone(timedelta(hours=2)))
    for values in ([t, t, t], [t, t + timedelta(microseconds=1)], [t, None, other], [other], [None, t]):
        assert bulk.time_values(values, bulk.TimeText()) == [sqlite_time(v) for v in values]
    shared = {"path": "a", "scale": None}
    values = [shared, None, shared, {"path": "b"}]
    assert bulk.json_values(values) == [None if v is None else json.dumps(v) for v in values]


# ------------------------------------------------- edr ingest end to end


def _reference_ingest(session, path, chunk):
    """``edr ingest`` the general way: parse_row per row, Rater.decide on row
    dicts, SQLAlchemy Core inserts with type processing, ledger.post."""
    from operator import itemgetter

    import sqlalchemy as sa

    from cpaas_cli import clock
    from cpaas_cli.billing import ledger
    from cpaas_cli.charging import plans, rater
    from cpaas_cli.db import bulk
    from cpaas_cli.edr import ingest, parse
    from cpaas_cli.imports.readers import read_rows

    refs, plans, now = parse.Refs(session), plans.Plans(session), clock.now()
    for block in ingest.chunks(read_rows(path), chunk):
        problems = []
        rows = [r for n, raw in block if (r := parse.parse_row(n, raw, refs, problems)) is not None]
        assert not problems
        bulk.writer(session).write_lock()
        have = bulk.writer(session).stored(ingest.EDR, "external_id", [r["external_id"] for r in rows])
        rows = sorted((r for r in rows if r["external_id"] not in have), key=itemgetter("event_at"))
        if rows:
            for r, i in zip(rows, bulk.writer(session).reserve_ids(ingest.EDR, len(rows)), strict=True):
                r["id"] = i
            decisions, charges = rater.Rater(session, plans, now=now).decide(rows)
            for r, d in zip(rows, decisions, strict=True):
                r.update(
                    zip(rater.RESULT_COLUMNS, rater.UNRATED if d is None else rater.result_values(d, now), strict=True)
                )
                r["ingested_at"] = now
            session.execute(sa.insert(ingest.EDR), rows)
            ledger.post(
                session, [dict(zip(rater.CHARGE_COLUMNS, c[:-1], strict=True)) for c in charges], check_credit=False
            )
        session.commit()


def _stored(session, agreement_id):
    """What an agreement's ingest left: EDRs by external id (less the prefix), charges, counters, balance."""
    import sqlalchemy as sa

    from cpaas_cli.models.billing import AgreementBalance, Charge, ScaleCounter
    from cpaas_cli.models.edr import Edr

    E, C = Edr.__table__, Charge.__table__
    skip = {"id", "external_id", "agreement_id"}
    edrs = {}
    for r in session.execute(sa.select(E).where(E.c.agreement_id == agreement_id)).mappings():
        edrs[r["external_id"][2:]] = {k: v for k, v in r.items() if k not in skip}
    ext = dict(session.execute(sa.select(E.c.id, E.c.external_id)).all())
    charges = sorted(
        (ext[c["edr_id"]][2:], c["kind"], c["amount"], c["currency"], c["at"], c["period_start"], json.dumps(c["details"]))
        for c in session.execute(sa.select(C).where(C.c.agreement_id == agreement_id, C.c.edr_id.isnot(None))).mappings()
    )  # fmt: skip
    S = ScaleCounter.__table__
    counters = sorted(
        session.execute(
            sa.select(S.c.node_key, S.c.group_value, S.c.period_start, S.c.quantity).where(S.c.agreement_id == agreement_id)
        ).all()
    )  # fmt: skip
    spent = session.execute(
        sa.select(AgreementBalance.spent).where(AgreementBalance.agreement_id == agreement_id)
    ).scalar()
    return edrs, charges, counters, spent


@pytest.mark.parametrize("chunk", [7, 500])
def test_ingest_stores_what_the_general_path_stores(cli, tmp_path, db_url, chunk):
    """The same rows for three twin agreements: the general path (AG-1), the
    CSV fast path (AG-2) and JSONL through the same columns (AG-3), in chunks of
    7 or 500 (on SQLite, 240 rows in one INSERT batch: the values all rows share
    go in as SQL literals), with a re-ingest in between: identical EDRs,
    charges, counters, balances."""
    import csv
    import random

    from cpaas_cli import clock
    from cpaas_cli.db.engine import get_engine, make_session
    from cpaas_cli.edr import ingest
    from tests.test_money_cli import setup

    setup(cli, credit_limit="2")
    for code in ("AG-2", "AG-3"):
        cli.json("agreement", "create", code, "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01",
                 "--credit-limit", "2")  # fmt: skip
        cli.json("agreement", "enable", "SMS service", "--agreement", code, "--from", "2026-01-01")
    rng = random.Random(7)
    names = ["external_id", "agreement", "sender", "destination", "mccmnc", "segments", "direction", "status",
             "prepared_at", "submitted_at", "delivered_at", "seen_at"]  # fmt: skip
    rows = []
    for i in range(300):
        sub = f"2026-03-{1 + rng.randrange(3):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00+01:00"
        status = rng.choice(["submitted", "delivered", "prepared", "seen", ""])
        rows.append({
            "external_id": f"{i:04d}",
            "sender": rng.choice(["ACME", "Other", "12345", ""]),
            "destination": f"3460000{i:04d}",
            "mccmnc": rng.choice(["21401", "21422", "21422", "33201", "20801", "214-22"]),
            "segments": rng.choice(["1", "2", "", "3"]),
            "direction": rng.choice(["mt", "mt", "mt", "MO"]),
            "status": status,
            "prepared_at": sub if status == "prepared" or rng.random() < 0.3 else "",
            "submitted_at": "" if status == "prepared" else sub,
            "delivered_at": sub if status == "delivered" else "",
            "seen_at": sub if status == "seen" else "",
        })  # fmt: skip

    def write(code, prefix, suffix, part):
        p = tmp_path / f"{code}-{len(part)}{suffix}"
        out = [{**r, "external_id": prefix + r["external_id"], "agreement": code} for r in part]
        if suffix == ".csv":
            with p.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=names)
                w.writeheader()
                w.writerows(out)
        else:
            p.write_text("".join(json.dumps(r) + "\n" for r in out))
        return p

    clock.set_clock(lambda: datetime(2026, 3, 5, tzinfo=UTC))
    s = make_session(get_engine(db_url))
    try:
        for part in (rows[:60], rows):  # the second run skips the first 60
            _reference_ingest(s, write("AG-1", "r-", ".jsonl", part), chunk)
            got = [ingest.ingest(s, write("AG-2", "c-", ".csv", part), chunk=chunk)]
            got.append(ingest.ingest(s, write("AG-3", "j-", ".jsonl", part), chunk=chunk))
            s.commit()
            assert got[0] == got[1] and got[0]["inserted"] == len(part) - (60 if len(part) > 60 else 0)
        ids = {code: cli.json("agreement", "show", code)["id"] for code in ("AG-1", "AG-2", "AG-3")}
        want = _stored(s, ids["AG-1"])
        assert len(want[0]) == 300 and len(want[1]) > 20 and want[2]
        states = {r["rating_state"] for r in want[0].values()}
        reasons = {r["rating_reason"] for r in want[0].values()}
        assert states == {"rated", "rejected", "unrated"} and "insufficient_credit" in reasons
        assert _stored(s, ids["AG-2"]) == want
        assert _stored(s, ids["AG-3"]) == want
    finally:
        s.close()
        clock.set_clock(None)


def test_bulk_pragmas_are_put_back(cli, tmp_path, db_url):
    """The larger cache and rarer checkpoints hold for the ingest only (the pooled connection lives on)."""
    from cpaas_cli.charging import rater
    from cpaas_cli.db import bulk_sqlite
    from cpaas_cli.db.engine import get_engine, make_session
    from cpaas_cli.edr import ingest
    from tests.test_money_cli import edr_file, row, setup

    setup(cli)
    s = make_session(get_engine(db_url))
    try:
        if s.get_bind().dialect.name != "sqlite":
            pytest.skip("SQLite connection settings")
        raw = s.connection().connection.dbapi_connection
        before = {k: raw.execute(f"PRAGMA {k}").fetchone()[0] for k in bulk_sqlite.BULK_PRAGMAS}
        assert all(before[k] != v for k, v in bulk_sqlite.BULK_PRAGMAS.items())
        seen = {}
        real = rater.Rater.decide_events

        def spy(self, *a, **kw):
            seen.update({k: raw.execute(f"PRAGMA {k}").fetchone()[0] for k in bulk_sqlite.BULK_PRAGMAS})
            return real(self, *a, **kw)

        rater.Rater.decide_events = spy
        try:
            assert ingest.ingest(s, edr_file(tmp_path / "e.jsonl", [row(i) for i in range(3)]))["inserted"] == 3
        finally:
            rater.Rater.decide_events = real
        assert seen == bulk_sqlite.BULK_PRAGMAS
        assert {k: raw.execute(f"PRAGMA {k}").fetchone()[0] for k in bulk_sqlite.BULK_PRAGMAS} == before
    finally:
        s.close()


def test_copy_text_loads_what_psycopg_rows_load(db_url):
    """PostgreSQL: the column-wise COPY text gives the same stored rows as psycopg's write_row."""
    import sqlalchemy as sa

    from cpaas_cli.db import bulk
    from cpaas_cli.db.engine import get_engine

    engine = get_engine(db_url)
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL COPY")
    t = datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    cols = [
        [1, 2, 3, -4, 10**15],
        ["a", "tab\there", "new\nline\r", "back\\slash \\N", ""],
        ["x", None, "\\N", None, "ünï"],
        [t, None, t.astimezone(timezone(timedelta(hours=5, minutes=30))), t, None],
        [json.dumps({"p": "a\tb", "q": None}), "{}", None, "[1]", '"s"'],
        [None, 7, None, None, 0],
        ["same\tone"] * 5,
        [9] * 5,
        [t] * 5,
    ]
    cols.append(cols[3])  # a column of instants met already (the memo)
    assert bulk.copy_text([[True], [1]]) is None and bulk.copy_text([[datetime(2026, 3, 1)]]) is None
    text = bulk.copy_text(cols)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            for name in ("fast", "rows"):
                cur.execute(
                    f"CREATE TEMP TABLE {name} (i bigint, a text, b text, t timestamptz, j json, k int, "
                    "c text, d int, e timestamptz, f timestamptz)"
                )
            with cur.copy("COPY fast (i, a, b, t, j, k, c, d, e, f) FROM STDIN") as cp:
                cp.write(text)
            with cur.copy("COPY rows (i, a, b, t, j, k, c, d, e, f) FROM STDIN") as cp:
                for r in zip(*cols, strict=True):
                    cp.write_row(r)
        got = [
            conn.execute(sa.text(f"SELECT i, a, b, t, j::text, k FROM {n} ORDER BY i")).all() for n in ("fast", "rows")
        ]
    assert got[0] == got[1] and len(got[0]) == 5
    by_i = {r[0]: r for r in got[0]}
    assert by_i[2][1] == "tab\there" and by_i[3][2] == "\\N" and by_i[2][2] is None and by_i[1][5] is None


def test_a_bad_row_stops_the_run_at_its_chunk_and_is_named(cli, tmp_path):
    """CSV through the column-wise path, chunks of 100: a bad cell in the second
    chunk leaves the first stored, nothing of its own, and the message names its
    row and field; --check-first stores nothing; the fixed file adds the rest."""
    import csv

    from tests.test_money_cli import row, setup

    setup(cli)
    rows = [row(i, segments=1) for i in range(250)]

    def write(bad: bool):
        p = tmp_path / ("bad.csv" if bad else "good.csv")
        with p.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            for i, r in enumerate(rows):
                w.writerow({**r, "mccmnc": "21401x"} if bad and i == 150 else r)
        return p

    run = cli("edr", "ingest", str(write(True)), "--chunk", "100", "--check-first", expect=4)
    assert "152" in run.stderr and "mccmnc" in run.stderr and "nothing was written" in run.stderr
    assert cli.json("edr", "list", "--limit", "1000") == []
    run = cli("edr", "ingest", str(write(True)), "--chunk", "100", expect=4)
    assert "row 152" in run.stderr and "mccmnc" in run.stderr
    assert "nothing was written" not in run.stderr
    assert "the chunk from row 102 on was not written; the 100 rows before it were (100 stored" in run.stderr
    assert len(cli.json("edr", "list", "--limit", "1000")) == 100
    got = cli.json("edr", "ingest", str(write(False)), "--chunk", "100")
    assert (got["inserted"], got["skipped"], got["rated"]) == (150, 100, 150)


def test_a_chunk_commit_that_fails_stops_the_ingest_with_its_error(cli, tmp_path, db_url, monkeypatch):
    """A chunk's commit runs in a thread while the next chunk is parsed: when it
    fails, the ingest raises that error (not lost with the thread), the chunks
    committed before it stay whole with their charges, nothing after it is
    written, and the rerun stores the rest."""
    from decimal import Decimal

    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from cpaas_cli.db.engine import get_engine, make_session
    from cpaas_cli.edr import ingest
    from tests.test_money_cli import edr_file, row, setup

    setup(cli)
    path = edr_file(tmp_path / "e.jsonl", [row(i, segments=1) for i in range(250)])
    real, calls = Session.commit, []

    def commit(self):
        calls.append(1)
        if len(calls) == 2:
            raise sa.exc.OperationalError("COMMIT", {}, RuntimeError("disk I/O error"))
        return real(self)

    monkeypatch.setattr(Session, "commit", commit)
    s = make_session(get_engine(db_url))
    try:
        with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
            ingest.ingest(s, path, chunk=100)
        s.rollback()
    finally:
        s.close()
    monkeypatch.undo()
    assert len(calls) == 2  # the third chunk was parsed, never written
    stored = cli.json("edr", "list", "--limit", "1000")
    assert sorted(int(e["external_id"][2:]) for e in stored) == list(range(100))
    charged = sum(Decimal(e["cost"]) for e in stored)
    assert charged > 0 and Decimal(cli.json("balance", "show", "AG-1")["charges"]) == charged
    got = cli.json("edr", "ingest", str(path), "--chunk", "100")
    assert (got["inserted"], got["skipped"]) == (150, 100)


@pytest.mark.parametrize(
    "value",
    ["O'Brien ''quoted''", "", "ünïcode € 📨", "a\x00b", "x" * 101, "7", 0, -(2**63), 2**63 - 1, True, None],
)
def test_a_value_all_rows_share_is_stored_as_the_bound_value_is(tmp_path, value):
    """The SQLite bulk writer's insert writes a value every row of a bulk insert shares
    as a SQL literal (quotes doubled; NUL-bearing or long text, bools and other
    types stay parameters): the stored value and its storage class are those of
    a plain parameterised INSERT of the same rows."""
    import sqlalchemy as sa

    from cpaas_cli.db import bulk
    from cpaas_cli.db.engine import get_engine, make_session

    md = sa.MetaData()
    fast, plain = (
        sa.Table(
            name,
            md,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("t", sa.Text),
            sa.Column("i", sa.BigInteger),
            sa.Column("n", sa.Integer),
        )
        for name in ("fast", "plain")
    )
    s = make_session(get_engine(f"sqlite:///{tmp_path / 'lit.db'}"))
    try:
        md.create_all(s.connection())
        n = bulk.SHARED_LITERAL_ROWS + 30
        rows = {"id": list(range(1, n + 1)), "t": [value] * n, "i": [value] * n, "n": list(range(n))}
        assert bulk.writer(s).insert(fast, rows) == n
        s.execute(sa.insert(plain), [dict(zip(rows, r, strict=True)) for r in zip(*rows.values(), strict=True)])
        q = "SELECT id, t, typeof(t), i, typeof(i), n FROM {} ORDER BY id"
        got = [s.connection().exec_driver_sql(q.format(t)).all() for t in ("fast", "plain")]
        assert got[0] == got[1] and len(got[0]) == n
    finally:
        s.close()


def test_a_reference_first_met_while_a_commit_runs_is_looked_up_after_it(cli, tmp_path, db_url, monkeypatch):
    """The second chunk names an agreement the first did not, while the first
    chunk's commit (made slow here) is still running in its thread: the lookup
    waits for that commit instead of using the session beside it, and every row
    is stored under the right agreement."""
    import time

    from sqlalchemy.engine.default import DefaultDialect

    from cpaas_cli.db.engine import get_engine, make_session
    from cpaas_cli.edr import ingest
    from tests.test_money_cli import edr_file, row, setup

    setup(cli)
    cli.json("agreement", "create", "AG-2", "--company", "Client A", "--currency", "EUR", "--from", "2026-01-01")
    cli.json("agreement", "enable", "SMS service", "--agreement", "AG-2", "--from", "2026-01-01")
    rows = [row(i, segments=1, agreement="AG-1" if i < 150 else "AG-2") for i in range(250)]
    path = edr_file(tmp_path / "e.jsonl", rows)
    real = DefaultDialect.do_commit

    def slow_commit(self, dbapi_connection):
        time.sleep(0.3)
        return real(self, dbapi_connection)

    monkeypatch.setattr(DefaultDialect, "do_commit", slow_commit)
    s = make_session(get_engine(db_url))
    try:
        got = ingest.ingest(s, path, chunk=100)
        s.commit()
    finally:
        s.close()
    monkeypatch.undo()
    assert (got["inserted"], got["rated"]) == (250, 250)
    for code, want in (("AG-1", range(150)), ("AG-2", range(150, 250))):
        ag = cli.json("agreement", "show", code)["id"]
        stored = [e for e in cli.json("edr", "list", "--limit", "1000") if e["agreement_id"] == ag]
        assert sorted(int(e["external_id"][2:]) for e in stored) == list(want)


def _write_rows(path, rows):
    """EDR rows (dicts with the same keys) as a CSV file or JSONL, by the path's suffix."""
    import csv

    if path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_text_longer_than_its_column_is_refused_naming_row_and_field(cli, tmp_path, suffix):
    """A cell longer than its EDR column (destination: 32 characters, country: 2)
    stops the ingest with the row and field named, on SQLite (which would store
    it) as on PostgreSQL (whose COPY would fail the chunk without naming a row);
    nothing is written, and the file with the cells at their limits goes in."""
    from tests.test_money_cli import row, setup

    setup(cli)

    def write(destination, country):
        rows = [row(i, segments=1, country="ES") for i in range(120)]
        rows[40]["destination"], rows[70]["country"] = destination, country
        return _write_rows(tmp_path / f"e{len(destination)}{suffix}", rows)

    first = 2 if suffix == ".csv" else 1  # the row number of rows[0]
    run = cli("edr", "ingest", str(write("3" * 33, "ESP")), expect=4)
    for n, field, most in ((first + 40, "destination", 32), (first + 70, "country", 2)):
        assert f"row {n}" in run.stderr and f"{field}: is longer than {most} characters" in run.stderr
    assert "nothing was written" in run.stderr
    assert cli.json("edr", "list", "--limit", "1000") == []
    got = cli.json("edr", "ingest", str(write("3" * 32, "PT")))
    assert got["inserted"] == 120
    assert cli.json("edr", "show", "x-40")["destination"] == "3" * 32


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_segments_and_campaign_ids_out_of_range_are_named(cli, tmp_path, suffix):
    """Segments above 255 (a concatenated SMS numbers its parts in one byte) and
    a campaign id past the 32-bit column are problems naming row and field, not
    a database error (PostgreSQL) or a stored oddity (SQLite)."""
    from tests.test_money_cli import row, setup

    setup(cli)
    rows = [row(i, segments=1, campaign_id="") for i in range(120)]
    rows[10]["segments"], rows[90]["campaign_id"] = "256", str(2**31)
    rows[11]["segments"], rows[91]["campaign_id"] = "255", str(2**31 - 1)
    p = _write_rows(tmp_path / f"e{suffix}", rows)
    first = 2 if suffix == ".csv" else 1
    run = cli("edr", "ingest", str(p), expect=4)
    assert f"row {first + 10}: segments: a whole number from 1 to 255, got '256'" in run.stderr
    assert f"row {first + 90}: campaign_id: larger than 2147483647" in run.stderr
    assert f"row {first + 11}:" not in run.stderr and f"row {first + 91}:" not in run.stderr
    assert cli.json("edr", "list", "--limit", "1000") == []


def test_a_value_a_column_cannot_hold_is_one_line_and_exit_4(capsys):
    """A driver's data error (too long, out of range) that reaches the CLI is one
    line on stderr and the invalid-input exit code, not a traceback."""
    import sqlalchemy as sa
    import typer

    from cpaas_cli.cli.app import _db_error

    orig = Exception("value too long for type character varying(32)\nCONTEXT: COPY edr, line 5")
    with pytest.raises(typer.Exit) as got:
        _db_error(sa.exc.DataError("COPY edr", {}, orig))
    assert got.value.exit_code == 4
    assert capsys.readouterr().err == "error: invalid data: value too long for type character varying(32)\n"
