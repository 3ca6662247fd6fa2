"""The one seam between campaigns and money: how much an agreement can still spend.

``available(session, agreement, at)`` is balance + credit limit in micro-units
of the agreement's currency, or None when the credit is unlimited; it reads the
money core's ledger (payments counted at ``at`` minus charges so far, plus the
credit limit of the version in force), the same figure the rater checks each
charge against (AMB-22).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.agreements import reselling
from cpaas_cli.billing import ledger
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.billing import Charge
from cpaas_cli.models.edr import Edr


def balance(session: Session, agreement: Agreement, at: datetime) -> int:
    """Balance in micro-units: payments counted at ``at`` minus every charge so far."""
    return ledger.payments_counted(session, agreement.id, at) - ledger.spent(session, agreement.id)


def available(session: Session, agreement: Agreement, at: datetime) -> int | None:
    """Balance + credit limit at ``at``; None = unlimited credit."""
    return ledger.headroom(session, agreement, now=at)


def spent(session: Session, campaign_id: int) -> int | None:
    """Charged so far for a campaign's messages (EDR charges and their scale adjustments)."""
    chg, edr = Charge.__table__.c, Edr.__table__.c
    # the client's own charges: the reseller levels' charges of the same EDRs are theirs (RAT-10)
    q = (
        sa.select(sa.func.coalesce(sa.func.sum(chg.amount), 0))
        .select_from(Charge.__table__.join(Edr.__table__, edr.id == chg.edr_id))
        .where(edr.campaign_id == campaign_id, chg.agreement_id == edr.agreement_id)
    )
    return int(session.execute(q).scalar() or 0)


def levels_above(session: Session, agreement: Agreement, at: datetime) -> list[Agreement]:
    """The reselling agreements whose funds a send on ``agreement`` also needs (RAT-10):
    ``agreements.reselling.agreements_above``."""
    return reselling.agreements_above(session, agreement, at)
