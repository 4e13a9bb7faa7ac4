"""/ok, /info, and skeino's own /api/health and /api/initial-message."""

from __future__ import annotations

from typing import Any

import langgraph.version
from fastapi import APIRouter, Depends

from skeino import __version__
from skeino.api.deps import runtime
from skeino.runtime.compat import STRICT_RESUME
from skeino.runtime.core import Runtime

router = APIRouter(tags=["meta"])


@router.get("/ok")
async def ok() -> Any:
    return {"ok": True}


@router.get("/api/health")
async def health() -> Any:
    return {"status": "ok", "version": __version__}


@router.get("/api/initial-message")
async def initial_message(rt: Runtime = Depends(runtime)) -> Any:
    """The greeting a chat front end may show before the first message (SKEINO_WELCOME_MESSAGE)."""
    return {"message": rt.settings.welcome_message, "version": __version__}


@router.get("/info")
async def info(rt: Runtime = Depends(runtime)) -> Any:
    return {
        "status": "ok",
        "name": "skeino",
        "version": __version__,
        "langgraph_py_version": langgraph.version.__version__,
        "graphs": rt.registry.ids(),
        "flags": {"assistants": True, "crons": False, "langsmith": False, "strict_resume": STRICT_RESUME},
        "host": {"kind": "self-hosted"},
    }
