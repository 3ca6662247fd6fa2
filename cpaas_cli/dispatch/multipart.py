"""Long (multi-part) messages at dispatch: which parts ask for a delivery
receipt, what the SMSC's answers to the parts make of the message, and which
receipts make it final.

A connection's ``multipart_final`` says how its vendor reports long messages:

* ``all`` (default): every part asks for a receipt (registered_delivery 1);
  the message is final when the receipts of all its sent parts came, and the
  worst of them wins (one undelivered part: undelivered).
* ``any``: every part asks; the first receipt that comes decides. For vendors
  that send one receipt per long message, for its first or its last part.
* ``last``: only the last part asks; its receipt decides.

The vendor message id stored on the EDR and the queue row (what a receipt is
matched by after a restart) is the id of the part whose receipt is expected
first: the last part's under ``last``, else the first sent part's.

Per-part outcome: the SMSC answers each part. All refused: the message failed
(its charge is given back whole, ``charging/refunds.refund_unsent``). Some
refused: the message was submitted with N of M parts; its EDR's ``segments``
becomes N (what is billed) and ``segments_refused`` M − N, the refused parts'
share of the charge is given back (``charging/refunds.refund_refused_parts``),
and the receipts of the sent parts finalise it as above. Under ``last`` a
refused last part means no receipt can come: the message is closed at once
as undelivered with the refusal's code.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from cpaas_cli.charging import refunds
from cpaas_cli.dispatch.receipts import DELIVERED
from cpaas_cli.models.campaigns import OutboundMessage as QueueRow

Q = QueueRow.__table__


def receipt_flags(mode: str, parts: int) -> tuple[bool, ...]:
    """registered_delivery per part: only on the last under ``last``, else on every part."""
    if mode == "last" and parts > 1:
        return (False,) * (parts - 1) + (True,)
    return (True,) * parts


@dataclass
class Answers:
    """The SMSC's answers (submit_sm_resp) to the parts of one message."""

    queue_id: int
    edr_id: int
    parts: int
    ids: list[str | None] = field(default_factory=list)
    refused: dict[int, tuple[str, str]] = field(default_factory=dict)  # part -> (code, reason)
    answered: int = 0

    def __post_init__(self) -> None:
        if not self.ids:
            self.ids = [None] * self.parts

    def accept(self, part: int, message_id: str) -> bool:
        """Record an accepted part; True when every part is answered."""
        self.ids[part] = message_id
        self.answered += 1
        return self.answered >= self.parts

    def refuse(self, part: int, status: int, reason: str) -> bool:
        """Record a refused part; True when every part is answered."""
        self.refused[part] = (f"0x{status:02X}", reason)
        self.answered += 1
        return self.answered >= self.parts


@dataclass
class Awaiting:
    """A submitted message waiting for its receipts."""

    queue_id: int
    edr_id: int
    ids: tuple[str, ...]  # the part ids whose receipts count
    needed: int  # receipts that make it final
    seen: int = 0
    worst: str = DELIVERED
    err: str | None = None

    def count(self, status: str, err: str | None) -> bool:
        """Count one receipt; True exactly once, when it makes the message final."""
        self.seen += 1
        if self.seen > self.needed:
            return False
        if status != DELIVERED and self.worst == DELIVERED:
            self.worst, self.err = "undelivered", err
        return self.seen == self.needed


@dataclass
class Settled:
    """What the answers made of a message."""

    queue_id: int
    edr_id: int
    parts: int
    sent: int
    error: tuple[str, str] | None  # the first refused part's (code, reason)
    key_id: str  # the vendor message id stored on the EDR and the queue row
    awaiting: Awaiting | None  # None: failed, or no receipt can come
    closed: bool = False  # sent, but the part that asked for the receipt was refused
    refused: tuple[int, ...] = ()  # the refused parts, numbered from 1

    @property
    def failed(self) -> bool:
        return self.sent == 0

    @property
    def partial(self) -> bool:
        return 0 < self.sent < self.parts

    def summary(self) -> str:
        """For the queue row: how many parts were refused, and the first refusal."""
        code, reason = self.error or ("", "")
        return f"{self.parts - self.sent} of {self.parts} parts refused: {code} {reason}".strip()

    def why(self) -> str:
        """For the EDR's note: which parts the SMSC refused, and the first refusal."""
        code, reason = self.error or ("", "")
        which = ", ".join(map(str, self.refused))
        return f"part{'s' if len(self.refused) > 1 else ''} {which} refused by the SMSC: {code} {reason}".strip()


def settle(mode: str, a: Answers) -> Settled:
    """Decide the message once every part is answered (see the module docstring)."""
    sent_ids = [(i, m) for i, m in enumerate(a.ids) if i not in a.refused]
    sent = len(sent_ids)
    error = a.refused[min(a.refused)] if a.refused else None
    if not sent:
        return Settled(a.queue_id, a.edr_id, a.parts, 0, error, "", None)
    refused = tuple(i + 1 for i in sorted(a.refused))
    flags = receipt_flags(mode, a.parts)
    asking = [m for i, m in sent_ids if flags[i]]
    if not asking:  # under `last`, the last part was refused
        return Settled(a.queue_id, a.edr_id, a.parts, sent, error, sent_ids[0][1] or "", None, True, refused)
    ids = tuple(m for m in asking if m)
    key = asking[-1] if mode == "last" else asking[0]
    needed = 1 if mode in ("any", "last") else len(ids)
    waiting = Awaiting(a.queue_id, a.edr_id, ids, needed) if ids else None
    return Settled(a.queue_id, a.edr_id, a.parts, sent, error, key or "", waiting, False, refused)


class Finished:
    """Part ids of messages already final whose receipts may still come (``any``):
    kept, up to ``size``, so that such a receipt is recognised and not taken
    for an unknown one."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, ids: tuple[str, ...]) -> None:
        for m in ids:
            self._ids[m] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def take(self, message_id: str | None) -> bool:
        """True (once) for the id of a part of a message final already."""
        if message_id is None or message_id not in self._ids:
            return False
        del self._ids[message_id]
        return True


def close(awaiting: dict[str, Awaiting], finished: Finished, w: Awaiting, message_id: str) -> None:
    """A message became final: its other part ids wait no more."""
    rest = tuple(m for m in w.ids if m != message_id and awaiting.pop(m, None) is not None)
    finished.add(rest)


def record_partial(
    session: Session, partial: list[Settled], plans: Any, *, now: datetime
) -> dict[int, tuple[int, str, str | None]]:
    """Store what the partly refused messages were: the queue row's error names the
    refused parts, the EDR counts the parts sent and the refused ones' charge goes
    back. Returns the final statuses of those whose receipt cannot come
    (edr id -> (queue id, "undelivered", refusal code)). No commit."""
    if not partial:
        return {}
    session.execute(
        sa.update(Q).where(Q.c.id == sa.bindparam("b_q")).values(error=sa.bindparam("b_err")),
        [{"b_q": p.queue_id, "b_err": p.summary()[:200]} for p in partial],
    )
    refunds.refund_refused_parts(
        session, {p.edr_id: (p.sent, p.parts - p.sent, p.why()) for p in partial}, plans, now=now
    )
    return {p.edr_id: (p.queue_id, "undelivered", (p.error or ("",))[0]) for p in partial if p.closed}
