"""The FastAPI application: routers, error mapping, lifecycle."""

from __future__ import annotations

import gc
import logging
from contextlib import AsyncExitStack, asynccontextmanager
from http import HTTPStatus
from typing import Any, AsyncContextManager, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from skeino import __version__
from skeino.api import a2a, assistants, crons, mcp, meta, openai, protocol, runs, store, studio, threads
from skeino.api.deps import JSON
from skeino.api.inputs import document_ids
from skeino.api.middleware import RequestLayer
from skeino.api.responses import ANY_ROUTE
from skeino.api.security import SecurityLayer, cors_options, require_scope
from skeino.api.shortcut import RouteShortcut
from skeino.auth.custom import AuthRefused
from skeino.auth.guard import Guard
from skeino.config import Config
from skeino.errors import SkeinoError, describe_validation
from skeino.graphs import GraphRegistry
from skeino.logs import request_id
from skeino.runtime.core import Runtime
from skeino.runtime.tools import AssistantTools

logger = logging.getLogger("skeino")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP error {status}"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SkeinoError)
    async def domain_error(request: Request, exc: SkeinoError) -> JSONResponse:
        if isinstance(exc, AuthRefused):
            _audit_refusal(request, exc)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One sentence naming each wrong field, as the official server answers (the SDK shows it).
        return JSONResponse({"detail": describe_validation(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if exc.status_code in (204, 304) or exc.status_code < 200:
            return Response(status_code=exc.status_code, headers=headers)  # no body allowed
        # Always one sentence, whatever a library put in `detail`.
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else _phrase(exc.status_code)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)


def _audit_refusal(request: Request, exc: AuthRefused) -> None:
    """A custom auth handler refused an action: one audit event, and no second one for the response."""
    state = request.scope.setdefault("state", {})
    state["denied"] = True
    route = request.scope.get("route")
    guard: Guard = request.app.state.guard
    guard.audit.record(who=state.get("identity"), action=f"{request.method} {getattr(route, 'path', request.url.path)}",
                       resource=request.url.path, outcome="denied", request_id=request_id.get(),
                       reason=f"auth handler: {exc.detail}")


# Young-generation collections every 10,000 net allocations instead of 700: a run's
# objects nearly all die by reference counting before a collection sees them, so scanning
# the survivors 14 times as often found little and cost about 5% of the CPU of a run.
_GC_YOUNG_THRESHOLD = 10_000


def _tune_gc() -> None:
    """Set the garbage collector up for serving, once everything start-up builds exists."""
    # Everything built so far (imported libraries, graphs, the app) lives as long as the
    # process: out of the collector's sight, a full collection scans only what requests
    # made. It scanned the whole heap every few hundred runs, about a fifth of the server's
    # CPU under 16 clients.
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, older, oldest)


def create_app(config: Config, registry: GraphRegistry | None = None, guard: Guard | None = None) -> FastAPI:
    """Build the app for a loaded config; graphs are imported and the access policy built here unless given."""
    registry = registry or GraphRegistry.load(config)
    guard = guard or Guard.from_config(config)
    rt = Runtime(config, registry, custom_auth=guard.custom)
    # Protocol endpoints' own machinery (the MCP session manager), entered after the runtime starts.
    extensions: list[AsyncContextManager[None]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            async with AsyncExitStack() as stack:
                for extension in extensions:
                    await stack.enter_async_context(extension)
                _tune_gc()
                yield
        finally:
            await rt.stop()
            guard.audit.close()

    # Scopes belong to API keys: without keys there is nothing for the dependency to check,
    # and resolving it cost every request about as much as the body's validation.
    scoped = [Depends(require_scope)] if guard.keys else []
    app = FastAPI(title="skeino", version=__version__, lifespan=lifespan, default_response_class=JSON,
                  dependencies=scoped, responses=ANY_ROUTE)
    app.state.runtime = rt
    base_openapi = app.openapi
    app.openapi = lambda: document_ids(base_openapi())  # type: ignore[method-assign]
    app.state.guard = guard
    _install_error_handlers(app)
    # Added last runs first: the request layer (ids, metrics, 500s) wraps the security checks,
    # and the shortcut to the run routes comes only after both.
    app.add_middleware(RouteShortcut, fastapi=app)
    app.add_middleware(SecurityLayer, guard=guard)
    app.add_middleware(RequestLayer, metrics=rt.metrics, max_body_bytes=config.settings.max_body_bytes)
    cors = cors_options(config)
    if cors:
        app.add_middleware(CORSMiddleware, **cors)
    http = config.http
    disabled = {
        "disable_assistants": assistants.router, "disable_threads": threads.router,
        "disable_runs": runs.router, "disable_store": store.router, "disable_meta": meta.router,
    }
    skip = {id(router) for key, router in disabled.items() if http.get(key)}
    if http.get("disable_runs"):
        skip.add(id(crons.router))  # crons are runs on a schedule
        skip.add(id(protocol.router))  # protocol v2 starts and streams runs
    # Runs first: routes are matched in order and run creation is the hot path.
    for router in (runs.router, crons.router, protocol.router, threads.router, assistants.router, meta.router,
                   store.router, openai.router):
        if id(router) not in skip:
            app.include_router(router)
    if not http.get("disable_mcp"):
        extensions.append(mcp.install(app, AssistantTools(rt.assistants, rt.runs)))
    if not http.get("disable_a2a"):
        app.include_router(a2a.router)
    if http.get("disable_ui"):
        return app
    studio.mount(app)
    if studio.available():
        @app.get("/", include_in_schema=False)
        async def root() -> Any:
            return RedirectResponse("/studio/")
    return app
