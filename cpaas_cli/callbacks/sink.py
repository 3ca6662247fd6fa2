"""A callback receiver for demos and development (``cpaas dev callback-sink``).

A Starlette app (served by uvicorn on 127.0.0.1 by default) that takes the
callbacks ``serve`` posts, checks each signature with the key's signing secret
(``signing.verify``: the HMAC of ``<t>.<body>`` and a ``t`` within 5 minutes),
hands one record per callback to ``on_callback`` and answers 204. A body over
``MAX_BODY`` bytes is refused (413) before it is read whole; one that is not a
JSON object is answered 400 and still reported. A repeated
``X-Cpaas-Callback-Id`` (delivery is at least once) is marked ``repeat``.

The record: the callback's fields, then ``callback_id``, ``signature``
(``valid``, ``invalid`` or ``unchecked`` when no secret was given) and
``repeat``. The secret is never part of it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from cpaas_cli.callbacks import signing

MAX_BODY = 64 * 1024


def make_app(*, secret: str | None, on_callback: Callable[[dict[str, Any]], None]):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    seen: set[str] = set()
    lock = threading.Lock()

    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return Response(status_code=413)
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > MAX_BODY:
                return Response(status_code=413)
        header = request.headers.get(signing.SIGNATURE_HEADER)
        if secret is None:
            check = "unchecked"
        else:
            ok = header is not None and signing.verify(secret, header, body, now=time.time())
            check = "valid" if ok else "invalid"
        callback_id = request.headers.get(signing.ID_HEADER)
        with lock:
            repeat = callback_id is not None and callback_id in seen
            if callback_id is not None:
                seen.add(callback_id)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            on_callback({"error": "not a JSON object", "callback_id": callback_id, "signature": check})
            return Response(status_code=400)
        on_callback({**data, "callback_id": callback_id, "signature": check, "repeat": repeat})
        return Response(status_code=204)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


def serve(
    *,
    host: str,
    port: int,
    secret: str | None,
    on_callback: Callable[[dict[str, Any]], None],
    lifetime: float,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Run the receiver in the foreground until SIGINT/SIGTERM or ``lifetime`` seconds."""
    import uvicorn

    config = uvicorn.Config(
        make_app(secret=secret, on_callback=on_callback),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    timer = threading.Timer(lifetime, lambda: setattr(server, "should_exit", True))
    timer.daemon = True
    timer.start()
    if on_listening is not None:
        listening = threading.Thread(target=_tell_when_up, args=(server, host, port, on_listening), daemon=True)
        listening.start()
    try:
        server.run()
    finally:
        timer.cancel()


def _tell_when_up(server, host: str, port: int, tell: Callable[[str], None]) -> None:
    end = time.monotonic() + 10
    while not server.started and time.monotonic() < end:
        time.sleep(0.02)
    if server.started:
        tell(f"http://{host}:{port}/")
