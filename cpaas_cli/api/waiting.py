"""Waiting for the vendor's answer to messages just queued (the sync sends of the HTTP API).

The wait sleeps in the event loop between looks at the queue rows (one short read in a
thread of the pool each time: 20 ms, growing to 200 ms), so a request that waits holds no
thread: the pool's threads stay free for the database work of other requests. Idle
dispatch workers of this process are woken first (``dispatch/doorbell.py``); workers of
other processes find the rows at their next look.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from cpaas_cli.dispatch import doorbell
from cpaas_cli.sending import views


async def submitted(engine: Engine, ids: Sequence[int], *, timeout: float) -> dict[int, dict]:
    """{id: {state, vendor_message_id, error}} once every row has its submit result, or after
    ``timeout`` seconds (then some states are still queued/claimed/sending)."""
    doorbell.ring()
    deadline = time.monotonic() + timeout
    poll = 0.02
    while True:
        got, settled = await run_in_threadpool(views.submit_results, engine, list(ids))
        if settled or time.monotonic() >= deadline:
            return got
        await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        poll = min(poll * 1.5, 0.2)
