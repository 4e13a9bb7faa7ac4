"""Threads: their records, and their graph state through the LangGraph checkpointer."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from langgraph.errors import InvalidUpdateError

from skeino import serde
from skeino.auth.custom import Authorizer
from skeino.errors import BadRequest, Conflict, Invalid, NotFound
from skeino.graphs import GraphRegistry
from skeino.runtime.assistants import is_uuid
from skeino.runtime.state import empty_state, snapshot_to_state, thread_interrupts
from skeino.runtime.ttl import thread_ttl_minutes
from skeino.storage.access import AccessFilter
from skeino.runtime import paging
from skeino.storage import query
from skeino.storage.base import Record, Storage, now_iso

if TYPE_CHECKING:
    from skeino.runtime.runs import RunService


# What LangGraph raises for an update it cannot apply (unknown node, values of the wrong
# shape): the client's mistake, not a server error.
_UPDATE_ERRORS = (InvalidUpdateError, ValueError, KeyError, TypeError)


def new_thread_record(thread_id: str, metadata: Record | None = None) -> Record:
    now = now_iso()
    return {
        "thread_id": thread_id, "created_at": now, "updated_at": now, "state_updated_at": now,
        "metadata": metadata or {}, "status": "idle", "config": {}, "values": None,
        "interrupts": {}, "error": None,
    }


def checkpoint_keys(checkpoint: Record | None) -> dict[str, Any]:
    """The keys addressing a checkpoint, from a bare checkpoint or its config form.

    The official server takes `{"configurable": {...}}`; its keys count as the checkpoint's own.
    """
    if not checkpoint:
        return {}
    if isinstance(checkpoint.get("configurable"), dict):
        checkpoint = {**checkpoint["configurable"], **{k: v for k, v in checkpoint.items() if k != "configurable"}}
    return {k: v for k, v in checkpoint.items() if k in ("checkpoint_id", "checkpoint_ns", "checkpoint_map") and v is not None}


def checkpoint_config(thread_id: str, checkpoint: Record | None = None, checkpoint_id: str | None = None) -> dict[str, Any]:
    """The RunnableConfig addressing a thread's latest state or one checkpoint of it."""
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    conf.update(checkpoint_keys(checkpoint))
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


class ThreadService:
    def __init__(self, storage: Storage, registry: GraphRegistry, runs: "RunService", authz: Authorizer | None = None,
                 default_ttl: float | None = None) -> None:
        self._storage = storage
        self._authz = authz or Authorizer(None)
        self._registry = registry
        self._runs = runs
        self._default_ttl = default_ttl  # minutes, langgraph.json checkpointer.ttl.default_ttl

    async def create(self, body: dict[str, Any]) -> Record:
        thread_id = body.get("thread_id") or str(uuid.uuid4())
        if not is_uuid(thread_id):
            raise Invalid("Invalid thread ID: must be a UUID")
        ttl = thread_ttl_minutes(body["ttl"]) if body.get("ttl") is not None else self._default_ttl
        value = {"thread_id": thread_id, "metadata": body.get("metadata") or {},
                 "if_exists": body.get("if_exists") or "raise", "ttl": body.get("ttl")}
        access = await self._authz("threads", "create", value)  # it may change the value (e.g. add an owner)
        record = new_thread_record(thread_id, value["metadata"])
        created = await self._storage.thread_create(record)
        if created is None:
            if body.get("if_exists") == "do_nothing":
                existing = await self._storage.thread_get(thread_id, access=access)
                if existing is not None:
                    return existing
            raise Conflict(f"Thread with ID {thread_id} already exists")
        if ttl is not None:
            await self._storage.thread_ttl_set(thread_id, strategy="delete", ttl_minutes=ttl)
        if body.get("supersteps"):
            try:
                await self._apply_supersteps(created, body["supersteps"])
            except BaseException:
                await self._storage.thread_delete(thread_id)
                raise
            return await self.get(thread_id)
        return created

    async def _apply_supersteps(self, thread: Record, supersteps: list[dict[str, Any]]) -> None:
        graph_id = thread["metadata"].get("graph_id")
        if not graph_id or graph_id not in self._registry:
            raise Invalid("'supersteps' needs metadata.graph_id naming a loaded graph")
        from langgraph.types import StateUpdate

        graph = await self._registry.get(graph_id)
        steps = [
            [StateUpdate(u.get("values"), u.get("as_node"), u.get("task_id")) for u in step.get("updates", [])]
            for step in supersteps
        ]
        try:
            await graph.abulk_update_state(checkpoint_config(thread["thread_id"]), steps)
        except _UPDATE_ERRORS as exc:
            raise BadRequest(f"cannot apply supersteps: {exc}") from None
        await self._refresh(thread["thread_id"], graph)

    async def get(self, thread_id: str, action: str = "read", value: dict[str, Any] | None = None) -> Record:
        """The thread, if the caller's `action` handler lets them reach it (the filter applies in storage)."""
        access = await self._authz("threads", action, value or {"thread_id": thread_id}) if is_uuid(thread_id) else None
        record = await self._storage.thread_get(thread_id, access=access) if is_uuid(thread_id) else None
        if record is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        return record

    async def visible(self, thread_id: str) -> bool | None:
        """Whether the caller may read the thread; None when no such thread exists at all (yet)."""
        try:
            await self.get(thread_id)
            return True
        except NotFound:
            exists = is_uuid(thread_id) and await self._storage.thread_get(thread_id) is not None
            return False if exists else None

    async def patch(self, thread_id: str, body: dict[str, Any]) -> Record:
        value = {"thread_id": thread_id, "metadata": body.get("metadata") or {}}
        await self.get(thread_id, "update", value)
        ttl = thread_ttl_minutes(body["ttl"]) if body.get("ttl") is not None else None
        updated = await self._storage.thread_update(thread_id, {}, merge_metadata=value["metadata"] or {})
        if updated is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        if ttl is not None:
            # A new TTL counts from now, as the official API's "minutes from now" says.
            await self._storage.thread_ttl_set(thread_id, strategy="delete", ttl_minutes=ttl)
        return updated

    async def ttl(self, thread_id: str) -> Record | None:
        """The thread's `{strategy, ttl_minutes, expires_at}`, or None when it never expires."""
        return await self._storage.thread_ttl_get(thread_id)

    async def delete(self, thread_id: str) -> None:
        await self.get(thread_id, "delete")
        await self._runs.cancel_thread_runs(thread_id, action="interrupt")
        await self._storage.thread_delete(thread_id)

    async def delete_for_assistant(self, assistant_id: str) -> int:
        """Delete every thread an assistant ran on (its metadata names it), with runs and checkpoints."""
        deleted = 0
        metadata = {"assistant_id": assistant_id}
        # Only the threads the caller may see: another user's threads of the assistant stay.
        access = await self._authz("threads", "search", {"metadata": metadata, "values": None, "status": None,
                                                          "limit": 100, "offset": 0})
        while True:
            batch = await self._storage.thread_search(
                ids=None, metadata=metadata, values=None, status=None,
                limit=100, offset=0, sort_by="created_at", sort_order="asc", access=access,
            )
            if not batch:
                return deleted
            for thread in batch:
                await self.delete(thread["thread_id"])
                deleted += 1

    async def _search_value(self, body: dict[str, Any]) -> tuple[dict[str, Any], AccessFilter | None]:
        value = {"metadata": body.get("metadata"), "values": body.get("values"), "status": body.get("status"),
                 "limit": body.get("limit", 10), "offset": body.get("offset", 0), "ids": body.get("ids")}
        return value, await self._authz("threads", "search", value)

    async def search(self, body: dict[str, Any], cursor: str | None = None) -> paging.Page:
        """A page of threads, after `cursor` when given (see runtime/paging.py)."""
        value, access = await self._search_value(body)
        sort_by, sort_order = body.get("sort_by") or "created_at", body.get("sort_order") or "desc"
        page = await paging.fetch(
            lambda limit, after: self._storage.thread_search(
                ids=value["ids"], metadata=value["metadata"], values=value["values"], status=value["status"],
                limit=limit, offset=value["offset"], sort_by=sort_by, sort_order=sort_order, access=access, after=after),
            limit=value["limit"], offset=value["offset"], cursor=cursor,
            key=query.sort_column(sort_by, query.THREAD_SORT), order=sort_order)
        select = body.get("select")
        if select:
            page.rows = [{k: r.get(k) for k in select} for r in page.rows]
        return page

    async def count(self, body: dict[str, Any]) -> int:
        value, access = await self._search_value(body)
        return await self._storage.thread_count(
            ids=value["ids"], metadata=value["metadata"], values=value["values"], status=value["status"], access=access
        )

    async def copy(self, thread_id: str) -> Record:
        source = await self.get(thread_id)
        new_id = str(uuid.uuid4())
        # The copy is a new thread: the create handler sees it (and may stamp its owner), as on the official server.
        value = {"thread_id": new_id, "metadata": {**source["metadata"], "forked_from": thread_id}, "if_exists": "raise"}
        await self._authz("threads", "create", value)
        record = new_thread_record(new_id, value["metadata"])
        record.update(values=source["values"], interrupts=source["interrupts"],
                      status=source["status"] if source["status"] != "busy" else "idle")
        await self._storage.thread_create(record)
        await self._storage.checkpoints_copy_thread(thread_id, new_id)
        return record

    async def prune(self, thread_ids: list[str], strategy: str) -> int:
        if strategy not in ("delete", "keep_latest"):
            raise Invalid("strategy must be 'delete' or 'keep_latest'")
        pruned = 0
        for tid in thread_ids:
            try:
                await self.get(tid, "delete")
            except NotFound:  # missing, or not the caller's: skipped alike
                continue
            if strategy == "delete":
                await self.delete(tid)
            else:
                await self._storage.checkpoints_prune([tid], "keep_latest")
            pruned += 1
        return pruned

    # state ----------------------------------------------------------------------------
    async def _thread_graph(self, thread: Record) -> Any | None:
        graph_id = thread["metadata"].get("graph_id")
        if not graph_id or graph_id not in self._registry:
            return None
        return await self._registry.get(graph_id)

    async def state(self, thread_id: str, *, subgraphs: bool = False, checkpoint: Record | None = None,
                    checkpoint_id: str | None = None) -> Record:
        thread = await self.get(thread_id)
        graph = await self._thread_graph(thread)
        wanted = checkpoint_id or (checkpoint or {}).get("checkpoint_id")
        if graph is None:
            if wanted:
                # No graph ever ran here, so no checkpoint can exist.
                raise NotFound(f"Checkpoint {wanted} not found in thread {thread_id}")
            return empty_state()
        config = checkpoint_config(thread_id, checkpoint, checkpoint_id)
        snapshot = await graph.aget_state(config, subgraphs=subgraphs)
        if snapshot.created_at is None:  # no checkpoint written (yet, or with that id)
            if checkpoint or checkpoint_id:
                raise NotFound(f"Checkpoint {wanted or checkpoint} not found in thread {thread_id}")
            return empty_state()
        return snapshot_to_state(snapshot)

    async def update_state(self, thread_id: str, body: dict[str, Any]) -> Record:
        thread = await self.get(thread_id, "update")
        graph = await self._thread_graph(thread)
        if graph is None:
            raise BadRequest(f"Thread {thread_id} has no graph yet: run an assistant on it before updating its state")
        config = checkpoint_config(thread_id, body.get("checkpoint"), body.get("checkpoint_id"))
        wanted = config["configurable"].get("checkpoint_id")
        try:
            if wanted and (await graph.aget_state(config)).created_at is None:
                # LangGraph would silently start a fresh history from an unknown checkpoint id.
                raise NotFound(f"Checkpoint {wanted} not found in thread {thread_id}")
            new_config = await graph.aupdate_state(config, body.get("values"), as_node=body.get("as_node"))
        except _UPDATE_ERRORS as exc:
            raise BadRequest(f"cannot update state: {exc}") from None
        await self._refresh(thread_id, graph)
        conf = new_config["configurable"]
        return {"checkpoint": {k: conf.get(k) for k in ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map") if k in conf}}

    async def refresh(self, thread_id: str) -> None:
        """Mirror the newest checkpoint into the thread record after checkpoints were removed."""
        thread = await self._storage.thread_get(thread_id)
        graph = await self._thread_graph(thread) if thread is not None else None
        if graph is not None:
            await self._refresh(thread_id, graph)

    async def _refresh(self, thread_id: str, graph: Any) -> None:
        """Mirror the newest checkpoint into the thread record (values, interrupts, status)."""
        snapshot = await graph.aget_state(checkpoint_config(thread_id))
        pending = thread_interrupts(snapshot)
        changes: Record = {
            "values": serde.to_jsonable(snapshot.values), "interrupts": pending,
            "state_updated_at": now_iso(),
        }
        current = await self._storage.thread_get(thread_id)
        if current and current["status"] != "busy":
            changes["status"] = "interrupted" if pending else "idle"
        await self._storage.thread_update(thread_id, changes)

    @staticmethod
    async def _before(graph: Any, thread_id: str, before: str | Record) -> dict[str, Any]:
        """The config of the checkpoint `before` names: an id, a checkpoint, or a config with `configurable`.

        The official server takes the config form ({"configurable": {...}}); the SDK's type
        hints the bare checkpoint; both are accepted, as is a bare id.
        """
        if isinstance(before, str):
            before = {"checkpoint_id": before}
        elif isinstance(before.get("configurable"), dict):
            before = before["configurable"]
        checkpoint_id = before.get("checkpoint_id")
        if not checkpoint_id:
            raise Invalid("'before' must name a checkpoint_id")
        config = checkpoint_config(thread_id, before)
        # LangGraph compares ids as text: an unknown id would silently select an arbitrary range.
        if await graph.checkpointer.aget_tuple(config) is None:
            raise NotFound(f"Checkpoint {checkpoint_id} not found in thread {thread_id}")
        return config

    async def history(self, thread_id: str, *, limit: int = 10, before: str | Record | None = None,
                      metadata: Record | None = None, checkpoint: Record | None = None) -> list[Record]:
        thread = await self.get(thread_id)
        graph = await self._thread_graph(thread)
        if graph is None:
            return []
        before_config = await self._before(graph, thread_id, before) if before else None
        states = []
        async for snapshot in graph.aget_state_history(
            checkpoint_config(thread_id, checkpoint), limit=limit, before=before_config, filter=metadata or None
        ):
            states.append(snapshot_to_state(snapshot))
        return states
