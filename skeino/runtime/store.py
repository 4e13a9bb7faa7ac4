"""The key-value store the graphs see at run time, as the /store routes expose it."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any, Sequence

from langgraph.store.base import BaseStore, Item

from skeino.auth.custom import Authorizer, HandlerFailed
from skeino.errors import Invalid, NotSupported
from skeino.runtime.ttl import check_ttl_minutes

logger = logging.getLogger("skeino.store")

# What LangGraph's stores can filter on: a field name (dots reach into nested values) and,
# for a comparison, one of these operators. Anything else would fail deep in the store.
_FIELD = re.compile(r"^[A-Za-z0-9_.-]+$")
_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})


def _timestamp(value: Any) -> Any:
    """ISO-8601 in UTC with its offset, as the official server answers (SQLite keeps naive UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return value


def _item(item: Item) -> dict[str, Any]:
    data = {"namespace": list(item.namespace), "key": item.key, "value": item.value,
            "created_at": _timestamp(item.created_at), "updated_at": _timestamp(item.updated_at)}
    if hasattr(item, "score"):  # a search result: ranked (a number) or not (null)
        data["score"] = item.score
    return data


def check_namespace(labels: Sequence[Any], field: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """The namespace as a tuple; Invalid naming `field` for labels no store could hold.

    A label holds no period (the GET route joins labels with periods) and no NUL
    (databases refuse it); an item's namespace has at least one label.
    """
    if not labels and not allow_empty:
        raise Invalid(f"'{field}' must name at least one label")
    for label in labels:
        if not isinstance(label, str) or not label or "." in label or "\x00" in label:
            raise Invalid(f"'{field}' label {label!r} must be a non-empty string without periods or NUL characters")
    return tuple(labels)


def check_filter(filter: dict[str, Any] | None, path: str = "") -> dict[str, Any] | None:
    """The search filter as the stores apply it; Invalid naming the part no store could apply.

    A nested object without operators matches nested fields (as in LangGraph's in-memory
    store, which the official development server uses); it becomes dotted field names,
    the form the SQL stores understand.
    """
    if not filter:
        return filter
    flat: dict[str, Any] = {}
    for field, condition in filter.items():
        name = f"{path}.{field}" if path else field
        if not _FIELD.match(field) or field.startswith(".") or field.endswith("."):
            raise Invalid(f"'filter' key {name!r} is not a field name (letters, digits, '_', '-', '.' only)")
        if isinstance(condition, dict) and condition and not any(k.startswith("$") for k in condition):
            flat.update(check_filter(condition, name) or {})
            continue
        if isinstance(condition, dict):
            for operator in condition:
                if operator not in _OPERATORS:
                    raise Invalid(f"'filter.{name}' uses unknown operator {operator!r}; "
                                  f"use one of {', '.join(sorted(_OPERATORS))}")
        flat[name] = condition
    return flat


def _handler_filter(extra: dict[str, Any]) -> dict[str, Any]:
    """A store handler's search filter, checked as the caller's is; a bad one is the deployment's fault (500)."""
    try:
        return check_filter(extra) or {}
    except Invalid as exc:
        raise HandlerFailed(f"the store auth handler returned an unusable filter: {exc.detail}") from None


def _and(existing: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any] | None:
    """Both filters on an item's value; None when no item can satisfy both (one key, two values)."""
    merged = dict(existing or {})
    for key, value in extra.items():
        if key in merged and merged[key] != value:
            return None
        merged[key] = value
    return merged


class StoreService:
    """The /store routes: each action passes the store handler (resource "store"), as on the official server.

    The handler may refuse, rewrite the value in place (namespace, key, …), and for a search
    return a filter over item values that the store's own query applies with the caller's.
    Namespaces are checked again after it ran, as the official server does.
    """

    def __init__(self, store: BaseStore, authz: Authorizer | None = None, *, indexed: bool = False) -> None:
        self._store = store
        self._authz = authz or Authorizer(None)
        self._indexed = indexed  # langgraph.json configures store.index (semantic search)
        self._told_unranked = False

    async def put(self, namespace: list[str], key: str, value: dict[str, Any], *, index: Any, ttl: float | None) -> None:
        ns = check_namespace(namespace, "namespace")
        if ttl is not None:
            ttl = check_ttl_minutes(ttl, "'ttl'")
        if index and not self._indexed:
            raise NotSupported("store 'index' (semantic search) is not configured on this server")
        action = {"namespace": ns, "key": key, "value": value, "index": index, "ttl": ttl}
        await self._authz.store("put", action)
        await self._store.aput(check_namespace(action["namespace"], "namespace"), action["key"], action["value"],
                               index=action["index"], ttl=action["ttl"])

    async def get(self, namespace: str | None, key: str, *, refresh_ttl: bool | None) -> dict[str, Any] | None:
        """The item, or None when there is none (the official server answers null, not 404)."""
        ns = check_namespace((namespace or "").split("."), "namespace")
        action = {"namespace": ns, "key": key, "refresh_ttl": refresh_ttl}
        await self._authz.store("get", action)
        item = await self._store.aget(check_namespace(action["namespace"], "namespace"), action["key"],
                                      refresh_ttl=action["refresh_ttl"])
        return _item(item) if item is not None else None

    async def delete(self, namespace: list[str], key: str) -> None:
        """Delete the item; deleting one that is not there is not an error."""
        action = {"namespace": check_namespace(namespace, "namespace"), "key": key}
        await self._authz.store("delete", action)
        await self._store.adelete(check_namespace(action["namespace"], "namespace"), action["key"])

    async def search(self, namespace_prefix: list[str], *, filter: dict[str, Any] | None, limit: int, offset: int,
                     query: str | None, refresh_ttl: bool | None) -> list[dict[str, Any]]:
        prefix = check_namespace(namespace_prefix, "namespace_prefix", allow_empty=True)
        filter = check_filter(filter)
        if query and not self._indexed:
            # As the official server does: the query cannot rank anything, the other conditions still apply.
            if not self._told_unranked:
                self._told_unranked = True
                logger.info("store search with 'query' on a server without store.index: items are listed unranked")
            query = None
        action = {"namespace": prefix, "filter": filter, "limit": limit, "offset": offset, "query": query,
                  "refresh_ttl": refresh_ttl}
        extra = await self._authz.store("search", action)
        wanted = action["filter"]
        if extra:
            wanted = _and(wanted, _handler_filter(extra))
            if wanted is None:
                return []
        items = await self._store.asearch(check_namespace(action["namespace"], "namespace_prefix", allow_empty=True),
                                          filter=wanted, limit=action["limit"], offset=action["offset"],
                                          query=action["query"], refresh_ttl=action["refresh_ttl"])
        return [_item(i) for i in items]

    async def namespaces(self, *, prefix: list[str] | None, suffix: list[str] | None, max_depth: int | None,
                         limit: int, offset: int) -> list[list[str]]:
        action = {"namespace": check_namespace(prefix, "prefix") if prefix else None,
                  "suffix": check_namespace(suffix, "suffix") if suffix else None,
                  "max_depth": max_depth, "limit": limit, "offset": offset}
        await self._authz.store("list_namespaces", action)
        found = await self._store.alist_namespaces(
            prefix=check_namespace(action["namespace"], "prefix") if action["namespace"] else None,
            suffix=check_namespace(action["suffix"], "suffix") if action["suffix"] else None,
            max_depth=action["max_depth"], limit=action["limit"], offset=action["offset"],
        )
        return [list(ns) for ns in found]
