from decimal import Decimal

import pytest

from cpaas_cli.money import to_micros
from cpaas_cli.rating.scales import ScaleError, check_steps, increment, total

P1, P2 = to_micros("0.005"), to_micros("0.004")
STEPS = [(1000, P1), (None, P2)]


def test_srv09_tier_vs_back_to_first():
    assert total("tier", STEPS, 1050) == 1000 * P1 + 50 * P2
    assert total("back_to_first", STEPS, 1050) == 1050 * P2
    assert total("tier", STEPS, 1000) == total("back_to_first", STEPS, 1000) == 1000 * P1


def test_three_step_tier():
    steps = [(10000, to_micros("0.05")), (50000, to_micros("0.04")), (None, to_micros("0.03"))]
    got = total("tier", steps, 60000)
    assert Decimal(got) / 10**6 == Decimal("500") + Decimal("1600") + Decimal("300")


@pytest.mark.parametrize("kind", ["tier", "back_to_first"])
def test_increments_sum_to_total(kind):
    charged = sum(increment(kind, STEPS, before, 7) for before in range(0, 1400, 7))
    assert charged == total(kind, STEPS, 1400)


def test_zero_quantity_and_bad_steps():
    assert total("tier", STEPS, 0) == 0
    with pytest.raises(ScaleError):
        check_steps([(1000, 5), (500, 4), (None, 3)])
    with pytest.raises(ScaleError):
        check_steps([(1000, 5)])
    with pytest.raises(ScaleError):
        total("bogus", STEPS, 5)
