"""The one seam between campaigns and money: how much an agreement can still spend.

``available(session, agreement, at)`` is balance + credit limit in micro-units
of the agreement's currency, or None when the credit is unlimited.

For now the balance part is zero: the money core (EDRs, charges, balances,
payments) lives on another branch. What exists is the credit limit of the
agreement version in force at ``at`` (None = unlimited). The lead replaces
the balance part here when the money core merges; nothing else in campaigns
reads money state. ``spent`` (the cost of a campaign so far) likewise answers
None until charges exist.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from cpaas_cli.agreements import service as agreements
from cpaas_cli.agreements.models import Agreement


def balance(session: Session, agreement: Agreement, at: datetime) -> int:
    """Current balance in micro-units (zero until the money core merges)."""
    return 0


def available(session: Session, agreement: Agreement, at: datetime) -> int | None:
    """Balance + credit limit at ``at``; None = unlimited credit.

    An agreement with no version in force at ``at`` can spend nothing beyond its balance.
    """
    version = agreements.version_at(session, agreement, at)
    if version is None:
        return balance(session, agreement, at)
    if version.credit_limit is None:
        return None
    return balance(session, agreement, at) + version.credit_limit


def spent(session: Session, campaign_id: int) -> int | None:
    """Charged so far for a campaign's messages; None until charges exist."""
    return None
