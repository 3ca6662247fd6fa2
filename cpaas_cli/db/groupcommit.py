"""Group commit: many requests written by one thread in one transaction.

The HTTP API answers a send only after its messages are committed (DESIGN.md:
anything received is committed before it is acknowledged). One transaction
and one commit per request costs more than the work itself and, on SQLite,
makes the request threads queue on the database's single write lock. So the
requests that write go to one writer thread: it takes every request waiting
(up to ``max_items``), hands them together to a handler that runs them in one
session (each in its own savepoint when it needs to be undone alone), commits
once, and then answers each request with its own result or error. Nothing is
answered before the commit that holds it; if the commit fails, every request
of the group gets that error and nothing of the group is kept.

There is no artificial wait by default: while one group is written, the next
one forms, so a lone request is written at once and a busy server writes large
groups. ``gather`` (seconds) lets a writer whose requests are small and many
(the 2FA API) wait that long for more before it writes, but only while it is
busy: when the last group was written less than ``gather`` ago. A lone request
on an idle writer is still written at once.

``inline=True`` writes in the event loop's own thread instead (a group is
written once the loop has run every request that was ready): no thread hand-off
and no contention for the interpreter lock with the loop, at the price of a
loop that waits for the database while it writes. The API chooses by the
database (``api.messages``): inline on SQLite, where a write is CPU work in
this process; a thread on PostgreSQL, where a write is mostly waiting on the
server and the loop can parse the next requests meanwhile.

Written here because the ASGI stack and SQLAlchemy have no such thing: a
queue, a thread and futures of the caller's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

log = logging.getLogger("cpaas.db.groupcommit")

T = TypeVar("T")

# The handler: (session, items) -> one result per item, in order; a result that
# is an exception is raised to that item's caller. The handler does not commit.
Handler = Callable[[Session, Sequence[Any]], Sequence[Any]]

# session.info key: callables (engine) -> None the handler leaves to run once the group is
# committed (an e-mail, say), each in a thread of its own so the writer never waits for them.
AFTER_COMMIT = "groupcommit.after_commit"


@dataclass
class _Waiting:
    item: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class GroupCommit(Generic[T]):
    """``await submit(item)`` from an event loop; one writer thread runs ``handler`` on groups."""

    def __init__(self, engine: Engine, handler: Handler, *, name: str = "group-commit", max_items: int = 500,
                 session_factory: Callable[[Engine], Session] | None = None, inline: bool = False,
                 gather: float = 0.0):  # fmt: skip
        self.engine = engine
        self.handler = handler
        self.max_items = max_items
        self.session_factory = session_factory or _default_session
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.groups = 0  # groups committed (for tests and the benchmark)
        self.items = 0
        self.inline = inline
        self.gather = gather
        self._last_write = float("-inf")
        self._pending: list[_Waiting] = []

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    async def submit(self, item: Any) -> T:
        """Queue ``item``; its result once the group holding it is committed (or its error)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self.inline:
            self._pending.append(_Waiting(item, loop, future))
            if len(self._pending) == 1:
                if self._busy():
                    loop.call_later(self.gather, self._write_pending)
                else:
                    loop.call_soon(self._write_pending)  # after the requests already ready to run
            return await future
        self._start()
        self._queue.put(_Waiting(item, loop, future))
        return await future

    def _busy(self) -> bool:
        """Whether to gather: the last group was written less than ``gather`` seconds ago."""
        return bool(self.gather) and time.monotonic() - self._last_write < self.gather

    def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending[: self.max_items], self._pending[self.max_items :]
            self._write(group)
        self._last_write = time.monotonic()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)
        if self.groups:
            log.info("%s: %d requests in %d groups", self._thread.name, self.items, self.groups)

    # ------------------------------------------------------------ the writer

    def _take(self) -> tuple[list[_Waiting], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        group = [first]
        stop = False
        until = time.monotonic() + self.gather if self._busy() else 0.0
        while len(group) < self.max_items:
            try:
                left = until - time.monotonic()
                nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                stop = True
                break
            group.append(nxt)
        return group, stop

    def _run(self) -> None:
        while True:
            group, stop = self._take()
            if group:
                self._write(group)
                self._last_write = time.monotonic()
            if stop:
                return

    def _write(self, group: list[_Waiting]) -> None:
        results: Sequence[Any]
        try:
            session = self.session_factory(self.engine)
            try:
                results = self.handler(session, [w.item for w in group])
                if len(results) != len(group):
                    raise RuntimeError(f"group commit: {len(results)} results for {len(group)} items")
                session.commit()
                after = session.info.pop(AFTER_COMMIT, None) or []
            except BaseException:
                session.rollback()
                raise
            finally:
                session.info.pop(AFTER_COMMIT, None)
                session.close()
            for work in after:
                threading.Thread(target=_after, args=(work, self.engine), name="after-commit", daemon=True).start()
        except Exception as exc:  # noqa: BLE001 - the group's callers get the error, the writer goes on
            log.exception("group commit of %d request(s) failed", len(group))
            results = [exc] * len(group)
        self.groups += 1
        self.items += len(group)
        for w, result in zip(group, results, strict=True):
            if self.inline:
                _settle(w.future, result)
            else:
                w.loop.call_soon_threadsafe(_settle, w.future, result)


def _after(work: Callable[[Engine], None], engine: Engine) -> None:
    try:
        work(engine)
    except Exception:  # noqa: BLE001 - the group stands; what failed after it is logged
        log.exception("work after a group commit failed")


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():  # the caller went away (client disconnected); the write stands
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _default_session(engine: Engine) -> Session:
    from cpaas_cli.db.engine import make_session

    return make_session(engine, actor="api", command="group commit")
