"""Which routes skip FastAPI's dependency resolution, and that any other dependency keeps them on the framework's path."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from skeino.api import runs, threads
from skeino.api.inputs import JsonRoute, _direct_call, _effective
from skeino.api.security import require_scope
from skeino.api.shortcut import RouteShortcut, _table

HOT = {("POST", "/threads/{thread_id}/runs"), ("POST", "/threads/{thread_id}/runs/stream"),
       ("POST", "/threads/{thread_id}/runs/wait"), ("POST", "/runs"), ("POST", "/runs/stream"),
       ("POST", "/runs/wait")}


def _routes(router: APIRouter) -> dict[tuple[str, str], JsonRoute]:
    return {(method, route.path): route for route in router.routes if isinstance(route, JsonRoute)
            for method in route.methods}


def test_run_creation_routes_are_called_directly() -> None:
    routes = _routes(runs.router)
    assert {key for key, route in routes.items() if _direct_call(route) is not None} == HOT


def test_thread_creation_is_called_directly() -> None:
    # Most thread runs start with it (the chat UI's first message, the SDK's threads.create).
    routes = _routes(threads.router)
    assert {key for key, route in routes.items() if _direct_call(route) is not None} == {("POST", "/threads")}


def test_a_route_with_another_dependency_goes_through_the_framework() -> None:
    # The scope check API keys add app-wide: skipping it would skip authorization.
    router = APIRouter(route_class=JsonRoute, dependencies=[Depends(require_scope)])
    router.add_api_route("/runs/wait", runs.wait_stateless_run, methods=["POST"])
    assert _direct_call(_routes(router)[("POST", "/runs/wait")]) is None


def test_routes_included_under_app_wide_dependencies_go_through_the_framework() -> None:
    seen: list[object] = []
    original = JsonRoute.get_route_handler

    def recording(self: JsonRoute):  # type: ignore[no-untyped-def]
        seen.append(_direct_call(_effective(self)))
        return original(self)

    JsonRoute.get_route_handler = recording  # type: ignore[method-assign]
    try:
        app = FastAPI(dependencies=[Depends(require_scope)])
        app.include_router(runs.router)
        with TestClient(app, raise_server_exceptions=False) as http:
            # Builds the included routes' handlers where the framework does so on first use.
            http.post("/runs/wait", json={"assistant_id": "x"})
    finally:
        JsonRoute.get_route_handler = original  # type: ignore[method-assign]
    assert seen and all(call is None for call in seen)


def _shortcut_keys(app: FastAPI) -> set[tuple[str, str]]:
    return {(method, entry[5]) for method, entries in _table(app).items() for entry in entries}


def test_directly_called_routes_are_found_without_the_router() -> None:
    app = FastAPI()
    app.include_router(runs.router)
    assert _shortcut_keys(app) == HOT


def test_no_shortcut_under_app_wide_dependencies() -> None:
    app = FastAPI(dependencies=[Depends(require_scope)])
    app.include_router(runs.router)
    assert _shortcut_keys(app) == set()


def test_a_route_the_framework_tries_first_keeps_its_requests() -> None:
    app = FastAPI()

    @app.post("/runs/wait")
    async def earlier() -> dict[str, str]:
        return {"taken_by": "earlier"}

    app.include_router(runs.router)
    app.add_middleware(RouteShortcut, fastapi=app)
    assert ("POST", "/runs/wait") not in _shortcut_keys(app)
    assert ("POST", "/runs/stream") in _shortcut_keys(app)
    with TestClient(app) as http:
        assert http.post("/runs/wait", json={"assistant_id": "x"}).json() == {"taken_by": "earlier"}
