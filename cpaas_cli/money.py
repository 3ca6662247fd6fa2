"""Money: integer micro-units in storage, Decimal in Python, never float.

Rounding happens in two named places only (see DESIGN.md), both half-up (a tie
goes away from zero): ``round_event`` per rated event, and ``round_half_up``
for invoices, which ``invoices/lines.py`` uses to round the lines to
``[invoice] line_decimals`` and the net and tax once to the currency's minor
units (SPEC AMB-25; the rule is in that module's docstring).

Decision: a rated event is kept exact to the micro-unit, not rounded to the
currency's minor units. A2P prices are routinely below one cent (0.004 EUR a
message); rounding each event to cents would make such messages free or double
their price. The invoice is where amounts meet the currency's minor units.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

import pycountry

MICROS = 1_000_000
_MICRO = Decimal("0.000001")
MAX_MICROS = 2**63 - 1
"""The largest amount a column can hold: a signed 64-bit count of micro-units."""
MAX_AMOUNT = Decimal(MAX_MICROS) / MICROS  # 9223372036854.775807


class MoneyError(ValueError):
    pass


def parse_amount(text: str | int | Decimal) -> Decimal:
    """Parse an amount given by a user ("12.5", "1,000.25" is refused).

    At most six decimals and at most ``MAX_AMOUNT`` either way (a signed 64-bit
    count of micro-units); floats are refused so nothing inexact sneaks in.
    """
    if isinstance(text, float):  # pragma: no cover - defensive
        raise MoneyError("amounts must not be floats")
    if isinstance(text, Decimal):
        value = text
    else:
        raw = str(text).strip()
        if not raw:
            raise MoneyError("empty amount")
        try:
            value = Decimal(raw)
        except InvalidOperation as exc:
            raise MoneyError(f"not a number: {raw!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not a finite amount: {text!r}")
    if abs(value) > MAX_AMOUNT:  # checked before quantize, which fails past 28 digits
        raise MoneyError(f"out of range: {_bounded(text)} (the maximum is {MAX_AMOUNT:,f})")
    if value != value.quantize(_MICRO):
        raise MoneyError(f"more than 6 decimals: {text!r}")
    return value


def _bounded(text: object, limit: int = 40) -> str:
    """An over-long number shortened for a message."""
    raw = str(text).strip()
    return raw if len(raw) <= limit else raw[: limit - 1] + "…"


def to_micros(value: str | int | Decimal) -> int:
    return int(parse_amount(value) * MICROS)


def format_micros(micros: int | None, min_decimals: int = 2) -> str | None:
    """Canonical text form used in JSON output: plain decimal, 6 places with
    trailing zeros trimmed down to ``min_decimals`` (2 unless a caller passes a
    currency's minor units: "1" yen, "0.120" dinar)."""
    if micros is None:
        return None
    value = Decimal(micros) / MICROS
    text = format(value.quantize(_MICRO), "f")
    if "." in text:
        text = text.rstrip("0")
        whole, _, frac = text.partition(".")
        if len(frac) < min_decimals:
            frac = frac.ljust(min_decimals, "0")
        text = f"{whole}.{frac}" if frac else whole
    return text


def minor_units(currency: str) -> int:
    """Number of decimals of a currency (ISO 4217). Defaults to 2."""
    return _MINOR.get(currency.upper(), 2)


# ISO 4217 exponents that are not 2 (pycountry does not carry them).
_MINOR = {
    "BHD": 3,
    "BIF": 0,
    "CLF": 4,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "IQD": 3,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "PYG": 0,
    "RWF": 0,
    "TND": 3,
    "UGX": 0,
    "UYI": 0,
    "UYW": 4,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
}


def round_event(micros: int | Decimal, currency: str) -> int:
    """Rounding point 1: the charge of one rated event, to whole micro-units (half-up).

    ``currency`` is accepted so that every rounding site names its currency;
    events are not rounded to minor units (see the module docstring).
    """
    if type(micros) is int:
        return micros  # already whole micro-units: quantizing changes nothing
    return int(Decimal(micros).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def round_half_up(micros: int | Fraction, decimals: int) -> int:
    """Rounding point 2 (invoices): micro-units, or an exact fraction of them,
    to ``decimals`` decimals (0..6), half-up with ties away from zero
    (0.125 → 0.13, −0.125 → −0.13); returns whole micro-units. Exact integer
    arithmetic, so a tax of a huge net rounds right too."""
    if not 0 <= decimals <= 6:
        raise MoneyError(f"decimals must be 0..6, got {decimals}")
    unit = 10 ** (6 - decimals)
    value = Fraction(micros)
    num, den = abs(value.numerator), value.denominator * unit
    steps = (2 * num + den) // (2 * den)
    return (steps if value >= 0 else -steps) * unit


def round_minor(micros: int | Fraction, currency: str) -> int:
    """Micro-units to the currency's minor units (half-up): an invoice's net and tax."""
    return round_half_up(micros, minor_units(currency))


def check_currency(code: str) -> str:
    """Return the upper-cased ISO 4217 code or raise MoneyError."""
    up = (code or "").strip().upper()
    if len(up) != 3 or pycountry.currencies.get(alpha_3=up) is None:
        raise MoneyError(f"not an ISO 4217 currency code: {code!r}")
    return up
