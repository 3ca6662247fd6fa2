"""Ctrl-C during a bulk run (`edr ingest`): stop between chunks, say what is stored.

The first SIGINT only asks the run to stop: it ends before its next chunk,
once the chunks before are committed, with ``Interrupted`` ("interrupted: N
rows stored, rerun to continue", exit 130, the shell's code for a SIGINT). A
second SIGINT stops at once: the chunk under way is rolled back. Either way a
rerun skips what is stored and adds the rest.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from cpaas_cli.errors import Interrupted


class StopRequest:
    """A context manager that turns the first SIGINT of the main thread into
    ``requested`` (``notice`` says so) and lets a second one raise
    KeyboardInterrupt. Off the main thread (no signal handler there) it is a
    flag that stays unset."""

    def __init__(self, notice: Callable[[str], None] | None = None):
        self.requested = False
        self._notice = notice
        self._previous: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, _signum, _frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self._notice is not None:
            self._notice("stopping after the chunk under way (Ctrl-C again to stop now)")

    def check(self, stored: int) -> None:
        """Raise ``Interrupted`` when a stop was asked for; ``stored``: the rows
        committed so far (the caller has waited for its commits)."""
        if self.requested:
            raise Interrupted(f"interrupted: {stored:,} rows stored, rerun to continue")


def hard_interrupt(exc: BaseException) -> bool:
    """True for a KeyboardInterrupt, or an error raised while one unwound
    (a rollback on a connection the interrupt closed)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__context__
    return False


HARD_STOP = "interrupted: the chunk under way was not stored; rerun to continue"
