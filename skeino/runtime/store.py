"""The key-value store the graphs see at run time, as the /store routes expose it."""

from __future__ import annotations

from typing import Any

from langgraph.store.base import BaseStore, Item

from skeino.errors import NotFound, NotSupported


def _item(item: Item) -> dict[str, Any]:
    data = item.dict()
    return {k: data.get(k) for k in ("namespace", "key", "value", "created_at", "updated_at")} | (
        {"score": data["score"]} if "score" in data else {}
    )


class StoreService:
    def __init__(self, store: BaseStore, *, indexed: bool = False) -> None:
        self._store = store
        self._indexed = indexed  # langgraph.json configures store.index (semantic search)

    async def put(self, namespace: list[str], key: str, value: dict[str, Any], *, index: Any, ttl: float | None) -> None:
        if index and not self._indexed:
            raise NotSupported("store 'index' (semantic search) is not configured on this server")
        await self._store.aput(tuple(namespace), key, value, index=index, ttl=ttl)

    async def get(self, namespace: str | None, key: str, *, refresh_ttl: bool | None) -> dict[str, Any]:
        ns = tuple(namespace.split(".")) if namespace else ()
        item = await self._store.aget(ns, key, refresh_ttl=refresh_ttl)
        if item is None:
            raise NotFound(f"Item {key!r} not found in namespace {namespace!r}")
        return _item(item)

    async def delete(self, namespace: list[str], key: str) -> None:
        await self._store.adelete(tuple(namespace), key)

    async def search(self, namespace_prefix: list[str], *, filter: dict[str, Any] | None, limit: int, offset: int,
                     query: str | None, refresh_ttl: bool | None) -> list[dict[str, Any]]:
        if query and not self._indexed:
            raise NotSupported("store 'query' (semantic search) is not configured on this server")
        items = await self._store.asearch(tuple(namespace_prefix), filter=filter, limit=limit, offset=offset,
                                          query=query, refresh_ttl=refresh_ttl)
        return [_item(i) for i in items]

    async def namespaces(self, *, prefix: list[str] | None, suffix: list[str] | None, max_depth: int | None,
                         limit: int, offset: int) -> list[list[str]]:
        found = await self._store.alist_namespaces(
            prefix=tuple(prefix) if prefix else None, suffix=tuple(suffix) if suffix else None,
            max_depth=max_depth, limit=limit, offset=offset,
        )
        return [list(ns) for ns in found]
