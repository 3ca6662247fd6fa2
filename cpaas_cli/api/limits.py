"""Request limits and the access log of the HTTP API: one ASGI middleware.

* Body size: a request whose ``Content-Length`` is over ``max_body`` bytes is
  answered 413 (``payload-too-large``) before its body is read; a body sent
  without a length is counted as it arrives and refused the same way.
* Per-key rate: a token bucket per API key prefix (``key_rate`` requests per
  second, bursts of ``key_burst``), answered 429 (``rate-limited``) with
  ``Retry-After``. The buckets live in this process (``ratelimit.LocalLimiter``,
  no I/O per request): with N ``serve --http`` processes behind one address a
  key may reach N times its rate. The README says so. Only the 8-character key
  prefix is read here; the key is checked by the route as usual.
* One log line per request on the ``cpaas.api.access`` logger (JSON): key
  prefix (or ``basic:<login>`` for the bulk API, never a secret or a
  password), method, route template, status, latency in ms.

Settings (``[api]`` in the config file): ``max_body_bytes`` (default 10 MiB),
``key_rate`` (2,000/s), ``key_burst`` (``2 × key_rate``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from cpaas_cli.errors import InvalidInput
from cpaas_cli.ratelimit import Limit, LocalLimiter, retry_after

access_log = logging.getLogger("cpaas.api.access")

DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_KEY_RATE = 2000.0
_PREFIX = re.compile(rb"^\s*bearer\s+cpk_([a-z0-9]{8})_", re.IGNORECASE)


class _TooLarge(Exception):
    pass


def settings_of(section: dict[str, Any]) -> dict[str, float]:
    """``[api]`` limits, checked (InvalidInput naming the setting)."""
    out = {"max_body_bytes": float(DEFAULT_MAX_BODY), "key_rate": DEFAULT_KEY_RATE}
    for name in ("max_body_bytes", "key_rate", "key_burst"):
        if name in section:
            v = section[name]
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise InvalidInput(f"[api] {name}: a positive number")
            out[name] = float(v)
    out.setdefault("key_burst", out["key_rate"] * 2)
    return out


def _body(status: int, name: str, title: str, detail: str, path: str) -> bytes:
    return json.dumps(
        {"type": f"urn:cpaas:problem:{name}", "title": title, "status": status, "detail": detail, "instance": path}
    ).encode()


class LimitsMiddleware:
    def __init__(self, app, *, max_body: int, key_limit: Limit, clock=time.monotonic):
        self.app = app
        self.max_body = max_body
        self.limiter = LocalLimiter(key_limit, clock=clock)

    async def _refuse(self, send, status: int, name: str, title: str, detail: str, path: str, headers=()) -> None:
        body = _body(status, name, title, detail, path)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, send, path: str) -> None:
        detail = f"the request body is over {self.max_body} bytes"
        await self._refuse(send, 413, "payload-too-large", "Payload too large", detail, path)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        headers = dict(scope.get("headers") or ())
        m = _PREFIX.match(headers.get(b"authorization", b""))
        who = m.group(1).decode() if m else None
        scope.setdefault("state", {})["access_who"] = who
        status = [500]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await self._too_large(sending, path)
                return
            if who is not None:
                ok, wait = self.limiter.take(who)
                if not ok:
                    await self._refuse(
                        sending,
                        429,
                        "rate-limited",
                        "Too many requests",
                        "this API key's request rate is over its limit",
                        path,
                        ((b"retry-after", str(retry_after(wait)).encode()),),
                    )
                    return
            seen = [0]

            async def counting():
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > self.max_body:
                        raise _TooLarge
                return message

            try:
                await self.app(scope, counting, sending)
            except _TooLarge:
                if status[0] == 500:
                    await self._too_large(sending, path)
        finally:
            if access_log.isEnabledFor(logging.INFO):  # (the line is not even built otherwise)
                _log_access(scope, who, status[0], started, path)


def _log_access(scope, who: str | None, status: int, started: float, path: str) -> None:
    route = scope.get("route")
    state = scope.get("state") or {}
    access_log.info(
        json.dumps(
            {
                "key": state.get("access_who") or who,
                "method": scope.get("method"),
                "route": getattr(route, "path", None) or path[:200],
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
            separators=(",", ":"),
        )
    )


def install(app, settings) -> None:
    """Add the middleware with the ``[api]`` settings."""
    got = settings_of(settings.section("api"))
    app.add_middleware(
        LimitsMiddleware,
        max_body=int(got["max_body_bytes"]),
        key_limit=Limit(got["key_rate"], got["key_burst"]),
    )
