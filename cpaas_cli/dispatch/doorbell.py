"""A process-local wake-up for idle dispatch workers.

A worker with nothing to claim pauses up to ``idle_sleep`` (1 s) before it
looks at the queue again. A request that waits for its message's submit
result (an OTP send) rings the bell once its queue row is committed, so an
idle worker of the same process claims the row at once. Workers of other
``serve`` processes are not woken: they find the row at their next look, as
before. Nothing is lost when no one listens: the bell only shortens a pause.

The other way round, a worker calls :func:`written` after each commit that
stored submit results, and the listeners (the HTTP API's waits for those
results, ``api/waiting.py``) look at their rows then instead of polling.
"""

from __future__ import annotations

import threading

SLICE_S = 0.1  # an idle worker still sees its stop event within this long

_lock = threading.Lock()
_bells: set[threading.Event] = set()
_listeners: dict[object, object] = {}  # token -> callable() (called from a worker's thread; must not block)


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


def listen(callback) -> object:
    """Call ``callback()`` after each commit of a worker of this process; returns the token for :func:`unlisten`."""
    token = object()
    with _lock:
        _listeners[token] = callback
    return token


def unlisten(token: object | None) -> None:
    with _lock:
        _listeners.pop(token, None)


def written() -> None:
    """A worker committed submit results: tell the listeners."""
    if not _listeners:
        return
    with _lock:
        callbacks = list(_listeners.values())
    for callback in callbacks:
        callback()  # type: ignore[operator]
