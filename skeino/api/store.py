"""/store routes over the LangGraph store the graphs also see."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from skeino.api.deps import runtime
from skeino.errors import NotFound, NotSupported
from skeino.runtime.core import Runtime
from skeino.schemas import StoreDelete, StoreNamespaces, StorePut, StoreSearch

router = APIRouter(prefix="/store", tags=["store"])


def _item(item: Any) -> dict[str, Any]:
    data = item.dict()
    return {k: data.get(k) for k in ("namespace", "key", "value", "created_at", "updated_at")} | (
        {"score": data["score"]} if "score" in data else {}
    )


@router.put("/items", status_code=204)
async def put_item(body: StorePut, rt: Runtime = Depends(runtime)) -> Response:
    if body.index:
        raise NotSupported("store 'index' (semantic search) is not configured on this server")
    await rt.storage.store.aput(tuple(body.namespace), body.key, body.value, index=body.index, ttl=body.ttl)
    return Response(status_code=204)


@router.get("/items")
async def get_item(key: str, namespace: str | None = None, refresh_ttl: bool | None = None,
                   rt: Runtime = Depends(runtime)) -> Any:
    ns = tuple(namespace.split(".")) if namespace else ()
    item = await rt.storage.store.aget(ns, key, refresh_ttl=refresh_ttl)
    if item is None:
        raise NotFound(f"Item {key!r} not found in namespace {namespace!r}")
    return _item(item)


@router.delete("/items", status_code=204)
async def delete_item(body: StoreDelete, rt: Runtime = Depends(runtime)) -> Response:
    await rt.storage.store.adelete(tuple(body.namespace), body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: StoreSearch, rt: Runtime = Depends(runtime)) -> Any:
    if body.query:
        raise NotSupported("store 'query' (semantic search) is not configured on this server")
    items = await rt.storage.store.asearch(tuple(body.namespace_prefix), filter=body.filter, limit=body.limit,
                                           offset=body.offset, refresh_ttl=body.refresh_ttl)
    return {"items": [_item(i) for i in items]}


@router.post("/namespaces")
async def list_namespaces(body: StoreNamespaces, rt: Runtime = Depends(runtime)) -> Any:
    namespaces = await rt.storage.store.alist_namespaces(
        prefix=tuple(body.prefix) if body.prefix else None, suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth, limit=body.limit, offset=body.offset,
    )
    return {"namespaces": [list(ns) for ns in namespaces]}
