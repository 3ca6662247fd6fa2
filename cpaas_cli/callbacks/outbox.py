"""Writing the callback outbox, in the caller's transaction (no commit here).

Every place that changes the status of a message that may have come through
the API calls one of these functions with the ids it changed, in the same
transaction, so a committed change always has its callback row and a rolled
back one has none. Each is one ``INSERT … SELECT``: only the EDRs (or queue
rows) of API keys with a callback URL produce rows, so the dispatch of
campaign messages pays one indexed probe per batch and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.callbacks.signing import RETRY_FOR, STATUS_OF_EDR
from cpaas_cli.db.types import UTCDateTime
from cpaas_cli.models.callbacks import ApiKeyCallback, CallbackOutbox
from cpaas_cli.models.campaigns import OutboundMessage
from cpaas_cli.models.edr import Edr

OB = CallbackOutbox.__table__
DNIS = 32  # callback_outbox.dnis
K = ApiKeyCallback.__table__
E = Edr.__table__
Q = OutboundMessage.__table__
CHUNK = 5000
COLUMNS = (
    "api_key_id",
    "edr_id",
    "transaction_id",
    "dnis",
    "status",
    "event_at",
    "channel",
    "message",
    "state",
    "attempts",
    "next_at",
    "give_up_at",
    "created_at",
)


def _when(now: datetime):
    return sa.literal(now, UTCDateTime())


def _status_expr(status: str | None, column):
    if status is not None:
        return sa.literal(STATUS_OF_EDR[status])
    return sa.case(*((column == k, v) for k, v in STATUS_OF_EDR.items()), else_=sa.func.upper(column))


def edr_transaction_id(table=E):
    """The transaction id a callback names: the queue row's id, as the send API
    answers it (``"<dnis>: <id>"``); an EDR of a queued message has ``om:<id>``."""
    return sa.func.substr(table.c.external_id, 4)


def record_edrs(
    session: Session,
    edr_ids: Sequence[int] = (),
    *,
    now: datetime,
    status: str | None = None,
    external_ids: Sequence[str] = (),
    changed: bool = False,
) -> int:
    """Callback rows for the EDRs ``edr_ids`` (or with ``external_ids``) sent
    through the API: their current status, or ``status`` (an EDR status name).
    ``changed``: only the EDRs whose ``<status>_at`` is ``now`` (those the
    caller's conditional UPDATE just moved, not those final already).
    Returns how many rows were written."""
    got = 0
    for key_col, values in ((E.c.id, list(edr_ids)), (E.c.external_id, list(external_ids))):
        for start in range(0, len(values), CHUNK):
            cond = [key_col.in_(values[start : start + CHUNK]), E.c.api_key_id.isnot(None)]
            if changed and status is not None:
                cond.append(E.c[f"{status}_at"] == _when(now))
            got += _insert_from_edrs(session, cond, now=now, status=status)
    return got


def _insert_from_edrs(session: Session, cond: list, *, now: datetime, status: str | None) -> int:
    pick = (
        sa.select(
            E.c.api_key_id,
            E.c.id,
            edr_transaction_id(),
            sa.func.coalesce(E.c.destination, ""),
            _status_expr(status, E.c.status),
            _when(now),
            sa.func.upper(E.c.channel),
            sa.null(),
            sa.literal("pending"),
            sa.literal(0),
            _when(now),
            _when(now + RETRY_FOR),
            _when(now),
        )
        .select_from(E.join(K, K.c.api_key_id == E.c.api_key_id))
        .where(*cond, E.c.external_id.isnot(None))
        .order_by(E.c.id)
    )
    return len(session.execute(sa.insert(OB).from_select(list(COLUMNS), pick).returning(OB.c.id)).all())


def record_queued(
    session: Session,
    queue_ids: Sequence[int] = (),
    *,
    now: datetime,
    campaign_id: int | None = None,
    status: str = "prepared",
) -> int:
    """Callback rows for queue rows of API messages (accepted, not claimed yet),
    by id or every one of ``campaign_id``: PREPARED by default. Returns how many."""
    from cpaas_cli.models.campaigns import Campaign

    C = Campaign.__table__
    conds = []
    if campaign_id is not None:
        conds.append([Q.c.campaign_id == campaign_id])
    ids = list(queue_ids)
    for start in range(0, len(ids), CHUNK):
        conds.append([Q.c.id.in_(ids[start : start + CHUNK])])
    got = 0
    for cond in conds:
        pick = (
            sa.select(
                Q.c.api_key_id,
                sa.null(),
                sa.cast(Q.c.id, sa.String),
                Q.c.phone,
                sa.literal(STATUS_OF_EDR[status]),
                _when(now),
                sa.func.upper(C.c.channel),
                sa.null(),
                sa.literal("pending"),
                sa.literal(0),
                _when(now),
                _when(now + RETRY_FOR),
                _when(now),
            )
            .select_from(Q.join(K, K.c.api_key_id == Q.c.api_key_id).join(C, C.c.id == Q.c.campaign_id))
            .where(*cond, Q.c.api_key_id.isnot(None))
            .order_by(Q.c.id)
        )
        got += len(session.execute(sa.insert(OB).from_select(list(COLUMNS), pick).returning(OB.c.id)).all())
    return got


def has_callback(session: Session, api_key_id: int) -> bool:
    """The key has a callback URL: its messages' events are called back."""
    return session.execute(sa.select(K.c.api_key_id).where(K.c.api_key_id == api_key_id)).first() is not None


def record_mo(
    session: Session,
    *,
    api_key_id: int,
    transaction_id: str,
    dnis: str,
    text: str,
    channel: str,
    now: datetime,
) -> None:
    """The callback of an MO answering an API message sent with acceptMO (when the key has a callback)."""
    if not has_callback(session, api_key_id):
        return
    session.execute(
        sa.insert(OB).values(
            api_key_id=api_key_id,
            edr_id=None,
            transaction_id=transaction_id,
            dnis=dnis,
            status="DELIVERED",
            event_at=now,
            channel=channel.upper(),
            message=text,
            state="pending",
            attempts=0,
            next_at=now,
            give_up_at=now + RETRY_FOR,
            created_at=now,
        )
    )


def record_otp(
    session: Session,
    *,
    integration_id: int,
    request_id: str,
    number: str,
    status: str,
    payload: dict,
    now: datetime,
    channel: str = "SMS",
) -> None:
    """The result callback of an OTP request (kind ``otp``): posted to the integration's
    callback URL (or a test request's own status URL), signed with the integration's secret,
    with ``payload`` as the body (``signing.otp_body``). The request id is the transaction id,
    so one request's results go in order. ``channel``: SMS, or EMAIL for an e-mail request."""
    record_otps(session, [(integration_id, request_id, number, status, payload)], now=now, channel=channel)


def record_otps(
    session: Session, results: Sequence[tuple[int, str, str, str, dict]], *, now: datetime, channel: str = "SMS"
) -> None:
    """:func:`record_otp` for many results in one INSERT: (integration id, request id,
    number, status, payload) each, in the order given. ``dnis`` keeps an e-mail address
    cut to its 32 characters (the payload has it whole)."""
    if not results:
        return
    session.execute(
        sa.insert(OB),
        [
            {
                "api_key_id": None,
                "kind": "otp",
                "otp_integration_id": integration_id,
                "payload": payload,
                "edr_id": None,
                "transaction_id": request_id,
                "dnis": number if len(number) <= DNIS else number[: DNIS - 1] + "…",
                "status": status,
                "event_at": now,
                "channel": channel,
                "message": None,
                "state": "pending",
                "attempts": 0,
                "next_at": now,
                "give_up_at": now + RETRY_FOR,
                "created_at": now,
            }
            for integration_id, request_id, number, status, payload in results
        ],
    )
