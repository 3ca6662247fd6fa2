"""The ingest fast paths give exactly what the general code gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cpaas_cli.edr.service import _sqlite_time
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
    assert _sqlite_time(value) == want


def test_round_event_whole_micros_unchanged():
    from decimal import Decimal

    assert round_event(1_234_567, "EUR") == 1_234_567
    assert round_event(Decimal("2.5"), "EUR") == 3
    assert round_event(-7, "EUR") == -7
