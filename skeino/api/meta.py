"""/ok and /info."""

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


@router.get("/info")
async def info(rt: Runtime = Depends(runtime)) -> Any:
    return {
        "name": "skeino",
        "version": __version__,
        "langgraph_py_version": langgraph.version.__version__,
        "graphs": rt.registry.ids(),
        "flags": {"assistants": True, "crons": False, "langsmith": False, "strict_resume": STRICT_RESUME},
        "host": {"kind": "self-hosted"},
    }
