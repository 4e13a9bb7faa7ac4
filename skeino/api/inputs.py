"""What every route receives, checked once: JSON bodies whatever their Content-Type, ids in paths, the query.

The official server parses every body as JSON (its chat UI's proxy and the hosted Studio send
JSON as `text/plain`), so skeino does too. Cross-site `text/plain` requests from foreign origins
are refused earlier, by the security layer, before a route ever sees them.

JSON itself allows values that no store can keep: integers wider than 64 bits, lone UTF-16
surrogates, `NaN`, and nesting deep enough to exhaust the encoders' recursion limits. Each is
refused here, for every route at once, with a 422 naming the field, instead of failing later
as a 500 deep in storage.

Thread, run and cron ids are UUIDs: one that is not is a 422 naming it, as on the official
server, rather than a 404 that reads as "deleted". A query parameter the route does not read
is a 422 naming it, where the framework would silently ignore it.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any, Callable, Coroutine, Iterable

from fastapi import Request
from fastapi import routing as fastapi_routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

# Deep enough for any real document; shallow enough that a stored record wrapping a body
# value stays well inside orjson's and msgpack's recursion limit (255).
MAX_DEPTH = 100
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON_TYPE = (b"content-type", b"application/json")
UUID_PARAMS = ("thread_id", "run_id", "cron_id")


def _is_json_type(value: bytes) -> bool:
    mime = value.split(b";", 1)[0].strip().lower()
    return mime == b"application/json" or mime.endswith(b"+json")


def _as_json(scope: dict[str, Any]) -> None:
    """Make the body's declared type JSON, so the framework parses it as the official server does."""
    headers = scope["headers"]
    for i, (key, value) in enumerate(headers):
        if key == b"content-type":
            if not _is_json_type(value):
                scope["headers"] = [*headers[:i], _JSON_TYPE, *headers[i + 1:]]
            return
    scope["headers"] = [*headers, _JSON_TYPE]


def _problem(path: list[Any], msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", *path), "msg": msg, "input": None}])


def check_value(data: Any) -> None:
    """Refuse what JSON allows but storage cannot keep; the error names the field."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                raise _problem(path, "Text contains a lone UTF-16 surrogate, which is not valid Unicode")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise _problem(path, "Integer is wider than 64 bits (the range is -2^63 to 2^63-1)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _problem(path, f"Number {value} is not a finite JSON number")
        elif isinstance(value, (dict, list)):
            if len(path) >= MAX_DEPTH:
                raise _problem(path[:3], f"Value is nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, dict):
                for key, item in value.items():
                    if not key.isascii() and _SURROGATE.search(key):
                        raise _problem(path, f"Key {key.encode('utf-8', 'replace').decode()!r} contains a lone "
                                             "UTF-16 surrogate, which is not valid Unicode")
                    stack.append((item, [*path, key]))
            else:
                stack.extend((item, [*path, i]) for i, item in enumerate(value))


def parse(body: bytes) -> Any:
    """The body as checked JSON, or a RequestValidationError the error handlers turn into one sentence."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": exc.msg}}]) from None
    except UnicodeDecodeError:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": "the body is not UTF-8 text"}}]) from None
    except RecursionError:
        raise _problem([], f"The body is nested more than {MAX_DEPTH} levels deep") from None
    check_value(data)
    return data


def _is_uuid(value: str) -> bool:
    try:
        return len(value) == 36 and uuid.UUID(value) is not None
    except ValueError:
        return False


def check_ids(path_params: dict[str, Any]) -> None:
    """Path ids that must be UUIDs (the storage keys them so; anything else can never exist)."""
    for name in UUID_PARAMS:
        value = path_params.get(name)
        if value is not None and not _is_uuid(value):
            raise RequestValidationError([{"type": "uuid_parsing", "loc": ("path", name), "input": value,
                                           "msg": "Input should be a valid UUID"}])


def document_ids(openapi: dict[str, Any]) -> dict[str, Any]:
    """Mark the path ids checked above as UUIDs in /openapi.json, so clients and fuzzers know."""
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if param.get("in") == "path" and param.get("name") in UUID_PARAMS:
                    param["schema"] = {**param.get("schema", {}), "format": "uuid"}
    return openapi


def _query_names(dependant: Any) -> frozenset[str]:
    """Every query parameter the route or its dependencies read."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.update(param.alias for param in current.query_params)
        stack.extend(current.dependencies)
    return frozenset(names)


def check_query(names: Iterable[str], known: frozenset[str]) -> None:
    """A query parameter the route does not read would be ignored: refuse it by name instead."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise RequestValidationError([{"type": "extra_forbidden", "loc": ("query", name), "input": None,
                                       "msg": "Extra inputs are not permitted"} for name in unknown])


# Dependencies a route may name and still take the direct path below: each maps to a plain
# function of the request that returns what FastAPI would have injected.
DIRECT_DEPENDENCIES: dict[Callable[..., Any], Callable[[Request], Any]] = {}


def direct_dependency(resolve: Callable[[Request], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a dependency as one the direct path resolves with `resolve(request)`."""
    def mark(dependency: Callable[..., Any]) -> Callable[..., Any]:
        DIRECT_DEPENDENCIES[dependency] = resolve
        return dependency
    return mark


Direct = Callable[[Request, Any], Coroutine[Any, Any, Response | None]]


def _direct_call(route: Any) -> Direct | None:
    """A caller of the route's endpoint that skips FastAPI's dependency resolution, or None.

    FastAPI's per-request work (solving each dependency, building the endpoint's arguments,
    validating through its field layer) cost about as much as the run routes' own code. A
    route qualifies only when everything it takes is plain: string path parameters, one JSON
    body model, the Request, and dependencies listed in DIRECT_DEPENDENCIES; and it returns a
    Response. Its answer is then the same as FastAPI's; anything the direct path does not
    handle (an invalid body, app-wide dependencies, overrides) goes the framework's way.
    """
    dependant, body_field = route.dependant, route.body_field
    if (dependant.query_params or dependant.header_params or dependant.cookie_params or body_field is None
            # A FastAPI without this (private) flag may embed bodies differently: keep its path.
            or len(dependant.body_params) != 1 or getattr(route, "_embed_body_fields", True)
            or dependant.response_param_name
            or dependant.background_tasks_param_name or dependant.security_scopes_param_name
            or dependant.websocket_param_name or dependant.http_connection_param_name
            or route.response_field is not None):
        return None
    if getattr(route.endpoint, "__annotations__", {}).get("return") not in ("Response", Response):
        return None
    for param in dependant.path_params:
        if param.field_info.annotation is not str or param.field_info.metadata:
            return None
    resolvers = []
    for dependency in dependant.dependencies:
        resolve = DIRECT_DEPENDENCIES.get(dependency.call)  # type: ignore[arg-type]
        if resolve is None or dependency.name is None:
            return None
        resolvers.append((dependency.name, resolve))
    endpoint = dependant.call
    paths = [param.name for param in dependant.path_params]
    body_name, request_name = dependant.body_params[0].name, dependant.request_param_name
    validate = body_field.validate

    async def call(request: Request, data: Any) -> Response | None:
        app = request.app
        if app.router.dependencies or app.dependency_overrides:
            return None
        body, errors = validate(data, loc=("body",))
        if errors:
            return None  # the framework's path words the 422
        params = request.path_params
        kwargs = {name: params[name] for name in paths}
        kwargs[body_name] = body
        if request_name:
            kwargs[request_name] = request
        for name, resolve in resolvers:
            kwargs[name] = resolve(request)
        return await endpoint(**kwargs)  # type: ignore[misc]

    return call


def direct_callable(route: Any) -> bool:
    """Whether the route (or FastAPI's included form of it) is called directly."""
    return _direct_call(route) is not None


def _effective(route: APIRoute) -> Any:
    """The route as included (with its routers' dependencies), when FastAPI is building that one."""
    context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    return context if context is not None and getattr(context, "original_route", None) is route else route


class JsonRoute(APIRoute):
    """A route whose query, path ids and JSON body (read whatever its Content-Type) are checked first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        ids = any(name in self.param_convertors for name in UUID_PARAMS)
        has_body = self.body_field is not None
        known = _query_names(self.dependant)
        direct = _direct_call(_effective(self))

        async def route(request: Request) -> Response:
            if request.scope.get("query_string"):
                check_query(request.query_params.keys(), known)
            if ids:
                check_ids(request.path_params)
            if has_body and request.method in _BODY_METHODS:
                body = await request.body()
                if body:
                    data = parse(body)
                    if direct is not None:
                        response = await direct(request, data)
                        if response is not None:
                            return response
                    _as_json(request.scope)
                    request.__dict__.pop("_headers", None)  # re-read from the scope just changed
                    # The framework reads this cached value instead of parsing again.
                    request._json = data
            return await handler(request)

        return route
