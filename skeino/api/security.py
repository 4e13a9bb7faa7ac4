"""Who may call what: host and origin checks, API keys, rate limits and audit, before any route runs.

Authentication happens here, before routing, so an unauthenticated request learns nothing
(not even whether its body parses). Authorization needs the matched route's template, so
it is the app-wide dependency `require_scope`, which runs before any route's own code.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skeino.auth.guard import Guard
from skeino.auth.user import caller
from skeino.errors import SkeinoError
from skeino.auth.scopes import PUBLIC, required_scope
from skeino.config import Config
from skeino.logs import request_id

_DOCS = ("/docs", "/redoc", "/openapi.json")
# What `langgraph dev` answers with no CORS configured: any origin, never with credentials.
_DEV_CORS: dict[str, Any] = {
    "allow_origins": ["*"], "allow_credentials": False, "allow_methods": ["*"], "allow_headers": ["*"],
    "expose_headers": ["x-pagination-total", "x-pagination-next", "x-skeino-cursor", "content-location"],
}
_READ_METHODS = ("GET", "HEAD", "OPTIONS")


def cors_options(config: Config) -> dict[str, Any] | None:
    """CORS middleware options: `http.cors` as configured; with none, `langgraph dev`'s in dev and none in serve."""
    configured = config.http.get("cors")
    if configured:
        return dict(configured)
    if not config.settings.dev:
        return None
    options = dict(_DEV_CORS)
    # Browsers ask before a public page may reach a loopback server (Private Network Access).
    if "allow_private_network" in inspect.signature(CORSMiddleware.__init__).parameters:
        options["allow_private_network"] = True
    return options


def describe_cors(options: dict[str, Any] | None) -> str:
    """One line for the start-up banner: which browser origins may call this server."""
    if not options:
        return "off: browser pages on other origins cannot call this server (set http.cors to allow some)"
    origins = options.get("allow_origins") or []
    if "*" in origins:
        return "any origin, without credentials (development default; set http.cors to restrict)"
    regex = options.get("allow_origin_regex")
    return ", ".join(origins) + (f" and origins matching {regex}" if regex else "") if origins or regex else "off"


def _headers(scope: Scope) -> dict[bytes, str]:
    return {k: v.decode("latin-1") for k, v in scope.get("headers", ())}


def _presented_key(headers: dict[bytes, str]) -> str | None:
    if b"x-api-key" in headers:
        return headers[b"x-api-key"].strip()
    auth = headers.get(b"authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class SecurityLayer:
    def __init__(self, app: ASGIApp, *, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        headers = _headers(scope)
        method, path = scope["method"], scope.get("path", "")
        host = headers.get(b"host")
        if not guard.host_allowed(host):
            await _refuse(scope, receive, send, 421,
                          f"Host {host!r} is not served here: this server is bound to loopback and answers only "
                          "loopback host names (add the name to SKEINO_ALLOWED_HOSTS to allow it)")
            return
        if guard.cross_site_refused(method, headers.get(b"origin"), headers.get(b"content-type"), host):
            guard.audit.record(who=None, action=f"{method} {path}", resource=path, outcome="denied",
                               request_id=request_id.get(), reason="cross-site request from " + headers[b"origin"])
            await _refuse(scope, receive, send, 403,
                          f"Cross-site request from origin {headers[b'origin']!r} refused: send it as "
                          "application/json, or allow the origin in http.cors.allow_origins")
            return

        key = None
        identity = None
        ctx = None
        if guard.custom is not None and not _is_open(path, method, guard):
            try:
                ctx = await guard.custom.authenticate(scope)
            except SkeinoError as exc:  # the handler refused (its status), or returned no usable user (500)
                guard.audit.record(who=None, action=f"{method} {path}", resource=path, outcome="denied",
                                   request_id=request_id.get(), reason=f"authenticate: {exc.detail}")
                refusal_headers = getattr(exc, "headers", None) or {}
                await _refuse(scope, receive, send, exc.status_code, exc.detail,
                              extra=[(k.lower().encode(), v.encode()) for k, v in refusal_headers.items()])
                return
            identity = f"user:{ctx.user.identity}"
        elif guard.authenticating and not _is_open(path, method, guard):
            presented = _presented_key(headers)
            key = guard.authenticate(presented)
            if key is None:
                reason = "no API key" if presented is None else "unknown API key"
                guard.audit.record(who=None, action=f"{method} {path}", resource=path, outcome="denied",
                                   request_id=request_id.get(), reason=reason)
                await _refuse(scope, receive, send, 401,
                              "Missing API key: send it as 'x-api-key' or 'Authorization: Bearer <key>'"
                              if presented is None else "Invalid API key",
                              extra=[(b"www-authenticate", b"Bearer")])
                return
            identity = f"key:{key.name}"
        state = scope.setdefault("state", {})
        state["api_key"] = key
        state["identity"] = identity

        extra: list[tuple[bytes, bytes]] = []
        if guard.limiter is not None and path not in PUBLIC and not path.startswith("/studio"):
            client = scope.get("client")
            verdict = guard.limiter.hit(identity or f"ip:{client[0] if client else 'unknown'}")
            extra = verdict.headers()
            if not verdict.allowed:
                await _refuse(scope, receive, send, 429,
                              f"Rate limit of {verdict.limit} requests exceeded; retry in {verdict.reset} s",
                              extra=extra)
                return

        changing = method not in _READ_METHODS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
                if changing and not state.get("denied"):
                    route = scope.get("route")
                    guard.audit.record(who=identity, action=f"{method} {getattr(route, 'path', path)}",
                                       resource=path, outcome=str(message["status"]), request_id=request_id.get())
            await send(message)

        if ctx is None:
            await self.app(scope, receive, send_with_headers)
            return
        # The services read the caller from here to run the authorization handlers.
        token = caller.set(ctx)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            caller.reset(token)


    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same Host, Origin and key checks as HTTP; a refused handshake is closed unanswered.

        Browsers send no preflight for a WebSocket, so any foreign origin is refused
        unless allowed, as for a simple cross-site POST.
        """
        guard = self.guard
        headers = _headers(scope)
        path = scope.get("path", "")
        host, origin = headers.get(b"host"), headers.get(b"origin")
        reason = None
        key = None
        ctx = None
        if not guard.host_allowed(host):
            reason = f"Host {host!r} is not served here"
        elif guard.cross_site_refused("POST", origin, None, host):
            reason = f"cross-site WebSocket from {origin}"
        elif guard.custom is not None:
            try:  # the handshake is an HTTP GET: the handler sees it as one
                ctx = await guard.custom.authenticate({**scope, "type": "http", "method": "GET"})
            except SkeinoError as exc:
                reason = f"authenticate: {exc.detail}"
        elif guard.authenticating:
            key = guard.authenticate(_presented_key(headers))
            if key is None:
                reason = "no API key" if _presented_key(headers) is None else "unknown API key"
        if reason is None and guard.limiter is not None:
            client = scope.get("client")
            if not guard.limiter.hit(f"key:{key.name}" if key else f"ip:{client[0] if client else 'unknown'}").allowed:
                reason = "rate limit exceeded"
        if reason is not None:
            guard.audit.record(who=None, action=f"WEBSOCKET {path}", resource=path, outcome="denied",
                               request_id=request_id.get(), reason=reason)
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        state = scope.setdefault("state", {})
        state["api_key"] = key
        state["identity"] = f"key:{key.name}" if key else (f"user:{ctx.user.identity}" if ctx else None)
        token = caller.set(ctx) if ctx is not None else None
        try:
            await self.app(scope, receive, send)
        finally:
            if token is not None:
                caller.reset(token)


def _is_open(path: str, method: str, guard: Guard) -> bool:
    """Routes anyone may call: liveness, the Studio's static files, preflights, and docs when open."""
    return (method == "OPTIONS" or path in PUBLIC or path == "/" or path.startswith("/studio")
            or (guard.open_docs and path.startswith(_DOCS)))


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    response = JSONResponse({"detail": detail}, status_code=status)
    response.raw_headers.extend(extra or [])
    await response(scope, receive, send)


async def require_scope(request: HTTPConnection) -> None:
    """App-wide dependency: the caller's key must carry the scope the matched route needs."""
    key = request.scope.get("state", {}).get("api_key")
    if key is None or request.scope["type"] == "websocket":
        return  # keys are off, or the route is open; a WebSocket checks per command
    route = request.scope.get("route")
    needed = required_scope(request.method, getattr(route, "path", request.url.path))
    if needed is None or key.allows(needed):
        return
    guard: Guard = request.app.state.guard
    request.scope["state"]["denied"] = True  # one audit event for this request, not a second for its 403
    guard.audit.record(who=f"key:{key.name}", action=f"{request.method} {getattr(route, 'path', '')}",
                       resource=request.url.path, outcome="denied", request_id=request_id.get(),
                       reason=f"missing scope {needed}")
    raise StarletteHTTPException(403, f"API key '{key.name}' lacks the scope '{needed}' this route needs")
