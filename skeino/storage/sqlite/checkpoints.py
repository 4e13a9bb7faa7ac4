"""LangGraph's SQLite checkpointer on the storage thread, and skeino's own checkpoint edits."""

from __future__ import annotations

import inspect
import sqlite3
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, Sequence

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver

from skeino.storage.sqlite.common import _threaded
from skeino.storage.sqlite.connection import StorageThread

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage


class ThreadedSqliteSaver(BaseCheckpointSaver[str]):
    """LangGraph's SqliteSaver driven from async code, one hop per operation."""

    def __init__(self, db: StorageThread, saver: SqliteSaver) -> None:
        super().__init__(serde=saver.serde)
        self._db = db
        self._saver = saver

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self._saver.get_next_version(current, channel)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._db.run(self._saver.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        items = await self._db.run(lambda: list(self._saver.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await self._db.run(self._saver.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await self._db.run(self._saver.put_writes, config, writes, task_id, task_path)

    # LangGraph inspects aput_writes' signature at the start of every run (does it take
    # task_path?); a stored signature makes that 10x cheaper (~80 µs less CPU per run).
    aput_writes.__signature__ = inspect.signature(aput_writes)  # type: ignore[attr-defined]

    async def adelete_thread(self, thread_id: str) -> None:
        await self._db.run(self._saver.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config: RunnableConfig, channels: Any) -> Any:
        return await self._db.run(self._saver.get_delta_channel_history, config=config, channels=channels)

    # Sync access (e.g. graph.get_state from a worker thread) goes through the same thread.
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._db.call(self._saver.get_tuple, config)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        yield from self._db.call(lambda: list(self._saver.list(config, filter=filter, before=before, limit=limit)))

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        return self._db.call(self._saver.put, config, checkpoint, metadata, new_versions)

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        self._db.call(self._saver.put_writes, config, writes, task_id, task_path)


class CheckpointTables:
    """Checkpoint edits skeino makes beside LangGraph's saver (mixed into SqliteStorage)."""

    @_threaded
    def checkpoints_delete_for_run(self: "SqliteStorage", thread_id: str, run_id: str) -> None:
        with self._tx() as conn:
            self._delete_run_checkpoints(conn, thread_id, run_id)

    def _delete_run_checkpoints(self: "SqliteStorage", conn: sqlite3.Connection, thread_id: str, run_id: str) -> None:
        doomed = list(self._all(
            "SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id = ? "
            "AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
            (thread_id, run_id),
        ))
        for ns, cid in doomed:
            conn.execute(
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?", (thread_id, ns, cid)
            )
            conn.execute(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?", (thread_id, ns, cid)
            )

    @_threaded
    def checkpoints_copy_thread(self: "SqliteStorage", source_thread_id: str, target_thread_id: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata) "
                "SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints WHERE thread_id = ?",
                (target_thread_id, source_thread_id),
            )
            conn.execute(
                "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value) "
                "SELECT ?, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
                (target_thread_id, source_thread_id),
            )

    @_threaded
    def checkpoints_prune(self: "SqliteStorage", thread_ids: Sequence[str], strategy: str) -> None:
        with self._tx() as conn:
            for tid in thread_ids:
                if strategy == "delete":
                    conn.execute("DELETE FROM checkpoints WHERE thread_id = ?", (tid,))
                    conn.execute("DELETE FROM writes WHERE thread_id = ?", (tid,))
                    continue
                # keep_latest: the newest checkpoint of each namespace and its pending writes.
                keep = "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns"
                conn.execute(
                    f"DELETE FROM checkpoints WHERE thread_id = ? AND (checkpoint_ns, checkpoint_id) NOT IN ({keep})", (tid, tid)
                )
                conn.execute(
                    f"DELETE FROM writes WHERE thread_id = ? AND (checkpoint_ns, checkpoint_id) NOT IN ({keep})", (tid, tid)
                )
                # The kept checkpoint no longer has a parent to point at.
                conn.execute("UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?", (tid,))

    @_threaded
    def checkpoints_delete_thread(self: "SqliteStorage", thread_id: str) -> None:
        self._saver.delete_thread(thread_id)
