"""The routes called directly are also found directly: past the framework's router.

A run route's request went through FastAPI's exception middleware, its exit stack, the
router, and the included routers' matching, which FastAPI 0.165 does twice (once to pick
the included router, once more inside it): about 3% of the server's CPU per run. This
layer, the innermost of the app's own middleware, picks those routes itself and calls the
very handler the framework would (with the app-wide dependencies, response class and
body limit of their inclusion), with the scope the framework would have built; the
exception handlers, errors and everything inside the handler are the framework's.

Only the routes whose endpoint `JsonRoute` calls directly qualify (the run creation
routes and the store's item writes), and only when nothing the framework tries earlier
could take their request: any doubt, and the request goes the framework's way.
"""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from typing import Any, Iterator

from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from skeino.api.inputs import JsonRoute, direct_callable

try:  # FastAPI's native telemetry names the route a request took; absent before 0.165
    from fastapi.telemetry._api import _route_selected
except ImportError:  # pragma: no cover - depends on the FastAPI release
    _route_selected = None

# Where FastAPI 0.165 keeps the included route a request took (its handler reads it).
_FASTAPI_SCOPE = getattr(fastapi_routing, "_FASTAPI_SCOPE_KEY", "fastapi")
_ROUTE_CONTEXT = getattr(fastapi_routing, "_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY", "effective_route_context")
_SAMPLE_ID = str(uuid.UUID(int=0x5EED))

# One route the shortcut takes: its path pattern, converters, and the framework's
# callable and scope entries for it.
_Entry = tuple[Any, dict[str, Any], ASGIApp, Any, Any, str]


def _in_order(routes: list[Any]) -> Iterator[Any]:
    """The routes in the order the framework tries them, included routers opened."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)  # FastAPI 0.165's included router
        if callable(candidates):
            yield from _in_order(candidates())
        else:
            yield route


def _sample_path(route: Any) -> str:
    """A path the route takes, with every parameter an id."""
    return route.path_format.format(**{name: _SAMPLE_ID for name in route.param_convertors})


def _table(app: FastAPI) -> dict[str, list[_Entry]]:
    """Per method, the routes to take directly."""
    ordered = list(_in_order(app.router.routes))
    table: dict[str, list[_Entry]] = {}
    for i, route in enumerate(ordered):
        original = getattr(route, "original_route", route)
        if not isinstance(original, JsonRoute) or getattr(route, "app", None) is None \
                or getattr(route, "path_regex", None) is None or not direct_callable(route):
            continue
        path = _sample_path(route)
        for method in route.methods or ():
            sample = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {},
                      "headers": []}
            # Another route tried first that takes such a request keeps it the framework's.
            if any(earlier.matches(dict(sample))[0] == Match.FULL for earlier in ordered[:i]):
                continue
            table.setdefault(method, []).append((route.path_regex, route.param_convertors, route.app, original,
                                                 route, route.path_format))
    return table


class RouteShortcut:
    """Calls a directly called route's handler without the router in between."""

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI) -> None:
        self.app = app
        self._fastapi = fastapi
        self._routes: dict[str, list[_Entry]] | None = None  # built on first use, once every router is in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            routes = self._routes
            if routes is None:
                routes = self._routes = self._build()
            for regex, convertors, handler, route, context, template in routes.get(scope["method"], ()):
                match = regex.match(scope["path"])
                if match is None:
                    continue
                params = match.groupdict()
                if any(len(value) != 36 for value in params.values()):
                    break  # not an id: the framework decides what takes it
                await self._call(scope, receive, send, handler, route, context, template,
                                 {key: convertors[key].convert(value) for key, value in params.items()})
                return
        await self.app(scope, receive, send)

    def _build(self) -> dict[str, list[_Entry]]:
        # The exception middleware is what the handler's errors are answered by; another
        # framework layout and nothing is taken directly.
        if not isinstance(self.app, ExceptionMiddleware):
            return {}
        return _table(self._fastapi)

    async def _call(self, scope: Scope, receive: Receive, send: Send, handler: ASGIApp, route: Any, context: Any,
                    template: str, params: dict[str, Any]) -> None:
        exceptions: Any = self.app
        # What the exception middleware, the router and the route's matching put in the scope.
        scope["starlette.exception_handlers"] = (exceptions._exception_handlers, exceptions._status_handlers)
        scope.setdefault("router", self._fastapi.router)
        scope["endpoint"] = context.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        scope["route"] = route
        if context is not route:  # FastAPI 0.165's included route
            scope.setdefault(_FASTAPI_SCOPE, {})[_ROUTE_CONTEXT] = context
        if _route_selected is not None:
            _route_selected(scope=scope, path=template)
        async with AsyncExitStack() as files:
            scope["fastapi_middleware_astack"] = files
            await handler(scope, receive, send)
