"""The rule for confirming an invoice: only once its period has closed, unless ad hoc."""

from __future__ import annotations

from datetime import datetime

from cpaas_cli.errors import Conflict
from cpaas_cli.models.invoices import Invoice
from cpaas_cli.timeutil import in_zone, iso


def refuse_unclosed(inv: Invoice, *, at: datetime, now: datetime, ad_hoc: bool) -> None:
    """Conflict unless the period has closed both now and at ``at`` (the issue time).

    ``ad_hoc`` is an explicit ad-hoc issue of a running period: the invoice takes
    what the period holds so far; charges of it that come later go to the next
    invoice as correction lines, like any late charge of a confirmed period.
    """
    if ad_hoc or min(at, now) >= inv.period_end:
        return
    raise Conflict(
        f"the period of invoice {inv.id} has not closed: it ends at "
        f"{in_zone(inv.period_end, inv.billing_tz)} {inv.billing_tz} ({iso(inv.period_end)}); "
        "confirm after that, or pass --ad-hoc for an explicit ad-hoc issue"
    )
