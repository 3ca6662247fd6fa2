"""A callback receiver for the tests: a real HTTP server on 127.0.0.1 that
records each POST (headers and raw body) and answers what the test asks."""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, *, status: int = 200, delay: float = 0.0, body: bytes = b"", headers: dict | None = None):
        self.status = status
        self.delay = delay
        self.body = body  # the answer's body, and its extra headers
        self.headers = headers or {}
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.ports: list[int] = []  # the client's port of each request: one per connection
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if outer.delay:
                    time.sleep(outer.delay)
                with outer.lock:
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    outer.ports.append(self.client_address[1])
                    status = outer.status
                self.send_response(status)
                for k, v in outer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client hung up (it reads only so much)
                    self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # the sender opens up to 100 connections at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ids(self) -> list[int]:
        with self.lock:
            return [int(h["x-cpaas-callback-id"]) for h, _b in self.got]
