"""A process-local wake-up for idle dispatch workers.

A worker with nothing to claim pauses up to ``idle_sleep`` (1 s) before it
looks at the queue again. A request that waits for its message's submit
result (an OTP send) rings the bell once its queue row is committed, so an
idle worker of the same process claims the row at once. Workers of other
``serve`` processes are not woken: they find the row at their next look, as
before. Nothing is lost when no one listens: the bell only shortens a pause.
"""

from __future__ import annotations

import threading

SLICE_S = 0.1  # an idle worker still sees its stop event within this long

_lock = threading.Lock()
_bells: set[threading.Event] = set()


def register() -> threading.Event:
    bell = threading.Event()
    with _lock:
        _bells.add(bell)
    return bell


def unregister(bell: threading.Event) -> None:
    with _lock:
        _bells.discard(bell)


def ring() -> None:
    """Wake every idle worker of this process."""
    with _lock:
        bells = list(_bells)
    for bell in bells:
        bell.set()


def pause(bell: threading.Event, stop: threading.Event, seconds: float) -> None:
    """Wait up to ``seconds``, or until the bell rings or ``stop`` is set."""
    left = seconds
    while left > 0 and not stop.is_set():
        step = min(left, SLICE_S)
        if bell.wait(step):
            bell.clear()
            return
        left -= step
