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


def async_client(*, timeout: float = 10.0, max_connections: int = 100) -> httpx.AsyncClient:
    """An asyncio client with a pool of ``max_connections`` (create it inside the loop that uses it)."""
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def client(*, timeout: float = 10.0) -> httpx.Client:
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False, headers={"User-Agent": USER_AGENT}
    )
