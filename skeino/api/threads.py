"""/threads routes: records, state, history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from skeino.api.deps import CURSOR, JSON, Idempotent, idempotent, paged, runtime
from skeino.api.inputs import JsonRoute
from skeino.api.responses import errors
from skeino.errors import NotSupported
from skeino.runtime.core import Runtime
from skeino.schemas import (HistoryQuery, StateAtCheckpoint, StateField, StateUpdate, ThreadCount, ThreadCreate,
                            ThreadPatch, ThreadPrune, ThreadSearch)

router = APIRouter(prefix="/threads", tags=["threads"], route_class=JsonRoute, responses=errors(400, 404, 409, 501))


def _project(state: dict[str, Any], select: list[Any] | None) -> dict[str, Any]:
    """Only the ThreadState fields the client selected (all when none)."""
    return {k: state.get(k) for k in select} if select else state


@router.post("")
async def create_thread(body: ThreadCreate, rt: Runtime = Depends(runtime),
                        once: Idempotent = Depends(idempotent)) -> Response:
    # A Response (not a record for the framework to encode) lets the route take the direct
    # call (api/inputs.py): a thread is made before most runs on it.
    data = body.data()
    return JSON(await once(data, lambda: rt.threads.create(data)))


@router.post("/search")
async def search_threads(body: ThreadSearch, response: Response, cursor: str | None = CURSOR,
                         rt: Runtime = Depends(runtime)) -> Any:
    if body.extract:
        raise NotSupported("'extract' in thread search is not supported by this skeino version")
    return paged(await rt.threads.search(body.data(), cursor), response)


@router.post("/count")
async def count_threads(body: ThreadCount, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.threads.count(body.data())


@router.post("/prune")
async def prune_threads(body: ThreadPrune, rt: Runtime = Depends(runtime)) -> Any:
    return {"pruned_count": await rt.threads.prune(body.thread_ids, body.strategy)}


@router.get("/{thread_id}")
async def get_thread(thread_id: str, include: str | None = None, rt: Runtime = Depends(runtime)) -> Any:
    thread = await rt.threads.get(thread_id)
    # `?include=ttl` adds the thread's TTL, when it has one, as the official server does.
    if include and "ttl" in (f.strip() for f in include.split(",")):
        ttl = await rt.threads.ttl(thread_id)
        if ttl is not None:
            thread = {**thread, "ttl": ttl}
    return thread


@router.patch("/{thread_id}")
async def patch_thread(thread_id: str, body: ThreadPatch, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.threads.patch(thread_id, body.data())


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, rt: Runtime = Depends(runtime)) -> Response:
    await rt.threads.delete(thread_id)
    return Response(status_code=204)


@router.post("/{thread_id}/copy")
async def copy_thread(thread_id: str, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.threads.copy(thread_id)


@router.get("/{thread_id}/state")
async def get_state(thread_id: str, subgraphs: bool = False, select: list[StateField] | None = Query(None),
                    rt: Runtime = Depends(runtime)) -> Any:
    return _project(await rt.threads.state(thread_id, subgraphs=subgraphs), select)


@router.post("/{thread_id}/state")
async def update_state(thread_id: str, body: StateUpdate, rt: Runtime = Depends(runtime)) -> Any:
    data = body.data()
    if body.checkpoint is not None:
        data["checkpoint"] = body.checkpoint.model_dump(exclude_none=True)
    return await rt.threads.update_state(thread_id, data)


@router.post("/{thread_id}/state/checkpoint")
async def state_at_checkpoint_body(thread_id: str, body: StateAtCheckpoint, rt: Runtime = Depends(runtime)) -> Any:
    state = await rt.threads.state(thread_id, subgraphs=body.subgraphs,
                                   checkpoint=body.checkpoint.model_dump(exclude_none=True))
    return _project(state, body.select)


@router.get("/{thread_id}/state/{checkpoint_id}")
async def state_at_checkpoint(thread_id: str, checkpoint_id: str, subgraphs: bool = False,
                              select: list[StateField] | None = Query(None), rt: Runtime = Depends(runtime)) -> Any:
    return _project(await rt.threads.state(thread_id, subgraphs=subgraphs, checkpoint_id=checkpoint_id), select)


@router.get("/{thread_id}/history")
async def history(thread_id: str, limit: int = Query(10, ge=1, le=1000), before: str | None = None,
                  rt: Runtime = Depends(runtime)) -> Any:
    return await rt.threads.history(thread_id, limit=limit, before=before)


@router.post("/{thread_id}/history")
async def history_post(thread_id: str, body: HistoryQuery, rt: Runtime = Depends(runtime)) -> Any:
    before = body.before.model_dump(exclude_none=True) if hasattr(body.before, "model_dump") else body.before
    checkpoint = body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else None
    states = await rt.threads.history(thread_id, limit=body.limit, before=before, metadata=body.metadata,
                                      checkpoint=checkpoint)
    return [_project(s, body.select) for s in states]
