"""/store routes over the LangGraph store the graphs also see."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from skeino.api.deps import runtime
from skeino.api.inputs import JsonRoute
from skeino.api.responses import errors
from skeino.runtime.core import Runtime
from skeino.schemas import StoreDelete, StoreNamespaces, StorePut, StoreSearch

router = APIRouter(prefix="/store", tags=["store"], route_class=JsonRoute, responses=errors(404, 501))


@router.put("/items", status_code=204)
async def put_item(body: StorePut, rt: Runtime = Depends(runtime)) -> Response:
    await rt.store.put(body.namespace, body.key, body.value, index=body.index, ttl=body.ttl)
    return Response(status_code=204)


@router.get("/items")
async def get_item(key: str, namespace: str | None = None, refresh_ttl: bool | None = None,
                   rt: Runtime = Depends(runtime)) -> Any:
    return await rt.store.get(namespace, key, refresh_ttl=refresh_ttl)


@router.delete("/items", status_code=204)
async def delete_item(body: StoreDelete, rt: Runtime = Depends(runtime)) -> Response:
    await rt.store.delete(body.namespace, body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: StoreSearch, rt: Runtime = Depends(runtime)) -> Any:
    items = await rt.store.search(body.namespace_prefix, filter=body.filter, limit=body.limit, offset=body.offset,
                                  query=body.query, refresh_ttl=body.refresh_ttl)
    return {"items": items}


@router.post("/namespaces")
async def list_namespaces(body: StoreNamespaces, rt: Runtime = Depends(runtime)) -> Any:
    namespaces = await rt.store.namespaces(prefix=body.prefix, suffix=body.suffix, max_depth=body.max_depth,
                                           limit=body.limit, offset=body.offset)
    return {"namespaces": namespaces}
