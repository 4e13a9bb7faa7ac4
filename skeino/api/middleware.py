"""The ASGI layer around every request: request ids, metrics, body limit, headers, 500s.

One pure-ASGI middleware instead of several BaseHTTPMiddleware layers: each of those
would add a task and a copy per request on the hot path, and wrap SSE bodies.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skeino.logs import request_id
from skeino.runtime.metrics import Metrics

logger = logging.getLogger("skeino")

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
# The Studio loads only its own module scripts; it sets styles from script, which CSP allows.
_STUDIO_CSP = (b"content-security-policy",
               b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# /docs and /redoc load their viewers from a CDN; a strict policy would blank them.
_NO_CSP_PATHS = ("/docs", "/redoc")


# Request ids: 32 hex digits, a random half per process and a counter, unique without
# asking the kernel for randomness on every request as uuid4 does.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive`, so the app's HTTP error handler answers it (a parse error would be a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than the limit of {limit} bytes (SKEINO_MAX_BODY_BYTES)")


class RequestLayer:
    """Per request: an id, a size limit on the body, security headers, metrics, and a safe 500."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics | None, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _header(scope, b"x-request-id") or _new_request_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        response_started = False
        streaming = False
        path: str = scope.get("path", "")

        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, receive, send, rid, _BodyTooLarge(self.max_body))
            request_id.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status, response_started, streaming
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers.extend(_SECURITY_HEADERS)
                if path.startswith("/studio"):
                    headers.append(_STUDIO_CSP)
                elif not path.startswith(_NO_CSP_PATHS):
                    headers.append(_API_CSP)
                message = {**message, "headers": headers}
                if self.metrics is not None:
                    self._observe(scope, status, started)
                    # Any SSE response (run, thread and chat-completion streams) counts while open.
                    if any(k == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers):
                        streaming = True
                        self.metrics.active_streams.inc()
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as exc:
            if response_started:
                raise
            await self._too_large(scope, receive, send, rid, exc)
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            # The traceback goes to the log only; the client gets a stable sentence and the id to quote.
            logger.exception("unhandled error %s on %s %s", error_id, scope.get("method"), path)
            if response_started:
                raise
            await JSONResponse({"detail": f"Internal server error (error id {error_id})", "error_id": error_id},
                               status_code=500, headers={"x-request-id": rid})(scope, receive, send)
            if self.metrics is not None:
                self._observe(scope, 500, started)
        finally:
            if streaming:
                assert self.metrics is not None
                self.metrics.active_streams.dec()
            request_id.reset(token)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, rid: str, exc: _BodyTooLarge) -> None:
        await JSONResponse({"detail": exc.detail}, status_code=413, headers={"x-request-id": rid})(scope, receive, send)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        assert self.metrics is not None
        route = scope.get("route")
        # Templates, not raw paths: one label per route, whatever ids the paths carry.
        template = getattr(route, "path", None) or ("/studio" if scope.get("path", "").startswith("/studio")
                                                    else "unmatched")
        self.metrics.observe_request(scope.get("method", ""), template, status, time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
