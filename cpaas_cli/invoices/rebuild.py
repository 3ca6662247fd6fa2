"""The lines of one invoice, rebuilt from the charges it has claimed.

Set-based: the database sums the claimed rated charges per EDR and then per
pricing cluster, destination, sender and unit price (two GROUP BYs), and the
pure rules of ``invoices/lines.py`` fold them into lines and round the
invoice (SPEC AMB-25). Which charges an invoice claims is ``service.py``'s.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli import clock
from cpaas_cli.invoices import lines as invoice_lines
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.catalog import Service
from cpaas_cli.models.edr import Edr, EdrLevel
from cpaas_cli.models.invoices import Invoice, InvoiceCharge, InvoiceLine

LINE = InvoiceLine.__table__
IC = InvoiceCharge.__table__
CHG = Charge.__table__
EDR = Edr.__table__
LEVEL = EdrLevel.__table__
RATED_KINDS = ("edr", "scale_adjustment", "rerate", "refund")  # charges of one EDR: folded into usage lines

_CORR = (CHG.c.at < sa.bindparam("p_start")).label("corr")
# The rated charges of an invoice, first summed per EDR (event charge, scale
# adjustment, rerates, refund) and then per pricing cluster, destination,
# sender and the EDR's current unit price; lines.usage_lines folds them.
_PER_EDR = (
    sa.select(
        CHG.c.edr_id,
        CHG.c.agreement_id,
        _CORR,
        sa.func.min(CHG.c.period_start).label("ps"),
        sa.func.count().label("n"),
        sa.func.sum(CHG.c.amount).label("amt"),
        sa.func.max(CHG.c.at).label("last_at"),
        sa.func.max(sa.case((CHG.c.kind == "rerate", 1), else_=0)).label("rerated"),
    )
    .select_from(IC.join(CHG, CHG.c.id == IC.c.charge_id))
    .where(IC.c.invoice_id == sa.bindparam("inv_id"), CHG.c.kind.in_(RATED_KINDS))
    .group_by(CHG.c.edr_id, CHG.c.agreement_id, _CORR)
    .subquery("per_edr")
)
_E = _PER_EDR.c


def _priced(column: str) -> sa.ColumnElement:
    """The EDR's price column, or its reseller CDR's when the invoice is of a reseller level (RAT-10)."""
    return sa.case((LEVEL.c.id.isnot(None), LEVEL.c[column]), else_=EDR.c[column])


_BILLED = sa.and_(_priced("cost").isnot(None), _priced("cost") != 0)
_USAGE_KEY = (_E.corr, _E.ps, _priced("service_id").label("service_id"), _priced("rate_path").label("rate_path"),
              EDR.c.channel, EDR.c.direction, EDR.c.country, EDR.c.network, EDR.c.sender,
              _priced("unit_price").label("unit_price"))  # fmt: skip
_USAGE = (
    sa.select(
        *_USAGE_KEY,
        sa.func.sum(sa.case((_E.edr_id.is_(None), _E.n), (_BILLED, 1), else_=0)).label("count"),
        sa.func.sum(sa.case((_BILLED, _priced("quantity")), else_=0)).label("volume"),
        sa.func.sum(_E.n).label("charges"),
        sa.func.sum(_E.amt).label("amt"),
        sa.func.max(_E.last_at).label("last_at"),
        sa.func.max(_E.rerated).label("rerated"),
    )
    .select_from(
        _PER_EDR.outerjoin(EDR, EDR.c.id == _E.edr_id).outerjoin(
            LEVEL, sa.and_(LEVEL.c.edr_id == _E.edr_id, LEVEL.c.agreement_id == _E.agreement_id)
        )
    )
    .group_by(*_USAGE_KEY)
)
_OTHERS = (
    sa.select(CHG.c.kind, CHG.c.amount, CHG.c.at, CHG.c.details)
    .select_from(IC.join(CHG, CHG.c.id == IC.c.charge_id))
    .where(IC.c.invoice_id == sa.bindparam("inv_id"), CHG.c.kind.not_in(RATED_KINDS))
)


def rebuild(session: Session, inv: Invoice) -> None:
    """Rebuild the lines from every charge the invoice covers (set-based GROUP
    BY, then the pure rules of ``invoices/lines.py``) with the invoice's
    ``line_decimals``."""
    session.execute(sa.delete(LINE).where(LINE.c.invoice_id == inv.id))
    groups: list[invoice_lines.Usage] = []
    charges = 0
    for r in session.execute(_USAGE, {"inv_id": inv.id, "p_start": inv.period_start}).mappings():
        charges += int(r["charges"])
        groups.append(
            invoice_lines.Usage(
                bool(r["corr"]),
                r["ps"],
                r["service_id"],
                r["rate_path"],
                "/".join(x for x in (r["channel"], r["direction"]) if x) or None,
                r["country"],
                r["network"],
                r["sender"],
                r["unit_price"],
                int(r["count"] or 0),
                int(r["volume"] or 0),
                int(r["amt"] or 0),
                r["last_at"],
                bool(r["rerated"]),
            )
        )
    out = invoice_lines.usage_lines(groups)
    ids = {ln.service_id for ln in out if ln.service_id is not None}
    names = dict(session.execute(sa.select(Service.id, Service.name).where(Service.id.in_(ids))).all())
    for ln in out:
        ln.description = invoice_lines.describe_usage(ln, names.get(ln.service_id))
    # Pack purchases and fees: few rows, grouped by their description.
    others: dict[tuple[str, bool, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in session.execute(_OTHERS, {"inv_id": inv.id}).mappings():
        d = r["details"] or {}
        g = others[(r["kind"], r["at"] < inv.period_start, invoice_lines.describe_other(r["kind"], d))]
        g[0] += 1
        g[1] += int(d.get("volume") or 1)
        g[2] += int(r["amount"])
        charges += 1
    out += [invoice_lines.other_line(k, c, desc, *g) for (k, c, desc), g in others.items()]
    out = invoice_lines.sort_lines(out)
    if inv.line_decimals is None:
        inv.line_decimals = invoice_lines.DEFAULT_LINE_DECIMALS
    t = invoice_lines.round_invoice(out, currency=inv.currency, line_decimals=inv.line_decimals, tax_rate=inv.tax_rate)
    if out:
        session.execute(
            sa.insert(LINE),
            [
                {
                    "invoice_id": inv.id,
                    "position": pos,
                    "kind": ln.kind,
                    "correction": ln.correction,
                    "service_id": ln.service_id,
                    "resource": ln.resource,
                    "country": ln.country,
                    "network": ln.network,
                    "description": ln.description,
                    "count": ln.count,
                    "volume": ln.volume,
                    "unit_price": ln.unit_price,
                    "exact": ln.exact,
                    "net": ln.net,
                    "rounding": ln.rounding,
                    "tax": ln.tax,
                    "total": ln.total,
                }
                for pos, ln in enumerate(out, 1)
            ],
        )
    inv.charge_count = charges
    inv.charges_total, inv.net, inv.rounding = t.charges_total, t.net, t.rounding
    inv.tax, inv.total = t.tax, t.total
    inv.calculated_at = clock.now()
    session.flush()
