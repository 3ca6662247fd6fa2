"""Scale prices (SRV-09), pure and in integer micro-units.

A scale is a list of steps ``(upto, price)``: ``upto`` is the cumulative
quantity where the step ends (``None`` = no end, only on the last step) and
``price`` the unit price in micro-units.

* tier: each unit is priced by the step it falls in; units before a threshold
  keep their price.
* back_to_first: once a threshold is passed, the whole quantity is priced at
  the price of the step the total falls in.

Example: threshold 1,000 at p1, then p2; 1,050 units → tier = 1000·p1 + 50·p2,
back_to_first = 1050·p2.
"""

from __future__ import annotations

from collections.abc import Sequence

SCALE_TYPES = ("tier", "back_to_first")

Step = tuple[int | None, int]


class ScaleError(ValueError):
    pass


def check_steps(steps: Sequence[Sequence[int | None]]) -> list[Step]:
    """Validate steps: thresholds strictly increasing and positive, the last open."""
    out: list[Step] = []
    if not steps:
        raise ScaleError("a scale needs at least one step")
    last = 0
    for i, step in enumerate(steps):
        if len(step) != 2:
            raise ScaleError(f"step {i + 1}: expected [upto, price]")
        upto, price = step
        if price is None or int(price) < 0:
            raise ScaleError(f"step {i + 1}: price must be zero or more")
        is_last = i == len(steps) - 1
        if upto is None:
            if not is_last:
                raise ScaleError(f"step {i + 1}: only the last step can be open-ended")
        else:
            if is_last:
                raise ScaleError("the last step must be open-ended (no threshold)")
            if int(upto) <= last:
                raise ScaleError(f"step {i + 1}: thresholds must increase (got {upto} after {last})")
            last = int(upto)
        out.append((None if upto is None else int(upto), int(price)))
    return out


def unit_price(steps: Sequence[Step], position: int) -> int:
    """Price of the ``position``-th unit (1-based) of the counter."""
    for upto, price in steps:
        if upto is None or position <= upto:
            return price
    return steps[-1][1]


def total(scale_type: str, steps: Sequence[Step], quantity: int) -> int:
    """Charge in micro-units for ``quantity`` units counted from zero."""
    if quantity <= 0:
        return 0
    if scale_type == "back_to_first":
        return quantity * unit_price(steps, quantity)
    if scale_type != "tier":
        raise ScaleError(f"unknown scale type {scale_type!r}")
    charge = 0
    start = 0
    for upto, price in steps:
        end = quantity if upto is None else min(upto, quantity)
        if end > start:
            charge += (end - start) * price
            start = end
        if start >= quantity:
            break
    return charge


def increment(scale_type: str, steps: Sequence[Step], before: int, quantity: int) -> int:
    """Charge for ``quantity`` more units when the counter already holds ``before``.

    For back_to_first this is the re-priced total minus what was charged before,
    so the sum of increments always equals :func:`total`.
    """
    return total(scale_type, steps, before + quantity) - total(scale_type, steps, before)
