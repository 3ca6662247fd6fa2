"""The HTTP server of ``cpaas serve --http``: uvicorn in a thread of the serve process.

It runs beside the dispatch workers and the scheduler (or alone, ``--no-workers``);
``serve`` starts it before its workers and stops it (``should_exit``: uvicorn
finishes the requests in progress) when it stops.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from cpaas_cli.errors import InvalidInput

log = logging.getLogger("cpaas.api")


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--http: expected HOST:PORT, got {text!r}")
    return host, int(port)


class HttpServer:
    """``start()`` / ``stop()`` as ``scheduler.serve.run`` calls its services."""

    def __init__(
        self,
        settings,
        address: str,
        *,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        forwarded_allow_ips: str | None = None,
    ):
        import uvicorn

        from cpaas_cli.api.app import create_app

        if bool(tls_cert) != bool(tls_key):
            raise InvalidInput("--tls-cert and --tls-key go together")
        self.host, self.port = parse_address(address)
        self.app = create_app(settings)
        self.config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            proxy_headers=forwarded_allow_ips is not None,
            forwarded_allow_ips=forwarded_allow_ips,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(self.config)
        self.thread: threading.Thread | None = None
        self.scheme = "https" if tls_cert else "http"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise InvalidInput(f"--http: could not listen on {self.host}:{self.port} (see the log above)")
        # What start-up made (modules, the ORM's mappers, the API's schemas) lives as long as the
        # process: kept out of the collector's full passes, which then take a few ms instead of
        # ~100 ms every second or two under load (the API's p99 latency).
        gc.collect()
        gc.freeze()
        log.warning("HTTP API listening on %s://%s:%d", self.scheme, self.host, self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(15)
