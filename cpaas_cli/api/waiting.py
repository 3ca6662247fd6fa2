"""Waiting for the vendor's answer to messages just queued (the sync sends of the HTTP API).

A request that waits holds no thread: it registers its queue rows with its event
loop's one watcher and sleeps on a future. The watcher reads the state of every
row any request waits for in one short query (in a thread of the pool) each time
a dispatch worker of this process has committed results (``dispatch/doorbell.py``
calls it back), and at the latest every ``POLL_S`` seconds for rows that workers
of other processes send; it then wakes the requests whose rows are all settled.
So the answer leaves as soon as the worker's commit holds it, and the database
sees one read per commit, however many requests wait. Idle dispatch workers of
this process are woken first (the doorbell); workers of other processes find
the rows at their next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Sequence

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from cpaas_cli.dispatch import doorbell
from cpaas_cli.sending import views

POLL_S = 0.05  # the longest a settled row waits to be seen when no worker of this process wrote it


class _Watcher:
    """One event loop's waits on one database: the rows waited for and the one task reading them."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop):
        self.engine = engine
        self.loop = loop
        self.waits: dict[int, list[asyncio.Future]] = {}  # queue id -> futures of the requests waiting
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.token = None

    def _rung(self) -> None:  # from a worker's thread
        self.loop.call_soon_threadsafe(self.wake.set)

    async def wait(self, ids: Sequence[int], timeout: float) -> dict[int, dict]:
        futures = {}
        for qid in ids:
            fut = self.loop.create_future()
            self.waits.setdefault(qid, []).append(fut)
            futures[qid] = fut
        if self.task is None or self.task.done():
            self.token = doorbell.listen(self._rung)
            self.task = self.loop.create_task(self._run())
        self.wake.set()  # look once now: a row may be settled already
        try:
            done, _ = await asyncio.wait(futures.values(), timeout=timeout)
        finally:
            for qid, fut in futures.items():
                waiting = self.waits.get(qid)
                if waiting is not None and fut in waiting:
                    waiting.remove(fut)
                    if not waiting:
                        del self.waits[qid]
        if len(done) == len(futures):
            return {qid: fut.result() for qid, fut in futures.items()}
        got, _settled = await run_in_threadpool(views.submit_results, self.engine, list(ids))
        return got

    async def _run(self) -> None:
        try:
            while self.waits:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_S)
                self.wake.clear()  # a commit from now on rings again
                ids = list(self.waits)
                if not ids:
                    break
                got, _ = await run_in_threadpool(views.submit_results, self.engine, ids)
                for qid, row in got.items():
                    if row.get("state") in views.SETTLED:
                        for fut in self.waits.pop(qid, []):
                            if not fut.done():
                                fut.set_result(row)
        finally:
            doorbell.unlisten(self.token)
            self.token = None


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Watcher]] = weakref.WeakKeyDictionary()


async def submitted(engine: Engine, ids: Sequence[int], *, timeout: float) -> dict[int, dict]:
    """{id: {state, vendor_message_id, error}} once every row has its submit result, or after
    ``timeout`` seconds (then some states are still queued/claimed/sending)."""
    doorbell.ring()
    loop = asyncio.get_running_loop()
    per_engine = _watchers.setdefault(loop, {})
    watcher = per_engine.get(id(engine))
    if watcher is None or watcher.engine is not engine:
        watcher = per_engine[id(engine)] = _Watcher(engine, loop)
    return await watcher.wait(ids, timeout)
