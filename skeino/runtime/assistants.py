"""Assistants: versioned configurations of the loaded graphs."""

from __future__ import annotations

import uuid
from typing import Any

from skeino import serde
from skeino.auth.custom import Authorizer
from skeino.errors import Conflict, Invalid, NotFound
from skeino.graphs import GraphRegistry, default_assistant_id
from skeino.runtime.graph_schemas import display_name, graph_schemas, named
from skeino.runtime import paging
from skeino.storage import query
from skeino.storage.base import Record, Storage, now_iso


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


class AssistantService:
    def __init__(self, storage: Storage, registry: GraphRegistry, authz: Authorizer | None = None, *,
                 cache: bool = True) -> None:
        self._storage = storage
        self._registry = registry
        self._authz = authz or Authorizer(None)
        # Every run resolves its assistant; they change rarely and only through this
        # service, which drops an entry whenever it writes one (one process per database;
        # replicas pass cache=False, since another process may write one).
        self._cache: dict[str, Record] = {}
        self._caching = cache

    async def ensure_defaults(self) -> None:
        """Create each graph's default assistant once; a restart only brings its name and description up to date."""
        for graph_id in self._registry.ids():
            info = self._registry.info(graph_id)
            name = display_name(info.graph, graph_id)
            now = now_iso()
            record = {
                "assistant_id": default_assistant_id(graph_id), "graph_id": graph_id,
                "config": {}, "context": {}, "metadata": {"created_by": "system"},
                "name": name, "description": info.description, "created_at": now, "updated_at": now,
            }
            if await self._storage.assistant_create(record) is not None:
                continue
            # As the official server does: the graph's code or langgraph.json may have renamed it.
            current = await self._storage.assistant_get(record["assistant_id"])
            if current is not None and (current["name"], current["description"]) != (name, info.description):
                await self._storage.assistant_update(record["assistant_id"],
                                                     {"name": name, "description": info.description})

    def resolve_id(self, assistant_id: str) -> str:
        """A graph id stands for its default assistant."""
        if assistant_id in self._registry:
            return default_assistant_id(assistant_id)
        return assistant_id

    async def get(self, assistant_id: str, action: str | None = "read") -> Record:
        """The assistant, if the caller may take `action` on it; None as action is the server's own lookup."""
        resolved = self.resolve_id(assistant_id)
        access = await self._authz("assistants", action, {"assistant_id": resolved}) if action else None
        if access is not None:
            # A filtered read goes to storage, which applies the filter; the cache is for unfiltered ones.
            record = await self._storage.assistant_get(resolved, access=access) if is_uuid(resolved) else None
            if record is None:
                raise NotFound(f"Assistant with ID {assistant_id} not found")
            return record
        record = self._cache.get(resolved)
        if record is None:
            record = await self._storage.assistant_get(resolved) if is_uuid(resolved) else None
            if record is None:
                raise NotFound(f"Assistant with ID {assistant_id} not found")
            if self._caching:
                self._cache[resolved] = record
        return record

    async def get_for_run(self, assistant_id: str) -> Record:
        """The assistant a run names; 422 when the id is neither a UUID nor a graph id, as on the official server."""
        if assistant_id not in self._registry and not is_uuid(assistant_id):
            raise Invalid(f"Invalid assistant {assistant_id!r}: give an assistant UUID or one of the loaded graph ids: "
                          f"{', '.join(self._registry.ids())}")
        return await self.usable(assistant_id)

    async def usable(self, assistant_id: str) -> Record:
        """The assistant a run or cron uses: anyone may use the graphs' own, others only if readable."""
        record = await self.get(assistant_id, action=None)
        if record["metadata"].get("created_by") == "system":
            return record
        return await self.get(record["assistant_id"])

    def _check_graph(self, graph_id: str) -> None:
        if graph_id not in self._registry:
            raise NotFound(f"Graph with ID {graph_id!r} not found; loaded graphs: {', '.join(self._registry.ids())}")

    async def create(self, body: dict[str, Any]) -> Record:
        self._check_graph(body["graph_id"])
        assistant_id = body.get("assistant_id") or str(uuid.uuid4())
        if not is_uuid(assistant_id):
            raise Invalid("Invalid assistant ID: must be a UUID")
        value = {"assistant_id": assistant_id, "graph_id": body["graph_id"], "config": body.get("config") or {},
                 "context": body.get("context") or {}, "metadata": body.get("metadata") or {},
                 "if_exists": body.get("if_exists") or "raise", "name": body.get("name") or "Untitled"}
        access = await self._authz("assistants", "create", value)  # it may change the value (e.g. add an owner)
        now = now_iso()
        record = {
            "assistant_id": assistant_id, "graph_id": value["graph_id"],
            "config": value["config"] or {}, "context": value["context"] or {},
            "metadata": value["metadata"] or {}, "name": value["name"] or "Untitled",
            "description": body.get("description"), "created_at": now, "updated_at": now,
        }
        created = await self._storage.assistant_create(record)
        if created is None:
            if body.get("if_exists") == "do_nothing":
                existing = await self._storage.assistant_get(assistant_id, access=access)
                if existing is not None:
                    return existing
            raise Conflict(f"Assistant with ID {assistant_id} already exists")
        return created

    async def patch(self, assistant_id: str, body: dict[str, Any]) -> Record:
        value = {"assistant_id": self.resolve_id(assistant_id), **{k: body.get(k) for k in (
            "graph_id", "config", "context", "metadata", "name", "version")}}
        current = await self._get_for(assistant_id, "update", value)
        body = {**body, **{k: v for k, v in value.items() if k != "assistant_id"}}
        changes: dict[str, Any] = {}
        if body.get("graph_id") is not None:
            self._check_graph(body["graph_id"])
            changes["graph_id"] = body["graph_id"]
        for key in ("config", "context", "name", "description"):
            if body.get(key) is not None:
                changes[key] = body[key]
        if body.get("metadata") is not None:
            changes["metadata"] = {**current["metadata"], **body["metadata"]}
        updated = await self._storage.assistant_update(current["assistant_id"], changes)
        self._cache.pop(current["assistant_id"], None)
        if updated is None:
            raise NotFound(f"Assistant with ID {assistant_id} not found")
        return updated

    async def _get_for(self, assistant_id: str, action: str, value: dict[str, Any]) -> Record:
        """The assistant if the caller's `action` handler (given `value`) lets them reach it."""
        resolved = self.resolve_id(assistant_id)
        access = await self._authz("assistants", action, value)
        record = await self._storage.assistant_get(resolved, access=access) if is_uuid(resolved) else None
        if record is None:
            raise NotFound(f"Assistant with ID {assistant_id} not found")
        return record

    async def delete(self, assistant_id: str) -> None:
        record = await self._get_for(assistant_id, "delete", {"assistant_id": self.resolve_id(assistant_id)})
        await self._storage.assistant_delete(record["assistant_id"])
        self._cache.pop(record["assistant_id"], None)

    async def _search_value(self, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        value = {"graph_id": body.get("graph_id"), "metadata": body.get("metadata"),
                 "limit": body.get("limit", 10), "offset": body.get("offset", 0)}
        return value, await self._authz("assistants", "search", value)

    async def search(self, body: dict[str, Any]) -> list[Record]:
        return (await self.search_page(body)).rows

    async def search_page(self, body: dict[str, Any], cursor: str | None = None) -> paging.Page:
        """A page of assistants, after `cursor` when given (see runtime/paging.py)."""
        value, access = await self._search_value(body)
        sort_by, sort_order = body.get("sort_by") or "created_at", body.get("sort_order") or "desc"
        return await paging.fetch(
            lambda limit, after: self._storage.assistant_search(
                graph_id=value["graph_id"], name=body.get("name"), metadata=value["metadata"], limit=limit,
                offset=value["offset"], sort_by=sort_by, sort_order=sort_order, access=access, after=after),
            limit=value["limit"], offset=value["offset"], cursor=cursor,
            key=query.sort_column(sort_by, query.ASSISTANT_SORT), order=sort_order)

    async def count(self, body: dict[str, Any]) -> int:
        value, access = await self._search_value(body)
        return await self._storage.assistant_count(
            graph_id=value["graph_id"], name=body.get("name"), metadata=value["metadata"], access=access
        )

    async def versions(self, assistant_id: str, body: dict[str, Any]) -> list[Record]:
        record = await self.get(assistant_id)
        return await self._storage.assistant_versions(
            record["assistant_id"], metadata=body.get("metadata"), limit=body.get("limit", 10), offset=body.get("offset", 0)
        )

    async def set_latest(self, assistant_id: str, version: int) -> Record:
        record = await self._get_for(assistant_id, "update",
                                     {"assistant_id": self.resolve_id(assistant_id), "version": version})
        updated = await self._storage.assistant_set_latest(record["assistant_id"], version)
        self._cache.pop(record["assistant_id"], None)
        if updated is None:
            raise NotFound(f"Version {version} of assistant {assistant_id} not found")
        return updated

    # graph introspection -------------------------------------------------------------
    async def _graph(self, assistant_id: str) -> Any:
        record = await self.get(assistant_id)
        return record, await self._registry.get(record["graph_id"], {"configurable": dict(record["config"].get("configurable", {}))})

    async def graph(self, assistant_id: str, xray: bool | int) -> dict[str, Any]:
        _, graph = await self._graph(assistant_id)
        drawable = await graph.aget_graph(xray=xray)
        shape = serde.to_jsonable(drawable.to_json())
        # LangChain adds the runnable's class path as data.id; the official server drops it, so
        # clients see only the node name there.
        for node in shape.get("nodes", []):
            if isinstance(node.get("data"), dict):
                node["data"].pop("id", None)
        return shape

    async def schemas(self, assistant_id: str) -> dict[str, Any]:
        record, graph = await self._graph(assistant_id)
        return {"graph_id": record["graph_id"], **graph_schemas(named(graph, record["graph_id"]))}

    async def subgraphs(self, assistant_id: str, namespace: str | None, recurse: bool) -> dict[str, Any]:
        _, graph = await self._graph(assistant_id)
        return {ns: graph_schemas(sub) async for ns, sub in graph.aget_subgraphs(namespace=namespace, recurse=recurse)}
