"""/ok, /info, and skeino's own /api/health and /api/initial-message."""

from __future__ import annotations

from typing import Any

import langgraph.version
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from skeino import __version__
from skeino.api.deps import runtime
from skeino.api.inputs import JsonRoute
from skeino.api.responses import errors
from skeino.errors import NotFound
from skeino.runtime.compat import STRICT_RESUME
from skeino.runtime.core import Runtime

router = APIRouter(tags=["meta"], route_class=JsonRoute, responses=errors(404, 503))


@router.get("/ok")
async def ok(check_db: int = Query(0, ge=0, le=1), rt: Runtime = Depends(runtime)) -> Any:
    """Liveness; with `check_db=1` also readiness: storage answers a query (503 if not)."""
    if check_db:
        await rt.check_ready()
    return {"ok": True}


@router.get("/metrics", responses={200: {"content": {"text/plain": {}}}})
async def metrics(rt: Runtime = Depends(runtime)) -> Response:
    """Prometheus text format (SKEINO_METRICS=0 turns it off)."""
    if rt.metrics is None:
        raise NotFound("Metrics are turned off (SKEINO_METRICS=0)")
    from skeino.runtime.metrics import CONTENT_TYPE

    return Response(await rt.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/api/health")
async def health() -> Any:
    return {"status": "ok", "version": __version__}


@router.get("/api/initial-message")
async def initial_message(rt: Runtime = Depends(runtime)) -> Any:
    """The greeting a chat front end may show before the first message (SKEINO_WELCOME_MESSAGE)."""
    return {"message": rt.settings.welcome_message, "version": __version__}


@router.get("/info")
async def info(rt: Runtime = Depends(runtime)) -> Any:
    """What this server is and supports; each flag true only when the feature answers here."""
    http = rt.config.http
    return {
        "status": "ok",
        "name": "skeino",
        "version": __version__,
        "langgraph_py_version": langgraph.version.__version__,
        "graphs": rt.registry.ids(),
        # The official server's langsmith_tracing_* flags are left out: skeino sends no LangSmith traces.
        "flags": {"assistants": not http.get("disable_assistants"), "crons": not http.get("disable_runs"),
                  "langsmith": False, "strict_resume": STRICT_RESUME},
        "host": {"kind": "self-hosted"},
    }
