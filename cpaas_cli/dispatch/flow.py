"""What a dispatch worker may send, and what it may answer, given what is stored.

Two rules keep a SIGKILL of ``serve`` from losing or duplicating more than the
window (DESIGN: anything received is committed before it is acknowledged;
anything sent is recorded before it leaves):

* **Release.** Claimed messages wait in :attr:`Flow.ready`. A message goes to
  the gateway only after a commit that moved its queue row from ``claimed`` to
  ``sending``, and only while the parts handed to the gateway whose results are
  not yet committed stay within the connection's window. So after a crash the
  messages that may have reached the SMSC without a stored submit_sm_resp are
  exactly the ``sending`` rows, at most one window of them; ``claimed`` rows
  were certainly not sent. The worker commits results as they come, in small
  groups, which is also what frees the window for the next submits.
* **Answer.** With a gateway that defers its answers, a receipt or an MO is
  answered (deliver_sm_resp / data_sm_resp) only after the commit that stored
  it; if the worker dies first, the SMSC delivers it again on the next bind.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from cpaas_cli.dispatch import queue


@dataclass
class Flow:
    window: int  # parts handed to the gateway and not committed, at most
    ready: deque[tuple[Any, int, Any]] = field(default_factory=deque)  # (queue row, EDR id, gateway.WireMessage)
    open_parts: int = 0  # handed to the gateway, result not committed
    answered_parts: int = 0  # of those: answered by the SMSC, waiting for the next commit
    hold_for: float = 0.02  # seconds a result or inbound message may wait for a commit
    waiting_since: float | None = None  # when the oldest result or inbound message not committed came

    def add(self, row: Any, edr_id: int, message: Any) -> None:
        """A claimed message (a ``gateway.WireMessage``) waiting to be released."""
        self.ready.append((row, edr_id, message))

    def answered(self, parts: int) -> None:
        """A message's submits were all answered; its result is buffered for the next commit."""
        self.answered_parts += parts

    def due(self, now: float, inflight: int, inbound: int) -> bool:
        """Whether the worker should commit now: a quarter of the window is
        waiting for a commit, or no submit is in flight to wait for, or a result
        or inbound message has waited ``hold_for`` seconds. (Grouping keeps
        commits to a few per window; waiting longer stalls the window and the
        answers: with window 50 on SQLite, commits at half the window sent
        ~2,100 msg/s through `benchmarks/serve.py`, at a quarter ~2,550.)"""
        if not (self.answered_parts or inbound):
            self.waiting_since = None
            return False
        if self.waiting_since is None:
            self.waiting_since = now
        return (
            4 * self.answered_parts >= self.window
            or not inflight  # nothing else to wait for
            or inbound >= 256
            or now - self.waiting_since >= self.hold_for
        )

    def committed(self) -> None:
        self.waiting_since = None

    def release(self, session: Session, now: datetime, *, results: bool) -> list[tuple[Any, int, Any]]:
        """In the caller's transaction: with ``results`` (the transaction stores
        the results buffered since the last one) the parts answered meanwhile
        count as stored, as they commit together with this; then as many ready
        messages as the window allows are moved to ``sending``. Send the
        returned messages only after the commit."""
        if results:
            self.open_parts -= self.answered_parts
            self.answered_parts = 0
        out = []
        while self.ready:
            parts = len(self.ready[0][2].parts)
            if self.open_parts and self.open_parts + parts > self.window:
                break
            out.append(self.ready.popleft())
            self.open_parts += parts
        if out:
            queue.mark_sending(session, [r[0][0] for r in out], now=now)
        return out

    def give_back(self, session: Session, now: datetime) -> int:
        """Put the claimed messages never released back in the queue (a clean stop)."""
        ids = [r[0][0] for r in self.ready]
        self.ready.clear()
        queue.give_back(session, ids, now=now)
        return len(ids)
