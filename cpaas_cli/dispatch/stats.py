"""What a dispatch worker counted (``serve`` prints the sum over its workers)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorkerStats:
    claimed: int = 0
    charged: int = 0  # new EDRs rated at submit time
    reused_edrs: int = 0  # recovered claims: EDR (and charge) reused
    submitted: int = 0  # messages accepted by the SMSC (all parts)
    rejected: int = 0  # messages refused by the SMSC
    refunded: int = 0  # refused messages whose submitted-rule charge was given back
    partly_refused: int = 0  # long messages sent with some parts refused (counted in submitted)
    no_credit: int = 0  # messages not sent for lack of credit
    not_rated: int = 0  # messages not sent because rating rejected them (no rate, blocked, ...)
    receipts: int = 0  # receipts matched to an EDR
    receipts_unmatched: int = 0  # stored in inbound_message with the reason (ambiguous ones included)
    receipts_ambiguous: int = 0  # ids that could name more than one message: never applied
    receipts_extra: int = 0  # receipts of parts of a message already final (multipart_final any)
    mo: int = 0
    mo_answers: int = 0  # MO answering an API message sent with acceptMO (an MO callback when the key has a URL)
    opt_outs: int = 0
    opt_ins: int = 0
    campaigns_failed: int = 0
    statuses: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "statuses"}
        d["receipt_statuses"] = dict(self.statuses)
        return d
