"""Pacing helpers for vendor connections: a token-bucket rate limiter, the
per connection × sender ID limits shared by every worker of a process, and an
exponential back-off. All are pure (no I/O, no sleeping) and take an injectable
clock, so they are tested with a fake one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """At most ``rate`` takes per second on average, with bursts up to ``burst``.

    ``rate`` of None (or 0) means unlimited. The default burst is 50 ms worth of
    tokens (at least one), enough to absorb scheduling jitter without letting a
    long idle spell turn into a flood.
    """

    def __init__(self, rate: float | None, burst: float | None = None, clock: Clock = time.monotonic):
        self.rate = float(rate) if rate else None
        self.burst = float(burst) if burst else (max(1.0, self.rate * 0.05) if self.rate else 0.0)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()
        self._lock = threading.Lock()  # shared by the workers of a connection (SenderLimits)

    def _refill(self) -> None:
        now = self._clock()
        if self.rate is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if they are there; never waits."""
        if self.rate is None:
            return True
        with self._lock:
            self._refill()
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False

    def delay(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens will be available (0 when they are now)."""
        if self.rate is None:
            return 0.0
        with self._lock:
            self._refill()
            missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate


class SenderLimits:
    """The RPS limit of DSP-02: per connection × sender ID, whatever the number
    of workers (binds) that send for that pair. Every gateway of a process asks
    the same instance (:data:`PROCESS_LIMITS`) and so takes from the same bucket;
    separate processes have separate buckets (see the README)."""

    def __init__(self, clock: Clock = time.monotonic):
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, connection: str, sender: str, rate: float | None) -> TokenBucket | None:
        """The shared bucket of (connection, sender) at ``rate`` per second; None when unlimited."""
        if not rate:
            return None
        key = (connection, sender)
        with self._lock:
            got = self._buckets.get(key)
            if got is None or got.rate != float(rate):  # a changed limit starts a new bucket
                got = self._buckets[key] = TokenBucket(rate, clock=self._clock)
            return got


PROCESS_LIMITS = SenderLimits()


class Backoff:
    """Exponential back-off: ``initial``, then times ``factor`` up to ``maximum``."""

    def __init__(self, initial: float = 0.1, factor: float = 2.0, maximum: float = 30.0):
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self._next = initial
        self.attempts = 0

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self._next = self.initial
        self.attempts = 0
