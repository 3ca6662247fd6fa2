"""Which API message an MO answers, for its MO callback (SPEC CMP-24, CMP-25).

A message sent through the API with acceptMO (its queue row's ``accept_mo``)
asks for the handset's replies. An MO from handset H to destination D, come in
over connection X, answers the most recent such message that:

- went to H (the MO's source as E.164 digits, as opt-outs read it),
- from a sender whose text is D (numbers compared as E.164 digits: the same
  keys as the opt-out owner lookup, ``inbound.dest_keys``),
- routed over X (the sender ID's connection is X, or it names none and X is
  the default route: the rule receipts are matched by),
- of the company the MO belongs to (``inbound.resolve_owner``), whose MO
  messages mode is still on (``tenant update --no-mo-messages`` stops the
  callbacks at once),
- handed to a worker (claimed) within ``MO_WINDOW`` (7 days) before the MO,
  and not refused (a failed message cannot be answered).

"Most recent" is the highest queue id. The answer names the queue row (its id
is the ``transactionID`` the send API answered and the MT's callbacks carry),
its API key and its channel. Only acceptMO rows are in the partial index
``ix_outbound_message_accept_mo`` (phone, id), so the lookup reads a few index
entries of that handset, whatever the size of the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.dispatch.queue import Q, QueueState
from cpaas_cli.models.campaigns import Campaign
from cpaas_cli.models.tenancy import Company

MO_WINDOW = timedelta(days=7)
# handed to the gateway: sent, or may have been (a crashed worker's, held for the operator)
SENT = (QueueState.SENDING, QueueState.SUBMITTED, QueueState.UNKNOWN, QueueState.DONE)

C = Campaign.__table__
CO = Company.__table__


@dataclass(frozen=True)
class Answered:
    queue_id: int
    api_key_id: int
    channel: str


def answered(
    session: Session,
    *,
    phone: str,
    senders: set[str],
    company_id: int,
    connection_id: int | None,
    default_route: bool,
    now: datetime,
) -> Answered | None:
    """The acceptMO message this MO answers (see the module docstring), or None."""
    if not senders:
        return None
    route = Q.c.connection_id == connection_id
    if default_route:
        route = sa.or_(route, Q.c.connection_id.is_(None))
    row = session.execute(
        sa.select(Q.c.id, Q.c.api_key_id, C.c.channel)
        .select_from(Q.join(C, C.c.id == Q.c.campaign_id).join(CO, CO.c.id == C.c.company_id))
        .where(
            Q.c.accept_mo == sa.true(),
            Q.c.phone == phone,
            Q.c.sender.in_(sorted(senders)),
            route,
            Q.c.state.in_([str(s) for s in SENT]),
            Q.c.claimed_at >= now - MO_WINDOW,
            Q.c.api_key_id.isnot(None),
            C.c.company_id == company_id,
            CO.c.mo_messages == sa.true(),
        )
        .order_by(Q.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return Answered(queue_id=row.id, api_key_id=row.api_key_id, channel=row.channel)
