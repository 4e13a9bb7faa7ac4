"""A small HTTP server in the test process that records the webhooks a skeino server sends it."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records every POST; answers 500 to the first `fail_first` of each path, then 200."""

    def __init__(self, fail_first: int = 1) -> None:
        self.fail_first = fail_first
        self.calls: list[tuple[str, int, dict[str, Any]]] = []  # (path, status answered, body)
        self.headers: list[dict[str, str]] = []  # of each call, in the same order
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                seen = sum(1 for path, _, _ in receiver.calls if path == self.path)
                status = 500 if seen < receiver.fail_first else 200
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.calls.append((self.path, status, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def on(self, path: str) -> list[tuple[int, dict[str, Any]]]:
        return [(status, body) for p, status, body in self.calls if p == path]

    async def wait_for(self, path: str, count: int, timeout: float = 30) -> list[tuple[int, dict[str, Any]]]:
        async with asyncio.timeout(timeout):
            while len(self.on(path)) < count:
                await asyncio.sleep(0.05)
        return self.on(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
