"""The pure rules of a callback: its body, its signature, its back-off.

Body: the seed's fields (SPEC CMP-25) as compact JSON in a fixed order:
``transactionID``, ``dnis``, ``status`` (PREPARED, BILLED, SENT, DELIVERED,
UNDELIVERED, FAILED, SEEN), ``eventTime`` (``yyyy-MM-dd'T'HH:mm:ss.SSSxxx``,
UTC: ``2026-12-07T10:15:30.250+00:00``), ``channel`` (SMS, VIBER), and
``message`` for an MO. An OTP result (outbox kind ``otp``) has its own body:
:func:`otp_body`.

Signature: ``X-Cpaas-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` of
``<t>.<body>`` under the key's signing secret. A receiver recomputes it over
the raw body and refuses a ``t`` too far from its clock (replay);
:func:`verify` does both. ``X-Cpaas-Callback-Id`` names the outbox row: the
delivery is at-least-once, so a receiver drops a repeated id.

Back-off: attempt n waits ``min(BASE * 2**(n-1), CAP)`` seconds times a
random factor in [0.5, 1) (jitter, so receivers coming back are not hit by
every sender at once); after ``RETRY_FOR`` from the event's first write a
failed row is dead-lettered (``cpaas callback list --failed``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta

BASE_S = 2.0
CAP_S = 3600.0
RETRY_FOR = timedelta(hours=24)
TOLERANCE_S = 300
SIGNATURE_HEADER = "X-Cpaas-Signature"
ID_HEADER = "X-Cpaas-Callback-Id"

STATUS_OF_EDR = {
    "prepared": "PREPARED",
    "billed": "BILLED",
    "submitted": "SENT",
    "delivered": "DELIVERED",
    "undelivered": "UNDELIVERED",
    "failed": "FAILED",
    "seen": "SEEN",
}


def event_time(at: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSSxxx`` in UTC."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+00:00"


def body(
    *, transaction_id: str, dnis: str, status: str, event_at: datetime, channel: str, message: str | None
) -> bytes:
    data = {
        "transactionID": transaction_id,
        "dnis": dnis,
        "status": status,
        "eventTime": event_time(event_at),
        "channel": channel.upper(),
    }
    if message is not None:
        data["message"] = message
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def otp_body(payload: dict) -> bytes:
    """The body of an OTP result callback (SPEC OTP-06): requestId, number, status,
    timestamp (epoch seconds of the request), billable, in that order, compact JSON;
    an e-mail request has ``email`` in the place of ``number``."""
    keys = ("requestId", "email" if "email" in payload else "number", "status", "timestamp", "billable")
    data = {k: payload.get(k) for k in keys}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, payload: bytes, *, now: float, tolerance: int = TOLERANCE_S) -> bool:
    """Whether ``header`` signs ``payload`` with ``secret`` at a time within ``tolerance`` of ``now``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - t) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, t, payload), f"t={t},v1={parts.get('v1', '')}")


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1, 2, …)."""
    delay = min(BASE_S * 2 ** max(0, attempts - 1), CAP_S)
    return delay * (0.5 + 0.5 * (rng or random).random())
