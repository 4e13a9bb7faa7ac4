"""Checkpoint maintenance LangGraph's Postgres saver lacks (mixed into PostgresStorage).

The saver keeps channel values in checkpoint_blobs, keyed by channel and version and
shared by every checkpoint naming that version; a blob goes once no checkpoint names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from psycopg import AsyncConnection

if TYPE_CHECKING:
    from skeino.storage.postgres.backend import PostgresStorage

_ORPHAN_BLOBS = (
    "DELETE FROM checkpoint_blobs b WHERE b.thread_id = %s AND NOT EXISTS ("
    "SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns "
    "AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)"
)
_NOT_LATEST = (
    "(checkpoint_ns, checkpoint_id) NOT IN (SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints "
    "WHERE thread_id = %s GROUP BY checkpoint_ns)"
)


class CheckpointTables:
    async def checkpoints_delete_for_run(self: "PostgresStorage", thread_id: str, run_id: str) -> None:
        async with self._tx() as conn:
            await self._delete_run_checkpoints(conn, thread_id, run_id)

    async def _delete_run_checkpoints(self: "PostgresStorage", conn: AsyncConnection, thread_id: str, run_id: str) -> None:
        """Delete the checkpoints a run wrote (with their writes and orphaned blobs) in the caller's transaction."""
        doomed = await self._all("DELETE FROM checkpoints WHERE thread_id = %s AND metadata ->> 'run_id' = %s "
                                 "RETURNING checkpoint_ns, checkpoint_id", (thread_id, run_id), conn)
        for row in doomed:
            await self._exec("DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = %s "
                             "AND checkpoint_id = %s", (thread_id, row["checkpoint_ns"], row["checkpoint_id"]), conn)
        if doomed:
            await self._exec(_ORPHAN_BLOBS, (thread_id,), conn)

    async def checkpoints_copy_thread(self: "PostgresStorage", source_thread_id: str, target_thread_id: str) -> None:
        async with self._tx() as conn:
            for table, columns in (
                ("checkpoints", "checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"),
                ("checkpoint_blobs", "checkpoint_ns, channel, version, type, blob"),
                ("checkpoint_writes", "checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob"),
            ):
                await self._exec(f"INSERT INTO {table} (thread_id, {columns}) SELECT %s, {columns} FROM {table} "
                                 "WHERE thread_id = %s ON CONFLICT DO NOTHING", (target_thread_id, source_thread_id), conn)

    async def checkpoints_prune(self: "PostgresStorage", thread_ids: Sequence[str], strategy: str) -> None:
        async with self._tx() as conn:
            for tid in thread_ids:
                if strategy == "delete":
                    await self._delete_thread(conn, tid)
                    continue
                # keep_latest: the newest checkpoint of each namespace, its writes and its blobs.
                await self._exec(f"DELETE FROM checkpoints WHERE thread_id = %s AND {_NOT_LATEST}", (tid, tid), conn)
                await self._exec(f"DELETE FROM checkpoint_writes WHERE thread_id = %s AND {_NOT_LATEST}", (tid, tid), conn)
                await self._exec(_ORPHAN_BLOBS, (tid,), conn)
                # The kept checkpoint no longer has a parent to point at.
                await self._exec("UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = %s", (tid,), conn)

    async def _delete_thread(self: "PostgresStorage", conn: AsyncConnection, thread_id: str) -> None:
        for table in ("checkpoints", "checkpoint_writes", "checkpoint_blobs"):
            await self._exec(f"DELETE FROM {table} WHERE thread_id = %s", (thread_id,), conn)

    async def checkpoints_delete_thread(self: "PostgresStorage", thread_id: str) -> None:
        async with self._tx() as conn:
            await self._delete_thread(conn, thread_id)
