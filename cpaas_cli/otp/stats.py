"""Statistics of a 2FA integration (SPEC EDR-08, issue 28 item 6): over a period, in total,
by local day, by operator or by country.

The figures of one group:

* ``requests``: codes asked for (requests created in the period, refused ones never exist);
* ``sent``: those whose message the vendor took (its EDR has a submit time, or the
  request recorded SENT);
* ``delivered``: those with a delivery receipt (EDR ``delivered`` or ``seen``);
* ``failed``: those the vendor refused or could not deliver (EDR ``failed`` or
  ``undelivered``, or the request recorded FAILED);
* ``verified``: platform side, the right code came back;
* ``conversion_pct``: verified / sent in percent (None for a client-side
  integration: it sees no verification); ``delivered_pct``: delivered / sent;
* ``avg_delivery_s``: the mean time from the message's submit to its delivery
  receipt (EDR ``submitted_at`` → ``delivered_at``), over the delivered ones;
* ``avg_verify_s``: the mean time from the request to its verification;
* ``cost``/``currency``: what the EDRs of the requests were charged.

A request belongs to the period by its ``created_at``; an operator is the
network the EDR was rated for (name and MCC/MNC), ``(none)`` before it was
claimed. The request's message is found through ``otp_request.queue_id``: its
EDR has ``external_id = 'om:<queue id>'`` (the dispatch claim writes it so); an e-mail
request's is ``'otp:<request id>'`` (it has no receipt: never ``delivered``).
One indexed range query per local day of the window (``reports.summary.local_days``);
rows are folded here, as durations are not portable SQL between SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cpaas_cli.errors import InvalidInput
from cpaas_cli.models.edr import Edr
from cpaas_cli.models.otp import OtpIntegration, OtpRequest
from cpaas_cli.money import format_micros
from cpaas_cli.reports.summary import local_days, share

R = OtpRequest.__table__
E = Edr.__table__
BY = ("day", "operator", "country")
FIGURES = [
    "requests", "sent", "delivered", "failed", "verified", "conversion_pct", "delivered_pct",
    "avg_delivery_s", "avg_verify_s", "cost", "currency",
]  # fmt: skip
KEY_COLUMNS = {None: [], "day": ["day"], "operator": ["operator", "mccmnc"], "country": ["country"]}


def columns(by: str | None) -> list[str]:
    return KEY_COLUMNS[by] + FIGURES


def _check_by(by: str | None) -> str | None:
    if by is None:
        return None
    value = by.strip().lower()
    if value not in BY:
        raise InvalidInput(f"--by: choose one of {', '.join(BY)}")
    return value


class _Group:
    __slots__ = ("requests", "sent", "delivered", "failed", "verified", "delivery", "verify", "cost", "currency")

    def __init__(self) -> None:
        self.requests = self.sent = self.delivered = self.failed = self.verified = 0
        self.delivery: list[float] = []
        self.verify: list[float] = []
        self.cost = 0
        self.currency: str | None = None

    def add(self, r: Any) -> None:
        self.requests += 1
        if r.submitted_at is not None or r.sent_status == "SENT":
            self.sent += 1
        if r.status in ("delivered", "seen"):
            self.delivered += 1
            if r.submitted_at is not None and r.delivered_at is not None:
                self.delivery.append((r.delivered_at - r.submitted_at).total_seconds())
        if r.status in ("failed", "undelivered") or r.sent_status == "FAILED":
            self.failed += 1
        if r.state == "verified":
            self.verified += 1
            if r.verified_at is not None:
                self.verify.append((r.verified_at - r.created_at).total_seconds())
        if r.cost is not None:
            self.cost += r.cost
            self.currency = self.currency or r.currency


def _mean(values: list[float]) -> str | None:
    if not values:
        return None
    return str((Decimal(sum(values)) / len(values)).quantize(Decimal("0.001"), ROUND_HALF_UP))


def _figures(g: _Group, mode: str) -> dict[str, Any]:
    return {
        "requests": g.requests,
        "sent": g.sent,
        "delivered": g.delivered,
        "failed": g.failed,
        "verified": g.verified,
        "conversion_pct": share(g.verified, g.sent) if mode == "platform" else None,
        "delivered_pct": share(g.delivered, g.sent),
        "avg_delivery_s": _mean(g.delivery),
        "avg_verify_s": _mean(g.verify),
        "cost": format_micros(g.cost) if g.currency else None,
        "currency": g.currency,
    }


def _query(integration_id: int) -> Any:
    # the request's EDR: its queue row's, or an e-mail request's own (otp/results.edr_key)
    edr = sa.case(
        (R.c.channel == "email", sa.literal("otp:") + R.c.request_id),
        else_=sa.literal("om:") + sa.cast(R.c.queue_id, sa.String),
    )
    return (
        sa.select(
            R.c.created_at,
            R.c.verified_at,
            R.c.state,
            R.c.sent_status,
            R.c.country,
            E.c.status,
            E.c.submitted_at,
            E.c.delivered_at,
            E.c.network,
            E.c.mcc,
            E.c.mnc,
            E.c.cost,
            E.c.currency,
        )  # fmt: skip
        .select_from(R.outerjoin(E, E.c.external_id == edr))
        .where(
            R.c.integration_id == integration_id,
            R.c.created_at >= sa.bindparam("lo"),
            R.c.created_at < sa.bindparam("hi"),
        )  # fmt: skip
    )


def _key(by: str | None, r: Any, day: str) -> tuple:
    if by == "day":
        return (day,)
    if by == "operator":
        mccmnc = (r.mcc or "") + (r.mnc or "") if r.mcc else None
        return (r.network or "(none)", mccmnc)
    if by == "country":
        return (r.country or "(none)",)
    return ()


def stats(
    conn: Connection, integration: OtpIntegration, *, since: datetime, till: datetime, by: str | None, tz: str = "UTC"
) -> list[dict[str, Any]]:
    """Rows of the key columns (none, day, operator + mccmnc, or country) and the figures.
    ``by day`` has a row for every local day of the window, empty days too."""
    by = _check_by(by)
    if till <= since:
        raise InvalidInput("--till must be after --from")
    groups: dict[tuple, _Group] = defaultdict(_Group)
    q = _query(integration.id)  # type: ignore[arg-type]
    for lo, hi, day, _shift in local_days(since, till, tz):
        label = day.isoformat()
        if by == "day":
            groups[(label,)]  # noqa: B018 (an empty day is a row too)
        for r in conn.execute(q, {"lo": lo, "hi": hi}):
            groups[_key(by, r, label)].add(r)
    if by is None and not groups:
        groups[()]  # noqa: B018 (the general row, even empty)
    out = []
    for key in sorted(groups, key=lambda k: tuple("" if v is None else v for v in k)):
        row = dict(zip(KEY_COLUMNS[by], key, strict=True))
        row.update(_figures(groups[key], integration.mode))
        out.append(row)
    return out


def conversion_series(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, list[float]]]:
    """Labels (days) and one series, the conversion in percent, for ``report chart``."""
    labels = [r["day"] for r in rows]
    return labels, {"conversion %": [float(r["conversion_pct"] or 0) for r in rows]}
