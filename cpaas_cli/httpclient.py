"""The one factory of httpx clients (the project's only owner of httpx).

Clients never follow redirects (a callback receiver that moved must be told
by its owner, not followed to wherever it points) and never read proxies or
certificates from the environment unless asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

USER_AGENT = "cpaas-cli"


def client(*, timeout: float = 10.0) -> httpx.Client:
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, headers={"User-Agent": USER_AGENT}
    )


class AsyncPoster:
    """POSTs from many coroutines at once over HTTP/1.1 keep-alive connections
    (the callback sender's client; create and use it inside one event loop).

    It sits on httpx's transport, below the client: a callback needs none of
    what the client adds per request (redirects are never followed, no cookies,
    no auth, no proxies from the environment), and the client's layer cost as
    much CPU as the request itself. Each request in flight has a connection of
    its own: a single-connection transport per origin, taken from that origin's
    idle ones or made (up to ``max_in_flight`` in all), so a pool is never
    searched across many connections (httpcore's pool checks every connection
    on each request: with 100 in one pool that was most of the sender's time).
    A connection stays open for the next request to its origin (keep-alive);
    :meth:`prune` closes those of origins not posted to lately. Response bodies
    are read up to ``MAX_RESPONSE`` bytes (the connection is dropped past it).
    """

    MAX_RESPONSE = 64 * 1024

    def __init__(self, *, timeout: float = 10.0, max_in_flight: int = 100):
        import asyncio

        import httpx

        self._httpx = httpx
        self._timeout = httpx.Timeout(timeout).as_dict()
        self._ssl = None  # made with the first transport, shared by all (a context costs milliseconds)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._idle: dict[tuple, list] = {}  # origin -> idle transports
        self._used: dict[tuple, float] = {}  # origin -> last use (monotonic)

    def _transport(self, origin: tuple):
        idle = self._idle.get(origin)
        if idle:
            return idle.pop()
        httpx = self._httpx
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return httpx.AsyncHTTPTransport(
            verify=self._ssl, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body``; the response's status code (transport errors are raised as httpx's)."""
        import time

        httpx = self._httpx
        async with self._slots:
            request = httpx.Request(
                "POST",
                url,
                content=body,
                headers={"User-Agent": USER_AGENT, **headers},
                extensions={"timeout": self._timeout},
            )
            origin = (request.url.scheme, request.url.host, request.url.port)
            transport = self._transport(origin)
            keep = False
            try:
                response = await transport.handle_async_request(request)
                try:
                    got = 0
                    async for chunk in response.stream:
                        got += len(chunk)
                        if got > self.MAX_RESPONSE:
                            break
                    else:
                        keep = True
                finally:
                    await response.aclose()
                return response.status_code
            finally:
                self._used[origin] = time.monotonic()
                if keep:
                    self._idle.setdefault(origin, []).append(transport)
                else:
                    await transport.aclose()

    async def prune(self, idle_seconds: float = 60.0) -> None:
        """Close the connections of origins not posted to for ``idle_seconds``."""
        import time

        now = time.monotonic()
        for origin in [o for o, at in self._used.items() if now - at > idle_seconds]:
            for transport in self._idle.pop(origin, []):
                await transport.aclose()
            del self._used[origin]

    async def aclose(self) -> None:
        for transports in self._idle.values():
            for transport in transports:
                await transport.aclose()
        self._idle.clear()
        self._used.clear()
