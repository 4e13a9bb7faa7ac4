"""SQLite backend: skeino's tables on aiosqlite, LangGraph's saver and store on the same file."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import aiosqlite
import orjson
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.sqlite.aio import AsyncSqliteStore

from skeino.storage.base import RUN_INFLIGHT, Record, SortOrder, json_contains, now_iso
from skeino.storage.sqlite.migrations import migrate

_ASSISTANT_COLS = ("assistant_id", "graph_id", "config", "context", "metadata", "name", "description", "version", "created_at", "updated_at")
_THREAD_COLS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status", "config", "values", "interrupts", "error")
_RUN_COLS = ("run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata", "kwargs", "multitask_strategy", "run_at")
_JSON_COLS = {"config", "context", "metadata", "values", "interrupts", "error", "kwargs"}

_ASSISTANT_SORT = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}
_THREAD_SORT = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}


def _enc(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _dec(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def _row(cols: Sequence[str], row: Sequence[Any]) -> Record:
    return {c: (_dec(v) if c in _JSON_COLS else v) for c, v in zip(cols, row)}


def _sql_contains(doc: str | None, query: str) -> int:
    return int(json_contains(orjson.loads(doc) if doc else None, orjson.loads(query)))


def _q(col: str) -> str:
    return f'"{col}"'


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    # WAL lets readers proceed while a run writes; NORMAL sync is durable across process
    # crashes (only an OS crash can lose the newest commits).
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA busy_timeout=10000")
    return conn


class SqliteStorage:
    """The embedded default backend."""

    def __init__(self, path: str | Path, *, store_config: dict[str, Any] | None = None) -> None:
        self.path = str(path)
        self._store_config = store_config or {}
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._aux: list[aiosqlite.Connection] = []
        self.checkpointer: AsyncSqliteSaver
        self.store: AsyncSqliteStore

    # lifecycle ----------------------------------------------------------------
    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = await _connect(self.path)
        await self._conn.create_function("json_contains", 2, _sql_contains, deterministic=True)
        await migrate(self._conn)
        cp_conn = await _connect(self.path)
        store_conn = await _connect(self.path)
        self._aux = [cp_conn, store_conn]
        self.checkpointer = AsyncSqliteSaver(cp_conn)
        # Items PUT with a ttl must expire even when langgraph.json sets no store.ttl,
        # so a sweeper always runs (every minute unless configured).
        ttl = {"sweep_interval_minutes": 1, **(self._store_config.get("ttl") or {})}
        self.store = AsyncSqliteStore(store_conn, ttl=ttl)  # type: ignore[arg-type]
        # One asyncio lock for every connection's writes: SQLite then never sees two
        # writers at once, so nobody sleeps in its busy handler (coarse 1-100 ms naps
        # that capped throughput under concurrent runs).
        self.checkpointer.lock = self._lock
        self.store.lock = self._lock
        await self.checkpointer.setup()
        await self.store.setup()
        await self.store.start_ttl_sweeper()

    async def close(self) -> None:
        if getattr(self, "store", None) is not None:
            await self.store.stop_ttl_sweeper(timeout=5)
        for conn in [*self._aux, self._conn]:
            if conn is not None:
                try:
                    await conn.close()
                except Exception:  # closing is best-effort at shutdown
                    pass
        self._aux = []
        self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        assert self._conn is not None, "storage is not open"
        return self._conn

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        # One writer transaction at a time on this connection; BEGIN IMMEDIATE takes the
        # file's write lock up front so check-then-insert sequences are atomic.
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

    # Reads run and finish in one call on the connection's thread, so no statement is
    # left open between awaits: an open statement would pin an old snapshot and make a
    # transaction started meanwhile on this connection fail with "database is locked".
    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.conn.execute_fetchall(sql, params)
        return rows[0] if rows else None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.conn.execute_fetchall(sql, params))

    # assistants ---------------------------------------------------------------
    async def assistant_create(self, record: Record) -> Record | None:
        rec = {**record, "version": 1}
        async with self._tx() as conn:
            if await self._one("SELECT 1 FROM assistants WHERE assistant_id = ?", (rec["assistant_id"],)):
                return None
            await conn.execute(
                f"INSERT INTO assistants ({', '.join(_ASSISTANT_COLS)}) VALUES ({', '.join('?' * len(_ASSISTANT_COLS))})",
                [(_enc(rec[c]) if c in _JSON_COLS else rec[c]) for c in _ASSISTANT_COLS],
            )
            await self._insert_version(conn, rec)
        return rec

    async def _insert_version(self, conn: aiosqlite.Connection, rec: Record) -> None:
        await conn.execute(
            "INSERT INTO assistant_versions (assistant_id, version, graph_id, config, context, metadata, name, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["assistant_id"], rec["version"], rec["graph_id"], _enc(rec["config"]), _enc(rec["context"]),
             _enc(rec["metadata"]), rec["name"], rec["description"], rec["updated_at"]),
        )

    async def assistant_get(self, assistant_id: str) -> Record | None:
        row = await self._one(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", (assistant_id,))
        return _row(_ASSISTANT_COLS, row) if row else None

    async def assistant_update(self, assistant_id: str, changes: Record) -> Record | None:
        async with self._tx() as conn:
            row = await self._one(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", (assistant_id,))
            if not row:
                return None
            current = _row(_ASSISTANT_COLS, row)
            max_version = (await self._one("SELECT MAX(version) FROM assistant_versions WHERE assistant_id = ?", (assistant_id,)))[0] or current["version"]
            rec = {**current, **changes, "version": max_version + 1, "updated_at": now_iso()}
            await self._write_assistant(conn, rec)
            await self._insert_version(conn, rec)
        return rec

    async def _write_assistant(self, conn: aiosqlite.Connection, rec: Record) -> None:
        await conn.execute(
            "UPDATE assistants SET graph_id=?, config=?, context=?, metadata=?, name=?, description=?, version=?, updated_at=? WHERE assistant_id=?",
            (rec["graph_id"], _enc(rec["config"]), _enc(rec["context"]), _enc(rec["metadata"]), rec["name"],
             rec["description"], rec["version"], rec["updated_at"], rec["assistant_id"]),
        )

    async def assistant_delete(self, assistant_id: str) -> bool:
        async with self._tx() as conn:
            cur = await conn.execute("DELETE FROM assistants WHERE assistant_id = ?", (assistant_id,))
            await conn.execute("DELETE FROM assistant_versions WHERE assistant_id = ?", (assistant_id,))
            return cur.rowcount > 0

    @staticmethod
    def _assistant_where(graph_id: str | None, name: str | None, metadata: Record | None) -> tuple[str, list[Any]]:
        where, params = [], []
        if graph_id:
            where.append("graph_id = ?")
            params.append(graph_id)
        if name:
            where.append("name LIKE ?")
            params.append(f"%{name}%")
        if metadata:
            where.append("json_contains(metadata, ?)")
            params.append(_enc(metadata))
        return (" WHERE " + " AND ".join(where)) if where else "", params

    async def assistant_search(self, *, graph_id: str | None, name: str | None, metadata: Record | None,
                               limit: int, offset: int, sort_by: str, sort_order: SortOrder) -> list[Record]:
        where, params = self._assistant_where(graph_id, name, metadata)
        sort_by = sort_by if sort_by in _ASSISTANT_SORT else "created_at"
        order = "ASC" if sort_order == "asc" else "DESC"
        rows = await self._all(
            f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants{where} ORDER BY {sort_by} {order}, rowid {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row(_ASSISTANT_COLS, r) for r in rows]

    async def assistant_count(self, *, graph_id: str | None, name: str | None, metadata: Record | None) -> int:
        where, params = self._assistant_where(graph_id, name, metadata)
        return (await self._one(f"SELECT COUNT(*) FROM assistants{where}", params))[0]

    async def assistant_versions(self, assistant_id: str, *, metadata: Record | None, limit: int, offset: int) -> list[Record]:
        cols = ("assistant_id", "version", "graph_id", "config", "context", "metadata", "name", "description", "created_at")
        where, params = "assistant_id = ?", [assistant_id]
        if metadata:
            where += " AND json_contains(metadata, ?)"
            params.append(_enc(metadata))
        rows = await self._all(
            f"SELECT {', '.join(cols)} FROM assistant_versions WHERE {where} ORDER BY version DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row(cols, r) for r in rows]

    async def assistant_set_latest(self, assistant_id: str, version: int) -> Record | None:
        cols = ("graph_id", "config", "context", "metadata", "name", "description")
        async with self._tx() as conn:
            row = await self._one(
                f"SELECT {', '.join(cols)} FROM assistant_versions WHERE assistant_id = ? AND version = ?", (assistant_id, version)
            )
            if not row:
                return None
            cur_row = await self._one(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", (assistant_id,))
            if not cur_row:
                return None
            rec = {**_row(_ASSISTANT_COLS, cur_row), **_row(cols, row), "version": version, "updated_at": now_iso()}
            await self._write_assistant(conn, rec)
        return rec

    # threads --------------------------------------------------------------------
    async def thread_create(self, record: Record) -> Record | None:
        async with self._tx() as conn:
            if await self._one("SELECT 1 FROM threads WHERE thread_id = ?", (record["thread_id"],)):
                return None
            await conn.execute(
                f"INSERT INTO threads ({', '.join(map(_q, _THREAD_COLS))}) VALUES ({', '.join('?' * len(_THREAD_COLS))})",
                [(_enc(record.get(c)) if c in _JSON_COLS else record.get(c)) for c in _THREAD_COLS],
            )
        return record

    async def thread_get(self, thread_id: str) -> Record | None:
        row = await self._one(f"SELECT {', '.join(map(_q, _THREAD_COLS))} FROM threads WHERE thread_id = ?", (thread_id,))
        return _row(_THREAD_COLS, row) if row else None

    async def thread_update(self, thread_id: str, changes: Record, *, merge_metadata: Record | None = None) -> Record | None:
        async with self._tx() as conn:
            row = await self._one(f"SELECT {', '.join(map(_q, _THREAD_COLS))} FROM threads WHERE thread_id = ?", (thread_id,))
            if not row:
                return None
            rec = _row(_THREAD_COLS, row)
            rec.update(changes)
            if merge_metadata:
                rec["metadata"] = {**(rec["metadata"] or {}), **merge_metadata}
            rec.setdefault("updated_at", now_iso())
            if "updated_at" not in changes:
                rec["updated_at"] = now_iso()
            cols = [c for c in _THREAD_COLS if c != "thread_id"]
            await conn.execute(
                f"UPDATE threads SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE thread_id = ?",
                [*((_enc(rec[c]) if c in _JSON_COLS else rec[c]) for c in cols), thread_id],
            )
        return rec

    async def thread_delete(self, thread_id: str) -> bool:
        async with self._tx() as conn:
            cur = await conn.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))
            await conn.execute(
                "DELETE FROM stream_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = ?)", (thread_id,)
            )
            await conn.execute("DELETE FROM runs WHERE thread_id = ?", (thread_id,))
            return cur.rowcount > 0

    @staticmethod
    def _thread_where(ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                      status: str | None) -> tuple[str, list[Any]]:
        where, params = [], []
        if ids:
            where.append(f"thread_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        if metadata:
            where.append("json_contains(metadata, ?)")
            params.append(_enc(metadata))
        if values:
            where.append('json_contains("values", ?)')
            params.append(_enc(values))
        if status:
            where.append("status = ?")
            params.append(status)
        return (" WHERE " + " AND ".join(where)) if where else "", params

    async def thread_search(self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                            status: str | None, limit: int, offset: int, sort_by: str, sort_order: SortOrder) -> list[Record]:
        where, params = self._thread_where(ids, metadata, values, status)
        sort_by = sort_by if sort_by in _THREAD_SORT else "created_at"
        order = "ASC" if sort_order == "asc" else "DESC"
        rows = await self._all(
            f"SELECT {', '.join(map(_q, _THREAD_COLS))} FROM threads{where} ORDER BY {sort_by} {order}, rowid {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row(_THREAD_COLS, r) for r in rows]

    async def thread_count(self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                           status: str | None) -> int:
        where, params = self._thread_where(ids, metadata, values, status)
        return (await self._one(f"SELECT COUNT(*) FROM threads{where}", params))[0]

    # runs -------------------------------------------------------------------------
    async def run_create(self, record: Record, *, reject_if_busy: bool) -> Record | None:
        async with self._tx() as conn:
            if reject_if_busy:
                if await self._one(
                    "SELECT 1 FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') LIMIT 1",
                    (record["thread_id"],),
                ):
                        return None
            await conn.execute(
                f"INSERT INTO runs ({', '.join(_RUN_COLS)}) VALUES ({', '.join('?' * len(_RUN_COLS))})",
                [(_enc(record.get(c)) if c in _JSON_COLS else record.get(c)) for c in _RUN_COLS],
            )
            await conn.execute(
                "UPDATE threads SET status = 'busy', updated_at = ? WHERE thread_id = ?",
                (record["created_at"], record["thread_id"]),
            )
        return record

    async def run_transition(self, run_id: str, from_status: str, to_status: str) -> bool:
        async with self._lock:
            cur = await self.conn.execute(
                "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ? AND status = ?",
                (to_status, now_iso(), run_id, from_status),
            )
            return cur.rowcount > 0

    async def run_start(self, run_id: str, thread_id: str, thread_metadata: Record) -> bool:
        now = now_iso()
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE runs SET status = 'running', updated_at = ? WHERE run_id = ? AND status = 'pending'", (now, run_id)
            )
            if cur.rowcount == 0:
                return False
            # The thread belongs to the graph that runs on it now (state is read through it).
            await conn.execute(
                "UPDATE threads SET metadata = json_patch(metadata, ?), updated_at = ? WHERE thread_id = ?",
                (_enc(thread_metadata), now, thread_id),
            )
            return True

    async def run_finish(self, run_id: str, thread_id: str, status: str, thread_changes: Record) -> None:
        now = now_iso()
        async with self._tx() as conn:
            await conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, now, run_id))
            busy = await self._one(
                "SELECT 1 FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') LIMIT 1", (thread_id,)
            ) is not None
            changes = {**thread_changes, "updated_at": now}
            if busy:
                changes["status"] = "busy"
            cols = list(changes)
            await conn.execute(
                f"UPDATE threads SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE thread_id = ?",
                [*((_enc(changes[c]) if c in _JSON_COLS else changes[c]) for c in cols), thread_id],
            )

    async def run_get(self, run_id: str, thread_id: str | None = None) -> Record | None:
        sql = f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE run_id = ?"
        params: list[Any] = [run_id]
        if thread_id is not None:
            sql += " AND thread_id = ?"
            params.append(thread_id)
        row = await self._one(sql, params)
        return _row(_RUN_COLS, row) if row else None

    async def run_list(self, thread_id: str, *, limit: int, offset: int, status: str | None) -> list[Record]:
        sql = f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE thread_id = ?"
        params: list[Any] = [thread_id]
        if status:
            sql += " AND status = ?"
            params.append(status)
        rows = await self._all(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_row(_RUN_COLS, r) for r in rows]

    async def run_update(self, run_id: str, changes: Record) -> Record | None:
        changes = {**changes, "updated_at": changes.get("updated_at") or now_iso()}
        cols = list(changes)
        async with self._lock:
            cur = await self.conn.execute(
                f"UPDATE runs SET {', '.join(f'{c} = ?' for c in cols)} WHERE run_id = ?",
                [*((_enc(changes[c]) if c in _JSON_COLS else changes[c]) for c in cols), run_id],
            )
            if cur.rowcount == 0:
                return None
        return await self.run_get(run_id)

    async def run_delete(self, run_id: str) -> bool:
        async with self._tx() as conn:
            cur = await conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            await conn.execute("DELETE FROM stream_events WHERE run_id = ?", (run_id,))
            return cur.rowcount > 0

    async def runs_inflight(self, thread_id: str) -> list[Record]:
        rows = await self._all(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') ORDER BY seq",
            (thread_id,),
        )
        return [_row(_RUN_COLS, r) for r in rows]

    async def run_next_pending(self, thread_id: str) -> Record | None:
        row = await self._one(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE thread_id = ? AND status = 'pending' ORDER BY seq LIMIT 1",
            (thread_id,),
        )
        return _row(_RUN_COLS, row) if row else None

    async def runs_with_status(self, statuses: Sequence[str]) -> list[Record]:
        rows = await self._all(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE status IN ({', '.join('?' * len(statuses))}) ORDER BY seq",
            list(statuses),
        )
        return [_row(_RUN_COLS, r) for r in rows]

    async def runs_by_ids(self, run_ids: Sequence[str]) -> list[Record]:
        if not run_ids:
            return []
        rows = await self._all(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE run_id IN ({', '.join('?' * len(run_ids))}) ORDER BY seq",
            list(run_ids),
        )
        return [_row(_RUN_COLS, r) for r in rows]

    # stream logs --------------------------------------------------------------------
    async def stream_append(self, run_id: str, events: Sequence[tuple[int, str, bytes]]) -> None:
        if not events:
            return
        async with self._lock:
            await self.conn.executemany(
                "INSERT OR IGNORE INTO stream_events (run_id, seq, event, data) VALUES (?, ?, ?, ?)",
                [(run_id, seq, event, data) for seq, event, data in events],
            )

    async def stream_read(self, run_id: str, after: int) -> list[tuple[int, str, bytes]]:
        rows = await self._all(
            "SELECT seq, event, data FROM stream_events WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after)
        )
        return [(int(s), e, bytes(d)) for s, e, d in rows]

    # checkpoints ----------------------------------------------------------------------
    async def checkpoints_delete_for_run(self, thread_id: str, run_id: str) -> None:
        async with self._tx() as conn:
            doomed = list(await self._all(
                "SELECT checkpoint_ns, checkpoint_id FROM checkpoints WHERE thread_id = ? "
                "AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?",
                (thread_id, run_id),
            ))
            for ns, cid in doomed:
                await conn.execute(
                    "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?", (thread_id, ns, cid)
                )
                await conn.execute(
                    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?", (thread_id, ns, cid)
                )

    async def checkpoints_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata) "
                "SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints WHERE thread_id = ?",
                (target_thread_id, source_thread_id),
            )
            await conn.execute(
                "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value) "
                "SELECT ?, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
                (target_thread_id, source_thread_id),
            )

    async def checkpoints_prune(self, thread_ids: Sequence[str], strategy: str) -> None:
        async with self._tx() as conn:
            for tid in thread_ids:
                if strategy == "delete":
                    await conn.execute("DELETE FROM checkpoints WHERE thread_id = ?", (tid,))
                    await conn.execute("DELETE FROM writes WHERE thread_id = ?", (tid,))
                    continue
                # keep_latest: the newest checkpoint of each namespace and its pending writes.
                keep = "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns"
                await conn.execute(
                    f"DELETE FROM checkpoints WHERE thread_id = ? AND (checkpoint_ns, checkpoint_id) NOT IN ({keep})", (tid, tid)
                )
                await conn.execute(
                    f"DELETE FROM writes WHERE thread_id = ? AND (checkpoint_ns, checkpoint_id) NOT IN ({keep})", (tid, tid)
                )
                # The kept checkpoint no longer has a parent to point at.
                await conn.execute("UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?", (tid,))

    async def checkpoints_delete_thread(self, thread_id: str) -> None:
        await self.checkpointer.adelete_thread(thread_id)

