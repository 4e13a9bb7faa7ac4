"""/assistants routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from skeino.api.deps import CURSOR, paged, runtime
from skeino.api.inputs import JsonRoute
from skeino.api.responses import errors
from skeino.runtime.core import Runtime
from skeino.schemas import (AssistantCount, AssistantCreate, AssistantLatest, AssistantPatch, AssistantSearch,
                            AssistantVersions)

router = APIRouter(prefix="/assistants", tags=["assistants"], route_class=JsonRoute, responses=errors(404, 409))


@router.post("")
async def create_assistant(body: AssistantCreate, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.create(body.data())


@router.post("/search")
async def search_assistants(body: AssistantSearch, response: Response, cursor: str | None = CURSOR,
                             rt: Runtime = Depends(runtime)) -> Any:
    rows = paged(await rt.assistants.search_page(body.data(), cursor), response)
    if body.select:
        return [{k: r.get(k) for k in body.select} for r in rows]
    return rows


@router.post("/count")
async def count_assistants(body: AssistantCount, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.count(body.data())


@router.get("/{assistant_id}")
async def get_assistant(assistant_id: str, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.get(assistant_id)


@router.patch("/{assistant_id}")
async def patch_assistant(assistant_id: str, body: AssistantPatch, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.patch(assistant_id, body.data())


@router.delete("/{assistant_id}", status_code=204)
async def delete_assistant(assistant_id: str, delete_threads: bool = False, rt: Runtime = Depends(runtime)) -> Response:
    await rt.delete_assistant(assistant_id, delete_threads=delete_threads)
    return Response(status_code=204)


@router.get("/{assistant_id}/graph")
async def assistant_graph(assistant_id: str, xray: bool | int = Query(False), rt: Runtime = Depends(runtime)) -> Any:
    # xray is a bool (show subgraphs) or a depth.
    return await rt.assistants.graph(assistant_id, xray)


@router.get("/{assistant_id}/schemas")
async def assistant_schemas(assistant_id: str, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.schemas(assistant_id)


@router.get("/{assistant_id}/subgraphs")
async def assistant_subgraphs(assistant_id: str, recurse: bool = False, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.subgraphs(assistant_id, None, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def assistant_subgraphs_ns(assistant_id: str, namespace: str, recurse: bool = False,
                                 rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.subgraphs(assistant_id, namespace, recurse)


@router.post("/{assistant_id}/versions")
async def assistant_versions(assistant_id: str, body: AssistantVersions | None = None,
                             rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.versions(assistant_id, body.data() if body else {})


@router.post("/{assistant_id}/latest")
async def assistant_latest(assistant_id: str, body: AssistantLatest, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.assistants.set_latest(assistant_id, body.version)
