"""Invoice lines and how an invoice rounds (SPEC AMB-25): pure, no database, no clock.

Lines
-----
* **Usage**: one line per service × resource (channel/direction) ×
  destination (country, network) × unit price for the period's own charges,
  and one per service × resource × destination for the correction charges of
  earlier, confirmed periods (rerate differences, late charges). Everything an EDR
  was charged is folded into its line: the event charge, back-to-first scale
  adjustments, rerate deltas and refunds. A line shows ``count`` (messages
  billed: EDRs whose cost is not 0, so a refunded or pack-paid message is
  not counted), ``volume`` (the units billed: messages or segments, as the
  rate counts them), the unit price and the exact amount.
* **Back-to-first**: the adjustment a threshold crossing charges re-prices
  the earlier units of the same counter. The EDRs of one pricing cluster
  (correction flag, billing period, service, rate path) whose charges come
  to exactly ``volume × p`` for the price ``p`` of the cluster's latest
  charge are all shown at ``p`` ("25 × 0.05 = 1.25", not 10 × 0.06, 15 × 0.05
  and a credit of 0.10), each destination with its own volume; the same is
  tried per sender ID (counters grouped by sender), and otherwise every EDR
  keeps its own price and amount. The money is never moved between
  clusters: Σ line amounts = Σ charges, exactly.
* **Pack purchases and fees**: one line per kind and description.

The displayed unit price is the line's price when ``volume × price`` is its
amount, else the amount per unit when that is exact to the micro-unit (a
correction line of a rerate: "5 × 0.01"), else none (a tier crossed inside
one multi-part message).

Rounding
--------
Let ``m`` be the currency's minor units (JPY 0, EUR 2, BHD and KWD 3; see
``money.minor_units``) and ``d`` the ``[invoice] line_decimals`` setting
(0..6, default 4). Lines carry ``e = max(d, m)`` decimals: a line is never
coarser than its currency.

* **net** = Σ exact line amounts (= Σ charges, micro-units), rounded **once**,
  half-up, to ``m`` decimals;
* **tax** = net × tax rate, rounded half-up to ``m`` decimals (the invoice
  has one tax rate, its agreement version's; never a sum of per-line taxes);
* **total** = net + tax; **rounding** = net − Σ charges (|rounding| ≤ half a
  minor unit).
* When ``e > m`` (the default for every currency with fewer than 4
  decimals) each line's amount and tax are rounded half-up to ``e``
  decimals, for display; they need not add up to the net to the last digit
  (11 × 0.0111 = 0.1221 on the line, net 0.12).
* When ``e == m`` (``line_decimals = 2`` for EUR) the net and the tax are
  **allocated** to the lines by largest remainder: each line gets its amount
  rounded down to the minor unit, and the units still missing go one each to
  the lines with the largest remainders (the earlier line on a tie), so the
  lines add up to the net and the tax exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from cpaas_cli.config import INVOICE_LINE_DECIMALS
from cpaas_cli.money import minor_units, round_half_up

TAX_SCALE = 100 * 1_000_000  # tax_rate is percent × 1,000,000
DEFAULT_LINE_DECIMALS = INVOICE_LINE_DECIMALS
USAGE = "usage"
LINE_ORDER = {USAGE: 0, "pack_purchase": 1, "fee": 2}


@dataclass(slots=True)
class Usage:
    """The rated charges of one invoice at one current unit price, as the
    database groups them: pricing cluster (correction, period_start,
    service_id, rate_path), destination, sender and the EDRs' unit price."""

    correction: bool
    period_start: datetime | None
    service_id: int | None
    rate_path: str | None
    resource: str | None
    country: str | None
    network: str | None
    sender: str | None
    unit_price: int | None
    count: int  # EDRs whose cost is not 0 (charge rows without an EDR: each counts)
    volume: int  # Σ quantity of those EDRs
    amount: int  # Σ charges of every kind, micro-units
    last_at: Any = None  # the latest charge's time (only compared with its peers)
    rerated: bool = False


@dataclass(slots=True)
class Line:
    kind: str
    correction: bool
    service_id: int | None = None
    resource: str | None = None
    country: str | None = None
    network: str | None = None
    description: str = ""
    count: int = 0
    volume: int = 0
    price: int | None = None  # the grouping price (usage)
    exact: int = 0
    rerated: bool = False
    unit_price: int | None = None  # shown (see the module docstring)
    net: int = 0
    rounding: int = 0
    tax: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class Totals:
    decimals: int  # of the lines
    charges_total: int
    net: int
    rounding: int
    tax: int
    total: int


# ------------------------------------------------------------------ lines


def _uniform_price(groups: Sequence[Usage]) -> int | None:
    """The price p of the latest charge when the groups' money is exactly Σ volume × p."""
    volume = sum(g.volume for g in groups)
    if volume <= 0 or any(g.unit_price is None for g in groups):
        return None
    amount = sum(g.amount for g in groups)
    stamps = [g.last_at for g in groups if g.last_at is not None]
    latest = max(stamps) if stamps else None
    for p in sorted({g.unit_price for g in groups if g.last_at == latest}):  # type: ignore[type-var]
        if volume * p == amount:
            return p
    return None


def _priced(cluster: Sequence[Usage]) -> list[tuple[Usage, int | None, int]]:
    """(group, line price, amount) for each group of one pricing cluster."""
    p = _uniform_price(cluster)
    if p is not None:
        return [(g, p, g.volume * p) for g in cluster]
    out: list[tuple[Usage, int | None, int]] = []
    by_sender: dict[str | None, list[Usage]] = defaultdict(list)
    for g in cluster:
        by_sender[g.sender].append(g)
    for part in by_sender.values():
        q = _uniform_price(part) if len(by_sender) > 1 else None
        out += [(g, q, g.volume * q) if q is not None else (g, g.unit_price, g.amount) for g in part]
    return out


def shown_price(price: int | None, volume: int, exact: int) -> int | None:
    if price is not None and volume * price == exact:
        return price
    if volume > 0 and exact % volume == 0:
        return exact // volume
    return None


def usage_lines(groups: Iterable[Usage]) -> list[Line]:
    """Fold the rated charges into one line per service × resource × destination
    × unit price (× nothing for corrections); descriptions are left to the caller."""
    clusters: dict[tuple, list[Usage]] = defaultdict(list)
    for g in groups:
        clusters[(g.correction, g.period_start, g.service_id, g.rate_path)].append(g)
    lines: dict[tuple, Line] = {}
    for (correction, *_), cluster in clusters.items():
        # A correction line holds differences (rerates) or late charges: no price of its own.
        priced = [(g, None, g.amount) for g in cluster] if correction else _priced(cluster)
        for g, price, amount in priced:
            key = (g.correction, g.service_id, g.resource, g.country, g.network, price)
            ln = lines.get(key)
            if ln is None:
                ln = lines[key] = Line(USAGE, g.correction, g.service_id, g.resource, g.country, g.network, price=price)
            ln.count += g.count
            ln.volume += g.volume
            ln.exact += amount
            ln.rerated = ln.rerated or g.rerated
    for ln in lines.values():
        ln.unit_price = shown_price(ln.price, ln.volume, ln.exact)
    return list(lines.values())


def other_line(kind: str, correction: bool, description: str, count: int, volume: int, exact: int) -> Line:
    """A pack purchase or fee line (grouped by the caller on kind and description)."""
    return Line(kind, correction, description=description[:300], count=count, volume=volume, exact=exact,
                unit_price=shown_price(None, volume, exact))  # fmt: skip


def describe_usage(ln: Line, service_name: str | None) -> str:
    parts = [service_name or "Usage"]
    if ln.resource:
        parts.append(ln.resource.upper())
    dest = " ".join(x for x in (ln.country, ln.network) if x)
    if dest:
        parts.append(dest)
    if ln.correction:
        parts.append("(correction for earlier periods" + (": re-rating)" if ln.rerated else ")"))
    elif ln.rerated:
        parts.append("re-rated")
    return " · ".join(parts)[:300]


def describe_other(kind: str, d: dict[str, Any]) -> str:
    """Pack purchases and fees, from the charge's details."""
    if kind == "pack_purchase":
        return f"Pack {d.get('pack') or ''}".strip()
    if d.get("fee_rule_id") is not None:
        what = "setup fee" if d.get("fee_kind") == "setup" else "usage fee"
        if d.get("subject_kind") == "sender_id" and d.get("subject_name"):
            text = " ".join(x for x in ("Sender ID", d["subject_name"], what, d.get("period")) if x)
        else:
            subject = f"{d.get('subject_kind', '')} {d.get('subject_ref', '')}".strip().replace("_", " ")
            text = f"{subject} {what}"
        if d.get("description"):
            text += f": {d['description']}"
        return text
    return f"Additional fee{': ' + d['description'] if d.get('description') else ''}"


def sort_lines(lines: list[Line]) -> list[Line]:
    return sorted(
        lines,
        key=lambda x: (
            x.correction,
            LINE_ORDER.get(x.kind, 9),
            x.description,
            x.country or "",
            x.network or "",
            x.price if x.price is not None else -1,
        ),
    )


# --------------------------------------------------------------- rounding


def check_line_decimals(value: Any) -> int:
    """``[invoice] line_decimals``: a whole number 0..6."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 6:
        raise ValueError(f"line_decimals must be a whole number from 0 to 6, got {value!r}")
    return value


def allocate(values: Sequence[int | Fraction], target: int, unit: int) -> list[int]:
    """Split ``target`` (a multiple of ``unit``) over ``values`` by largest
    remainder: each value rounded down to ``unit``, the missing units one each
    to the largest remainders (the earlier value first on a tie). ``target``
    must be within ``len(values)`` units of the sum's floor (a half-up
    rounding of the sum always is)."""
    floors = [(Fraction(v) // unit) * unit for v in values]
    extra, rest = divmod(target - sum(floors), unit)
    if rest or not 0 <= extra <= len(values):
        raise ValueError(f"cannot allocate {target} over {len(values)} values in units of {unit}")
    order = sorted(range(len(values)), key=lambda i: (-(Fraction(values[i]) - floors[i]), i))
    out = [int(f) for f in floors]
    for i in order[:extra]:
        out[i] += unit
    return out


def tax_on(net: int, tax_rate: int) -> Fraction:
    """The exact tax of ``net`` micro-units (``tax_rate`` = percent × 1,000,000)."""
    return Fraction(net * tax_rate, TAX_SCALE)


def round_invoice(lines: Sequence[Line], *, currency: str, line_decimals: int, tax_rate: int) -> Totals:
    """Round the lines and the invoice (see the module docstring); sets each
    line's net, rounding, tax and total, and returns the invoice's figures."""
    m = minor_units(currency)
    e = max(check_line_decimals(line_decimals), m)
    charges_total = sum(ln.exact for ln in lines)
    net = round_half_up(charges_total, m)
    tax = round_half_up(tax_on(net, tax_rate), m)
    if lines and e == m:
        unit = 10 ** (6 - m)
        nets = allocate([ln.exact for ln in lines], net, unit)
        taxes = allocate([tax_on(n, tax_rate) for n in nets], tax, unit)
    else:
        nets = [round_half_up(ln.exact, e) for ln in lines]
        taxes = [round_half_up(tax_on(n, tax_rate), e) for n in nets]
    for ln, n, t in zip(lines, nets, taxes, strict=True):
        ln.net, ln.rounding, ln.tax, ln.total = n, n - ln.exact, t, n + t
    return Totals(e, charges_total, net, net - charges_total, tax, net + tax)
