"""2FA statistics (SPEC EDR-08, issue 28 item 6): codes sent through the API in-process,
submitted and receipted by `serve --once` against the smpp34 SMSC, some verified; then
`otp stats` in total, by day, operator and country, in JSON and CSV, and the conversion
chart of `report chart`. The averages are checked exactly on times set in the rows."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, timedelta

import pytest
import sqlalchemy as sa

from cpaas_cli import clock
from cpaas_cli.db.engine import get_engine
from cpaas_cli.dispatch.smsc import SimSmsc, SmscOptions, free_port
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.otp import OtpRequest
from tests.api_helpers import api  # noqa: F401
from tests.identity_helpers import identity_env  # noqa: F401
from tests.test_otp_api import basic, code_of, integration, send, short_sync  # noqa: F401
from tests.test_serve import serve_once, setup

MOVISTAR = ["34620000001", "34620000002", "34620000003"]  # 0.08 a code
VODAFONE = "34600000001"  # Vodafone Spain, 214 01: 0.04
FRANCE = "33612345678"  # 0.05


@pytest.fixture
def smsc():
    sim = SimSmsc(SmscOptions(port=free_port(), id_width=10, lifetime=120))  # every receipt DELIVRD
    sim.start()
    yield sim
    sim.stop()


def _edr_ids(db_url) -> list[tuple[int, int]]:
    """(request id, EDR id) in request order."""
    r, e = OtpRequest.__table__, Edr.__table__
    with get_engine(db_url).connect() as conn:
        return list(
            conn.execute(
                sa.select(r.c.id, e.c.id)
                .join(e, e.c.external_id == sa.literal("om:") + sa.cast(r.c.queue_id, sa.String))
                .order_by(r.c.id)
            )
        )


def _set_times(db_url) -> None:
    """Delivery after 1..5 s of the submit, verification 10/20/30 s after the request."""
    r, e = OtpRequest.__table__, Edr.__table__
    with get_engine(db_url).begin() as conn:
        for i, (_rid, eid) in enumerate(_edr_ids(db_url), start=1):
            sub = conn.execute(sa.select(e.c.submitted_at).where(e.c.id == eid)).scalar()
            conn.execute(sa.update(e).where(e.c.id == eid).values(delivered_at=sub + timedelta(seconds=i)))
        verified = conn.execute(
            sa.select(r.c.id, r.c.created_at).where(r.c.state == "verified").order_by(r.c.id)
        ).all()  # fmt: skip
        for (rid, created), secs in zip(verified, (10, 20, 30), strict=True):
            conn.execute(sa.update(r).where(r.c.id == rid).values(verified_at=created + timedelta(seconds=secs)))


def test_stats_in_total_by_day_operator_country_and_the_conversion_chart(api, cli, db_url, smsc, tmp_path):  # noqa: F811
    setup(cli, smsc.port)
    key = integration(cli)
    numbers = [*MOVISTAR, VODAFONE, FRANCE]
    ids = [send(api, key, n) for n in numbers]
    codes = [code_of(db_url, rid) for rid in ids]
    out = serve_once(cli)
    assert out["submitted"] == 5 and out["receipts"] == 5, out
    for i in (0, 1, 4):  # two Movistar numbers and the French one come back
        r = api.post("/api/v1/2fa/verify", headers=basic(key), data={"requestId": ids[i], "code": codes[i]})
        assert r.status_code == 200, r.text

    today = clock.now().astimezone(UTC).date()
    window = ["--from", today.isoformat(), "--till", (today + timedelta(days=1)).isoformat()]
    (real,) = cli.json("otp", "stats", "Login", *window)
    assert float(real["avg_delivery_s"]) >= 0 and float(real["avg_verify_s"]) >= 0  # the times serve recorded

    _set_times(db_url)
    (total,) = cli.json("otp", "stats", "Login", *window)
    assert total == {
        "requests": 5, "sent": 5, "delivered": 5, "failed": 0, "verified": 3, "conversion_pct": "60.0",
        "delivered_pct": "100.0", "avg_delivery_s": "3.000", "avg_verify_s": "20.000", "cost": "0.33",
        "currency": "EUR",
    }  # fmt: skip

    by_country = {r["country"]: r for r in cli.json("otp", "stats", "Login", *window, "--by", "country")}
    assert set(by_country) == {"ES", "FR"}
    es, fr = by_country["ES"], by_country["FR"]
    assert (es["requests"], es["verified"], es["conversion_pct"], es["cost"]) == (4, 2, "50.0", "0.28")
    assert (fr["requests"], fr["verified"], fr["conversion_pct"], fr["avg_delivery_s"]) == (1, 1, "100.0", "5.000")

    by_operator = cli.json("otp", "stats", "Login", *window, "--by", "operator")
    assert sum(r["requests"] for r in by_operator) == 5
    (voda,) = [r for r in by_operator if r["mccmnc"] == "21401"]
    assert voda["operator"] == "Vodafone Spain" and voda["requests"] == 1 and voda["verified"] == 0
    assert voda["conversion_pct"] == "0.0" and voda["avg_delivery_s"] == "4.000"

    yesterday = (today - timedelta(days=1)).isoformat()
    days = cli.json("otp", "stats", "Login", "--from", yesterday, "--till", window[3], "--by", "day")
    assert [d["day"] for d in days] == [yesterday, today.isoformat()]  # an empty day is a row too
    assert days[0]["requests"] == 0 and days[0]["conversion_pct"] == "0.0" and days[1]["requests"] == 5

    table = cli("otp", "stats", "Login", *window, "--by", "country", "-o", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert list(rows[0])[:3] == ["country", "requests", "sent"] and [r["country"] for r in rows] == ["ES", "FR"]
    assert "--by" in cli("otp", "stats", "Login", "--by", "week", expect=4).stderr

    png = tmp_path / "conversion.png"
    run = cli("report", "chart", "--metric", "otp-conversion", "--integration", "Login", "--from", yesterday,
              "--till", window[3], "--out", str(png))  # fmt: skip
    assert "2FA conversion % by day (Login)" in run.stdout and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "go together" in cli("report", "chart", "--metric", "otp-conversion", expect=4).stderr


def test_client_side_has_no_conversion_and_an_empty_period_is_zeros(api, cli, db_url):  # noqa: F811
    setup(cli, 9)
    client = cli.json(
        "otp", "integration", "create", "-c", "Client A", "--name", "Shop", "-s", "ACME", "--text", "Code {{code}}",
        "--mode", "client",
    )["api_key"]  # fmt: skip
    r = api.post("/api/v1/2fa/send/sms", headers=basic(client), data={"number": VODAFONE, "code": "4711"})
    assert r.status_code == 200, r.text
    (got,) = cli.json("otp", "stats", "Shop")  # default window: the last 30 days up to now
    assert got["requests"] == 1 and got["sent"] == 0 and got["conversion_pct"] is None  # no worker: not sent
    (empty,) = cli.json("otp", "stats", "Shop", "--from", "2026-01-01", "--till", "2026-01-02")
    assert empty["requests"] == 0 and empty["avg_delivery_s"] is None and empty["cost"] is None
    assert "--till" in cli("otp", "stats", "Shop", "--from", "2026-01-02", "--till", "2026-01-01", expect=4).stderr
    days = cli.json("otp", "stats", "Shop", "--by", "day")
    assert len(days) == 30 and date.fromisoformat(days[-1]["day"]) == clock.now().astimezone(UTC).date()
