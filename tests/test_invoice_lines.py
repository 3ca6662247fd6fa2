"""The invoice's lines and rounding (SPEC AMB-25), pure: hand-computed vectors for
back-to-first folding, the tax on the net, largest-remainder lines and every
currency's minor unit, and hypothesis invariants over sub-cent prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpaas_cli.invoices import lines as L
from cpaas_cli.money import _MINOR, MICROS, minor_units, round_half_up, round_minor
from cpaas_cli.rating.scales import unit_price

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def m(text: str) -> int:
    return int(Fraction(text) * MICROS)


def usage(price: str, count: int, amount: int, *, second: int = 0, country="FR", sender="ACME", **kw) -> L.Usage:
    base = dict(correction=False, period_start=T0, service_id=1, rate_path="sms/sms_message/mt/others*",
                resource="sms/mt", country=country, network=None, sender=sender, unit_price=m(price),
                count=count, volume=count, amount=amount, last_at=T0 + timedelta(seconds=second))  # fmt: skip
    base.update(kw)
    return L.Usage(**base)


def back_to_first_groups(steps, sizes, countries=("FR",), senders=("ACME",)) -> list[L.Usage]:
    """What the engine charges, one group per EDR (as the GROUP BY gives with distinct keys):
    the event at the price of the counter after it, the crossing EDR also re-prices the earlier units."""
    out, before = [], 0
    for i, q in enumerate(sizes):
        after = before + q
        p_new = unit_price(steps, after)
        amount = q * p_new
        if before and unit_price(steps, before) != p_new:
            amount += before * (p_new - unit_price(steps, before))
        out.append(
            L.Usage(
                False,
                T0,
                1,
                "sms/sms_message/mt/others*",
                "sms/mt",
                countries[i % len(countries)],
                None,
                senders[0],
                p_new,
                1,
                q,
                amount,
                T0 + timedelta(seconds=i),
            )  # fmt: skip
        )
        before = after
    return out


def test_round_half_up_vectors():
    assert round_half_up(m("0.125"), 2) == m("0.13") and round_half_up(-m("0.125"), 2) == -m("0.13")
    assert round_half_up(m("0.1249"), 2) == m("0.12") and round_half_up(m("0.1221"), 4) == m("0.1221")
    assert round_half_up(m("1.5"), 0) == m("2") and round_half_up(m("2.4999"), 0) == m("2")
    assert round_half_up(Fraction(5_355_000), 2) == m("5.36")  # 25.50 × 21 %
    assert round_half_up(m("0.000001"), 6) == 1
    with pytest.raises(ValueError):
        round_half_up(1, 7)


# One vector per minor unit: (currency, exact, net half-up to its minor units).
MINOR_VECTORS = [
    ("JPY", "1.5", "2"),
    ("JPY", "2.4999", "2"),
    ("KRW", "-0.5", "-1"),
    ("EUR", "0.125", "0.13"),
    ("EUR", "0.1221", "0.12"),
    ("USD", "-0.005", "-0.01"),
    ("BHD", "0.1235", "0.124"),
    ("KWD", "0.0005", "0.001"),
    ("OMR", "12.34549", "12.345"),
    ("CLF", "0.12345", "0.1235"),
]


@pytest.mark.parametrize(("currency", "exact", "net"), MINOR_VECTORS)
def test_net_rounds_once_to_each_currencys_minor_unit(currency, exact, net):
    lines = [L.Line("fee", False, exact=m(exact))]
    t = L.round_invoice(lines, currency=currency, line_decimals=4, tax_rate=0)
    assert (t.net, t.rounding, t.total) == (m(net), m(net) - m(exact), m(net))
    assert t.decimals == max(4, minor_units(currency))


@pytest.mark.parametrize("currency", sorted({*_MINOR, "EUR", "USD", "GBP"}))
def test_every_currency_lines_add_up_at_its_minor_unit(currency):
    """Three lines of half a minor unit each (plus a tenth): lines at the currency's
    decimals are allocated by largest remainder and add up to the net; with more
    decimals they keep theirs and the net still rounds once."""
    d = minor_units(currency)
    unit = 10 ** (6 - d)
    exacts = [unit // 2, unit // 2 + unit // 10, unit // 2]
    lines = [L.Line("fee", False, exact=x) for x in exacts]
    t = L.round_invoice(lines, currency=currency, line_decimals=d, tax_rate=30_000_000)
    assert t.net == round_minor(sum(exacts), currency) == 2 * unit
    assert [ln.net for ln in lines] == [unit, unit, 0]  # the two largest remainders (the earlier on a tie)
    assert t.tax == unit and [ln.tax for ln in lines] == [unit, 0, 0]  # 30 % of 2 units = 0.6 → 1
    lines = [L.Line("fee", False, exact=x) for x in exacts]
    t6 = L.round_invoice(lines, currency=currency, line_decimals=6, tax_rate=0)
    assert [ln.net for ln in lines] == exacts and t6.net == 2 * unit


def test_back_to_first_11_messages_one_line_at_the_final_price():
    """11 messages, back-to-first 0.0125 up to 10 then 0.0111: today 0.14 (events) and
    −0.01 (adjustment) = 0.13; one line 11 × 0.0111 = 0.1221, net 0.12."""
    steps = [(10, m("0.0125")), (None, m("0.0111"))]
    groups = back_to_first_groups(steps, [1] * 11)
    assert sum(g.amount for g in groups) == m("0.1221")
    (line,) = L.usage_lines(groups)
    assert (line.count, line.volume, line.unit_price, line.exact) == (11, 11, m("0.0111"), m("0.1221"))
    t = L.round_invoice([line], currency="EUR", line_decimals=4, tax_rate=0)
    assert (line.net, t.charges_total, t.net, t.rounding) == (m("0.1221"), m("0.1221"), m("0.12"), -m("0.0021"))
    two = L.usage_lines(groups)
    L.round_invoice(two, currency="EUR", line_decimals=2, tax_rate=0)
    assert two[0].net == m("0.12")


def test_back_to_first_25_messages_over_two_destinations():
    """25 × 0.05 = 1.25 (not 10 × 0.06, 15 × 0.05 and a credit of 0.10), each country its share."""
    steps = [(10, m("0.06")), (None, m("0.05"))]
    groups = back_to_first_groups(steps, [1] * 25, countries=("FR", "FR", "DE"))
    got = {ln.country: (ln.count, ln.volume, ln.unit_price, ln.exact) for ln in L.usage_lines(groups)}
    assert got == {"FR": (17, 17, m("0.05"), m("0.85")), "DE": (8, 8, m("0.05"), m("0.40"))}


def test_back_to_first_counted_per_sender():
    """Two counters (grouped by sender): ACME crossed the threshold, BETA did not."""
    steps = [(3, m("0.06")), (None, m("0.05"))]
    acme = back_to_first_groups(steps, [1] * 4, senders=("ACME",))
    beta = [usage("0.06", 2, m("0.12"), second=10, sender="BETA")]
    got = sorted((ln.count, ln.unit_price, ln.exact) for ln in L.usage_lines(acme + beta))
    assert got == [(2, m("0.06"), m("0.12")), (4, m("0.05"), m("0.20"))]


def test_price_change_mid_period_keeps_two_prices():
    lines = L.usage_lines([usage("0.06", 5, m("0.30"), second=1), usage("0.05", 5, m("0.25"), second=2)])
    assert sorted((ln.count, ln.unit_price, ln.exact) for ln in lines) == [
        (5, m("0.05"), m("0.25")),
        (5, m("0.06"), m("0.30")),
    ]


def test_rerate_folded_and_corrections_per_destination():
    # in the period: events at 0.05 and a rerate of −0.01 each, now priced 0.04: one line
    (ln,) = L.usage_lines([usage("0.04", 3, m("0.12"), rerated=True)])
    assert (ln.unit_price, ln.exact, ln.rerated) == (m("0.04"), m("0.12"), True)
    assert L.describe_usage(ln, "SMS service") == "SMS service · SMS/MT · FR · re-rated"
    # corrections of a confirmed period: the differences, one line per destination
    corr = [usage("0.10", 2, m("0.10"), correction=True, rerated=True),
            usage("0.02", 3, -m("0.05"), correction=True, rerated=True)]  # fmt: skip
    (c,) = L.usage_lines(corr)
    assert (c.count, c.volume, c.exact, c.unit_price) == (5, 5, m("0.05"), m("0.01"))
    assert L.describe_usage(c, "SMS service").endswith("(correction for earlier periods: re-rating)")


def test_tax_on_the_net_not_per_line():
    """Net 25.50 at 21 %: 5.355 → 5.36. Each of these lines' tax rounds down, so a tax per
    line (the old rule) gave 0.21 + 0.22 + 0.25 + 0.29 + 0.50 + 3.86 = 5.33."""
    amounts = ["1.02", "1.07", "1.21", "1.40", "2.40", "18.40"]
    assert sum(round_minor(Fraction(m(a) * 21, 100), "EUR") for a in amounts) == m("5.33")
    for decimals in (4, 2):
        lines = [L.other_line("fee", False, f"fee {a}", 1, 1, m(a)) for a in amounts]
        t = L.round_invoice(lines, currency="EUR", line_decimals=decimals, tax_rate=21_000_000)
        assert (t.net, t.tax, t.total) == (m("25.50"), m("5.36"), m("30.86"))
        if decimals == 2:  # the lines' taxes are allocated: they add up to the invoice's
            assert sum(ln.tax for ln in lines) == m("5.36")
            assert [ln.tax for ln in lines] == [m(x) for x in ("0.22", "0.23", "0.26", "0.29", "0.50", "3.86")]


def test_allocate_refuses_an_impossible_target():
    with pytest.raises(ValueError):
        L.allocate([1, 1], 5_000_000, 10_000)
    assert L.allocate([], 0, 10_000) == []
    assert L.round_invoice([], currency="EUR", line_decimals=4, tax_rate=21_000_000).net == 0


def test_line_decimals_are_checked():
    for bad in (-1, 7, "2", 2.0, True):
        with pytest.raises(ValueError):
            L.check_line_decimals(bad)
    assert [L.check_line_decimals(d) for d in range(7)] == list(range(7))


CURRENCIES = st.sampled_from(sorted({*_MINOR, "EUR", "USD"}))


@settings(max_examples=300, deadline=None)
@given(
    currency=CURRENCIES,
    decimals=st.integers(0, 6),
    rate=st.integers(0, 30_000_000),
    charges=st.lists(
        st.tuples(st.integers(0, 5), st.integers(-3_000, 60_000), st.integers(1, 40)), min_size=1, max_size=30
    ),
)
def test_invoice_net_is_the_charges_rounded_once(currency, decimals, rate, charges):
    """For any sub-cent prices: Σ line amounts = Σ charges exactly; net − Σ charges is
    below one minor unit (at most half); tax = net × rate rounded once; lines at the
    currency's decimals add up to net and tax."""
    groups = [usage("0.001", n, price * n, second=i, country=("ES", "FR", "DE", "IT", "PT", "GR")[k])
              for i, (k, price, n) in enumerate(charges)]  # fmt: skip
    for g, (_k, price, _n) in zip(groups, charges, strict=True):
        g.unit_price = price
    lines = L.usage_lines(groups) + [L.other_line("fee", False, "fee", 1, 1, 123_457)]
    total = sum(g.amount for g in groups) + 123_457
    t = L.round_invoice(lines, currency=currency, line_decimals=decimals, tax_rate=rate)
    unit = 10 ** (6 - minor_units(currency))
    assert t.charges_total == sum(ln.exact for ln in lines) == total
    assert abs(t.net - total) < unit and 2 * abs(t.net - total) <= unit and t.net % unit == 0
    assert t.tax == round_minor(Fraction(t.net * rate, 100 * MICROS), currency) and t.total == t.net + t.tax
    if t.decimals == minor_units(currency):
        assert sum(ln.net for ln in lines) == t.net and sum(ln.tax for ln in lines) == t.tax
    else:
        assert all(ln.net == round_half_up(ln.exact, t.decimals) for ln in lines)


@settings(max_examples=150, deadline=None)
@given(
    thresholds=st.lists(st.integers(1, 30), min_size=1, max_size=3, unique=True).map(sorted),
    prices=st.lists(st.integers(1, 99_999), min_size=4, max_size=4),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=40),
)
def test_back_to_first_always_one_price(thresholds, prices, sizes):
    """Whatever the steps and message sizes, a back-to-first counter's charges fold into
    lines at the price of its final quantity, adding up to total × that price."""
    steps = [(t, prices[i]) for i, t in enumerate(thresholds)] + [(None, prices[-1])]
    groups = back_to_first_groups(steps, sizes, countries=("FR", "DE"))
    final = unit_price(steps, sum(sizes))
    lines = L.usage_lines(groups)
    assert {ln.unit_price for ln in lines} == {final}
    assert sum(ln.exact for ln in lines) == sum(sizes) * final == sum(g.amount for g in groups)
