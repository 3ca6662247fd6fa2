"""A process-local wake-up for dispatch workers.

A worker with nothing to claim waits before it looks at the queue again: up to
``idle_sleep`` (1 s), or a short while when it awaits receipts, watching its
vendor socket meanwhile. A request that waits for its message's submit result
(an OTP send) rings the bell once its queue row is committed, so a waiting
worker of the same process claims the row at once. Workers of other ``serve``
processes are not woken: they find the row at their next look, as before.
Nothing is lost when no one listens: the bell only shortens a wait.

Each worker's :class:`Bell` is a socket pair: the gateway's ``poll`` selects on
its read end together with the vendor socket (``dispatch/smpp.py``), so a ring
ends the wait for receipts as it ends an idle pause, with no polling loop.

The other way round, a worker calls :func:`written` after each commit that
stored submit results, and the listeners (the HTTP API's waits for those
results, ``api/waiting.py``) look at their rows then instead of polling.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

SLICE_S = 0.1  # a waiting worker still sees its stop event within this long

_lock = threading.Lock()
_bells: set[Bell] = set()
_listeners: dict[object, object] = {}  # token -> callable() (called from a worker's thread; must not block)


class Bell:
    """One worker's bell: set from any thread, waited on by the worker, alone
    (:meth:`wait`) or in a ``select`` beside its sockets (:meth:`fileno`).

    A ring writes a byte, then raises the flag; :meth:`clear` lowers the flag,
    then reads the bytes. A ring is never lost: its byte is either read by the
    clear that saw its flag, or left for the next one. The owner clears the bell
    before each look at the queue (a ring after that look ends the next wait)."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._rung = False

    def fileno(self) -> int:
        return self._r.fileno()

    def set(self) -> None:
        with contextlib.suppress(OSError):  # full: rung many times already; closed: the worker has gone
            self._w.send(b"\0")
        self._rung = True

    def is_set(self) -> bool:
        return self._rung

    def clear(self) -> None:
        if not self._rung:
            return  # no syscall per loop turn while nobody rings
        self._rung = False
        with contextlib.suppress(OSError):  # BlockingIOError: all read
            while self._r.recv(512):
                pass

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a ring; True if it rang (not cleared here)."""
        if self._rung:
            return True
        return bool(select.select([self._r], [], [], max(0.0, timeout))[0])

    def close(self) -> None:
        self._r.close()
        self._w.close()


def register() -> Bell:
    bell = Bell()
    with _lock:
        _bells.add(bell)
    return bell


def unregister(bell: Bell) -> None:
    with _lock:
        _bells.discard(bell)
    bell.close()


def ring() -> None:
    """Wake every waiting worker of this process."""
    with _lock:
        bells = list(_bells)
    for bell in bells:
        bell.set()


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
