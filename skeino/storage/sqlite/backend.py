"""SQLite backend: skeino's tables and LangGraph's checkpoints on one connection, one thread.

Every storage call runs whole on a single worker thread that owns the connection: a
transaction (BEGIN ... COMMIT) costs one hop from the event loop instead of one per
statement, and writers never contend inside SQLite (whose busy handler naps 1-100 ms).
LangGraph's store keeps its own aiosqlite connection: it is used rarely, and its vector
search embeds queries on the event loop, which must not hold up the storage thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sqlite3
import time
import concurrent.futures
import queue
import threading
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, AsyncIterator, Callable, Iterator, Sequence, TypeVar

import aiosqlite
import orjson
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata, CheckpointTuple
from langgraph.checkpoint.sqlite import SqliteSaver

from skeino.storage.access import AccessFilter, matches_json
from skeino.storage import query
from skeino.storage.base import QueueFull, QueueLimits, Record, SortOrder, json_contains, iso_from_epoch, now_iso
from skeino.storage.query import ASSISTANT_COLS, JSON_COLS, RUN_COLS, THREAD_COLS
from skeino.storage.sqlite.driver import SqliteStore, setup_saver, sqlite_api
from skeino.storage.sqlite.common import DIALECT, _dec, _enc, _threaded
from skeino.storage.sqlite.crons import CronTables
from skeino.storage.sqlite.idempotency import IdempotencyTables
from skeino.storage.sqlite.migrations import migrate

_ASSISTANT_COLS, _THREAD_COLS, _RUN_COLS, _JSON_COLS = ASSISTANT_COLS, THREAD_COLS, RUN_COLS, JSON_COLS

T = TypeVar("T")


def _row(cols: Sequence[str], row: Sequence[Any]) -> Record:
    return {c: (_dec(v) if c in _JSON_COLS else v) for c, v in zip(cols, row)}


def _sql_contains(doc: str | None, query: str) -> int:
    return int(json_contains(orjson.loads(doc) if doc else None, orjson.loads(query)))


def _sql_access(doc: str | None, filter_json: str) -> int:
    return int(matches_json(doc, filter_json))


# A run is visible when its thread is: the filter is over the thread's metadata, the thread
# looked up by its primary key (see query.Where.thread_access).
_RUN_ACCESS = "EXISTS (SELECT 1 FROM threads t WHERE t.thread_id = runs.thread_id AND access_match(t.metadata, ?))"


def _runs_sql(where: str, params: Sequence[Any], access: AccessFilter | None) -> tuple[str, list[Any]]:
    """A select of run rows matching `where`, narrowed to the runs `access` lets the caller see."""
    sql = f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE {where}"
    if access is None:
        return sql, list(params)
    return f"{sql} AND {_RUN_ACCESS}", [*params, access.json]


_q = query.q


_PRAGMAS = (
    # WAL lets readers proceed while a run writes; NORMAL sync is durable across process
    # crashes (only an OS crash can lose the newest commits).
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class StorageThread:
    """One sqlite3 connection and the only thread that ever touches it.

    A plain queue and call_soon_threadsafe rather than an executor: every storage call
    pays this hop, and the executor's future chaining cost more than the SQL itself.
    Calls queued together are served as one batch, answered with one wake-up of the
    event loop: under load the thread crossings, not the SQL, were the cost.
    """

    def __init__(self, path: str, api: ModuleType = sqlite3) -> None:
        self.path = path
        self.api = api
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any] | concurrent.futures.Future[Any]] | None]
        self._queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.conn: sqlite3.Connection | None = None

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Take everything already queued: one wake-up of this thread and one of the
            # event loop serve the whole batch instead of one each.
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
            for item in batch:
                if item is None:
                    self._deliver(settled)
                    return
                fn, target = item
                try:
                    result, error = fn(), None
                except BaseException as exc:  # handed to the caller, who re-raises it
                    result, error = None, exc
                if isinstance(target, asyncio.Future):
                    settled.setdefault(target.get_loop(), []).append((target, result, error))
                elif error is not None:
                    target.set_exception(error)
                else:
                    target.set_result(result)
            self._deliver(settled)

    @staticmethod
    def _deliver(settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]]) -> None:
        for loop, results in settled.items():
            try:
                loop.call_soon_threadsafe(_settle_all, results)
            except RuntimeError:  # the loop closed while we worked: nobody is waiting
                pass

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn on the storage thread and await its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((functools.partial(fn, *args, **kwargs), future))
        return await future

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn on the storage thread from another thread, blocking until it is done."""
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((functools.partial(fn, *args, **kwargs), result))
        return result.result()

    async def open(self) -> sqlite3.Connection:
        self._thread = threading.Thread(target=self._serve, name="skeino-sqlite", daemon=True)
        self._thread.start()

        def connect() -> sqlite3.Connection:
            conn = self.api.connect(self.path, check_same_thread=False, isolation_level=None)
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            conn.create_function("json_contains", 2, _sql_contains, deterministic=True)
            conn.create_function("access_match", 2, _sql_access, deterministic=True)
            return conn

        self.conn = await self.run(connect)
        return self.conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.run(self.conn.close)
            self.conn = None
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 5)
            self._thread = None


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


class SqliteStorage(CronTables, IdempotencyTables):
    """The embedded default backend."""

    def __init__(self, path: str | Path, *, store_config: dict[str, Any] | None = None,
                 index: dict[str, Any] | None = None) -> None:
        """`index` is the store's vector index (dims, embed, fields), embeddings already loaded."""
        self.path = str(path)
        self._store_config = store_config or {}
        self._index = index
        self._api = sqlite_api(extensions=index is not None)
        self._db = StorageThread(self.path, self._api)
        self._store_conn: aiosqlite.Connection | None = None
        self._saver: SqliteSaver
        self.checkpointer: ThreadedSqliteSaver
        self.store: SqliteStore

    # lifecycle ----------------------------------------------------------------
    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = await self._db.open()
        await self._db.run(migrate, conn)
        self._saver = SqliteSaver(conn)
        await self._db.run(setup_saver, self._saver)
        self.checkpointer = ThreadedSqliteSaver(self._db, self._saver)
        api, path = self._api, self.path
        self._store_conn = await aiosqlite.Connection(lambda: api.connect(path, isolation_level=None), 64)
        for pragma in _PRAGMAS:
            await self._store_conn.execute(pragma)
        # Items PUT with a ttl must expire even when langgraph.json sets no store.ttl,
        # so a sweeper always runs (every minute unless configured). Reads refresh TTLs unless
        # told not to, as the official server's default is (LangGraph's SQLite store's is not).
        ttl = {"sweep_interval_minutes": 1, "refresh_on_read": True, **(self._store_config.get("ttl") or {})}
        self.store = SqliteStore(self._store_conn, ttl=ttl, index=self._index)  # type: ignore[arg-type]
        await self.store.setup()
        await self.store.start_ttl_sweeper()

    async def serve_alone(self) -> bool:
        # One process per file is the SQLite deployment (docs/deployment.md); nothing to take.
        return True

    async def close(self) -> None:
        if getattr(self, "store", None) is not None:
            await self.store.stop_ttl_sweeper(timeout=5)
        if self._store_conn is not None:
            try:
                await self._store_conn.close()
            except Exception:  # closing is best-effort at shutdown
                pass
            self._store_conn = None
        await self._db.close()

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._db.conn is not None, "storage is not open"
        return self._db.conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the file's write lock up front so check-then-write
        # sequences are atomic (the store's connection is the only other writer).
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def _page(self, table: str, columns: Sequence[str], where: query.Where, sort_by: str | None,
              sortable: frozenset[str], sort_order: SortOrder, limit: int, offset: int) -> list[Record]:
        sql, params = query.page(DIALECT, table, columns, where, sort_by, sortable, sort_order, limit, offset)
        return [_row(columns, r) for r in self._all(sql, params)]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    # assistants ---------------------------------------------------------------
    @_threaded
    def assistant_create(self, record: Record) -> Record | None:
        rec = {**record, "version": 1}
        with self._tx() as conn:
            if self._one("SELECT 1 FROM assistants WHERE assistant_id = ?", (rec["assistant_id"],)):
                return None
            conn.execute(
                f"INSERT INTO assistants ({', '.join(_ASSISTANT_COLS)}) VALUES ({', '.join('?' * len(_ASSISTANT_COLS))})",
                [(_enc(rec[c]) if c in _JSON_COLS else rec[c]) for c in _ASSISTANT_COLS],
            )
            self._insert_version(conn, rec)
        return rec

    def _insert_version(self, conn: sqlite3.Connection, rec: Record) -> None:
        conn.execute(
            "INSERT INTO assistant_versions (assistant_id, version, graph_id, config, context, metadata, name, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["assistant_id"], rec["version"], rec["graph_id"], _enc(rec["config"]), _enc(rec["context"]),
             _enc(rec["metadata"]), rec["name"], rec["description"], rec["updated_at"]),
        )

    @_threaded
    def assistant_get(self, assistant_id: str, *, access: AccessFilter | None = None) -> Record | None:
        sql, params = f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", [assistant_id]
        if access is not None:
            sql += " AND access_match(metadata, ?)"
            params.append(access.json)
        row = self._one(sql, params)
        return _row(_ASSISTANT_COLS, row) if row else None

    @_threaded
    def assistant_update(self, assistant_id: str, changes: Record) -> Record | None:
        with self._tx() as conn:
            row = self._one(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", (assistant_id,))
            if not row:
                return None
            current = _row(_ASSISTANT_COLS, row)
            max_version = (self._one("SELECT MAX(version) FROM assistant_versions WHERE assistant_id = ?", (assistant_id,)))[0] or current["version"]
            rec = {**current, **changes, "version": max_version + 1, "updated_at": now_iso()}
            self._write_assistant(conn, rec)
            self._insert_version(conn, rec)
        return rec

    def _write_assistant(self, conn: sqlite3.Connection, rec: Record) -> None:
        conn.execute(
            "UPDATE assistants SET graph_id=?, config=?, context=?, metadata=?, name=?, description=?, version=?, updated_at=? WHERE assistant_id=?",
            (rec["graph_id"], _enc(rec["config"]), _enc(rec["context"]), _enc(rec["metadata"]), rec["name"],
             rec["description"], rec["version"], rec["updated_at"], rec["assistant_id"]),
        )

    @_threaded
    def assistant_delete(self, assistant_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM assistants WHERE assistant_id = ?", (assistant_id,))
            conn.execute("DELETE FROM assistant_versions WHERE assistant_id = ?", (assistant_id,))
            conn.execute("DELETE FROM crons WHERE assistant_id = ?", (assistant_id,))
            return cur.rowcount > 0

    @_threaded
    def assistant_search(self, *, graph_id: str | None, name: str | None, metadata: Record | None,
                         limit: int, offset: int, sort_by: str, sort_order: SortOrder,
                         access: AccessFilter | None = None) -> list[Record]:
        where = query.assistant_where(DIALECT, graph_id, name, metadata, access)
        return self._page("assistants", _ASSISTANT_COLS, where, sort_by, query.ASSISTANT_SORT, sort_order, limit, offset)

    @_threaded
    def assistant_count(self, *, graph_id: str | None, name: str | None, metadata: Record | None,
                        access: AccessFilter | None = None) -> int:
        where = query.assistant_where(DIALECT, graph_id, name, metadata, access)
        return self._one(*query.count("assistants", where))[0]

    @_threaded
    def assistant_versions(self, assistant_id: str, *, metadata: Record | None, limit: int, offset: int) -> list[Record]:
        where = query.Where(DIALECT).eq("assistant_id", assistant_id).contains("metadata", metadata)
        rows = self._all(
            f"SELECT {query.cols(query.VERSION_COLS)} FROM assistant_versions{where.sql} ORDER BY version DESC LIMIT ? OFFSET ?",
            [*where.params, limit, offset],
        )
        return [_row(query.VERSION_COLS, r) for r in rows]

    @_threaded
    def assistant_set_latest(self, assistant_id: str, version: int) -> Record | None:
        cols = ("graph_id", "config", "context", "metadata", "name", "description")
        with self._tx() as conn:
            row = self._one(
                f"SELECT {', '.join(cols)} FROM assistant_versions WHERE assistant_id = ? AND version = ?", (assistant_id, version)
            )
            if not row:
                return None
            cur_row = self._one(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", (assistant_id,))
            if not cur_row:
                return None
            rec = {**_row(_ASSISTANT_COLS, cur_row), **_row(cols, row), "version": version, "updated_at": now_iso()}
            self._write_assistant(conn, rec)
        return rec

    # threads --------------------------------------------------------------------
    @_threaded
    def thread_create(self, record: Record) -> Record | None:
        with self._tx():
            if self._one("SELECT 1 FROM threads WHERE thread_id = ?", (record["thread_id"],)):
                return None
            self._insert_thread(record)
        return record

    def _insert_thread(self, record: Record) -> None:
        self.conn.execute(
            f"INSERT INTO threads ({', '.join(map(_q, _THREAD_COLS))}) VALUES ({', '.join('?' * len(_THREAD_COLS))})",
            [(_enc(record.get(c)) if c in _JSON_COLS else record.get(c)) for c in _THREAD_COLS],
        )

    @_threaded
    def thread_get(self, thread_id: str, *, access: AccessFilter | None = None) -> Record | None:
        sql, params = f"SELECT {', '.join(map(_q, _THREAD_COLS))} FROM threads WHERE thread_id = ?", [thread_id]
        if access is not None:
            sql += " AND access_match(metadata, ?)"
            params.append(access.json)
        row = self._one(sql, params)
        return _row(_THREAD_COLS, row) if row else None

    @_threaded
    def thread_update(self, thread_id: str, changes: Record, *, merge_metadata: Record | None = None) -> Record | None:
        with self._tx() as conn:
            row = self._one(f"SELECT {', '.join(map(_q, _THREAD_COLS))} FROM threads WHERE thread_id = ?", (thread_id,))
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
            conn.execute(
                f"UPDATE threads SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE thread_id = ?",
                [*((_enc(rec[c]) if c in _JSON_COLS else rec[c]) for c in cols), thread_id],
            )
        return rec

    @_threaded
    def thread_delete(self, thread_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))
            conn.execute(
                "DELETE FROM stream_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = ?)", (thread_id,)
            )
            conn.execute("DELETE FROM runs WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM checkpoints WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM crons WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM writes WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM thread_ttl WHERE thread_id = ?", (thread_id,))
            return cur.rowcount > 0

    @_threaded
    def thread_ttl_set(self, thread_id: str, *, strategy: str, ttl_minutes: float, now: float | None = None) -> bool:
        expires_at = (time.time() if now is None else now) + ttl_minutes * 60
        with self._tx() as conn:
            if not self._one("SELECT 1 FROM threads WHERE thread_id = ?", (thread_id,)):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO thread_ttl (thread_id, strategy, ttl_minutes, expires_at) VALUES (?, ?, ?, ?)",
                (thread_id, strategy, ttl_minutes, expires_at),
            )
            return True

    async def store_sweep_expired(self) -> int:
        return await self.store.sweep_ttl()

    @_threaded
    def thread_ttl_get(self, thread_id: str) -> Record | None:
        row = self._one("SELECT strategy, ttl_minutes, expires_at FROM thread_ttl WHERE thread_id = ?", (thread_id,))
        if not row:
            return None
        return {"strategy": row[0], "ttl_minutes": row[1], "expires_at": iso_from_epoch(row[2])}

    @_threaded
    def threads_expired(self, *, now: float | None = None, limit: int = 100) -> list[str]:
        rows = self._all(
            "SELECT thread_id FROM thread_ttl WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
            (time.time() if now is None else now, limit),
        )
        return [r[0] for r in rows]

    @_threaded
    def thread_search(self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                      status: str | None, limit: int, offset: int, sort_by: str, sort_order: SortOrder,
                      access: AccessFilter | None = None) -> list[Record]:
        where = query.thread_where(DIALECT, ids, metadata, values, status, access)
        return self._page("threads", _THREAD_COLS, where, sort_by, query.THREAD_SORT, sort_order, limit, offset)

    @_threaded
    def thread_count(self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                     status: str | None, access: AccessFilter | None = None) -> int:
        return self._one(*query.count("threads", query.thread_where(DIALECT, ids, metadata, values, status, access)))[0]

    # runs -------------------------------------------------------------------------
    @_threaded
    def run_create(self, record: Record, *, reject_if_busy: bool, new_thread: Record | None = None,
                   access: AccessFilter | None = None, limits: QueueLimits | None = None) -> Record | None:
        with self._tx() as conn:
            self._thread_for_run(record["thread_id"], new_thread, access)
            if reject_if_busy and self._runs_inflight(record["thread_id"]):
                return None
            if limits is not None:
                self._check_queue(record["thread_id"], limits)
            self._insert_run(conn, record)
        return record

    def _check_queue(self, thread_id: str, limits: QueueLimits) -> None:
        """Raise QueueFull when the thread or the server holds `limits` pending runs (see run_create)."""
        for scope, bound, sql, params in (
            ("thread", limits.thread, "SELECT COUNT(*) FROM runs WHERE thread_id = ? AND status = 'pending'", [thread_id]),
            # Counting stops at the bound: a long queue costs no more than a short one.
            ("server", limits.server, "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status = 'pending' LIMIT ?)", []),
        ):
            if bound is not None and self._one(sql, [*params, bound] if scope == "server" else params)[0] >= bound:
                raise QueueFull(scope, bound)  # type: ignore[arg-type]

    @_threaded
    def run_create_superseding(self, record: Record, *, action: str, new_thread: Record | None = None,
                               access: AccessFilter | None = None,
                               limits: QueueLimits | None = None) -> tuple[Record, list[Record]]:
        with self._tx() as conn:
            self._thread_for_run(record["thread_id"], new_thread, access)
            superseded = self._runs_inflight(record["thread_id"])
            now = now_iso()
            for run in superseded:
                if run["status"] != "pending":
                    continue  # running: the caller stops it
                if action == "rollback":
                    self._delete_run(conn, run["run_id"])
                else:
                    conn.execute("UPDATE runs SET status = 'interrupted', updated_at = ? WHERE run_id = ?",
                                 (now, run["run_id"]))
            if limits is not None:
                self._check_queue(record["thread_id"], limits)
            self._insert_run(conn, record)
        return record, superseded

    def _thread_for_run(self, thread_id: str, new_thread: Record | None, access: AccessFilter | None) -> None:
        """Check the run's thread exists and is visible, creating it from `new_thread` if missing."""
        existing = self._one("SELECT metadata FROM threads WHERE thread_id = ?", (thread_id,))
        if existing is None:
            if new_thread is None:
                raise LookupError(thread_id)
            self._insert_thread(new_thread)
        elif access is not None and not matches_json(existing[0], access.json):
            raise LookupError(thread_id)  # another caller's thread is not there for this one

    def _insert_run(self, conn: sqlite3.Connection, record: Record) -> None:
        conn.execute(
            f"INSERT INTO runs ({', '.join(_RUN_COLS)}) VALUES ({', '.join('?' * len(_RUN_COLS))})",
            [(_enc(record.get(c)) if c in _JSON_COLS else record.get(c)) for c in _RUN_COLS],
        )
        conn.execute(
            "UPDATE threads SET status = 'busy', updated_at = ? WHERE thread_id = ?",
            (record["created_at"], record["thread_id"]),
        )

    @_threaded
    def run_transition(self, run_id: str, from_status: str, to_status: str) -> bool:
        cur = self.conn.execute(
            "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ? AND status = ?",
            (to_status, now_iso(), run_id, from_status),
        )
        return cur.rowcount > 0

    @_threaded
    def run_start(self, run_id: str, thread_id: str, thread_metadata: Record) -> bool:
        now = now_iso()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'running', updated_at = ? WHERE run_id = ? AND status = 'pending'", (now, run_id)
            )
            if cur.rowcount == 0:
                return False
            # The thread belongs to the graph that runs on it now (state is read through it).
            conn.execute(
                "UPDATE threads SET metadata = json_patch(metadata, ?), updated_at = ? WHERE thread_id = ?",
                (_enc(thread_metadata), now, thread_id),
            )
            return True

    @_threaded
    def run_finish(self, run_id: str, thread_id: str, status: str, thread_changes: Record) -> None:
        now = now_iso()
        with self._tx() as conn:
            conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, now, run_id))
            busy = self._one(
                "SELECT 1 FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') LIMIT 1", (thread_id,)
            ) is not None
            changes = {**thread_changes, "updated_at": now}
            if busy:
                changes["status"] = "busy"
            cols = list(changes)
            conn.execute(
                f"UPDATE threads SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE thread_id = ?",
                [*((_enc(changes[c]) if c in _JSON_COLS else changes[c]) for c in cols), thread_id],
            )

    @_threaded
    def run_get(self, run_id: str, thread_id: str | None = None, *,
                access: AccessFilter | None = None) -> Record | None:
        return self._run_get(run_id, thread_id, access)

    def _run_get(self, run_id: str, thread_id: str | None = None, access: AccessFilter | None = None) -> Record | None:
        if thread_id is None:
            sql, params = _runs_sql("run_id = ?", [run_id], access)
        else:
            sql, params = _runs_sql("run_id = ? AND thread_id = ?", [run_id, thread_id], access)
        row = self._one(sql, params)
        return _row(_RUN_COLS, row) if row else None

    @_threaded
    def run_list(self, thread_id: str, *, limit: int, offset: int, status: str | None,
                 access: AccessFilter | None = None) -> list[Record]:
        if status:
            sql, params = _runs_sql("thread_id = ? AND status = ?", [thread_id, status], access)
        else:
            sql, params = _runs_sql("thread_id = ?", [thread_id], access)
        rows = self._all(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_row(_RUN_COLS, r) for r in rows]

    @_threaded
    def run_update(self, run_id: str, changes: Record) -> Record | None:
        changes = {**changes, "updated_at": changes.get("updated_at") or now_iso()}
        cols = list(changes)
        cur = self.conn.execute(
            f"UPDATE runs SET {', '.join(f'{c} = ?' for c in cols)} WHERE run_id = ?",
            [*((_enc(changes[c]) if c in _JSON_COLS else changes[c]) for c in cols), run_id],
        )
        if cur.rowcount == 0:
            return None
        return self._run_get(run_id)

    @_threaded
    def run_delete(self, run_id: str) -> bool:
        with self._tx() as conn:
            return self._delete_run(conn, run_id)

    def _delete_run(self, conn: sqlite3.Connection, run_id: str) -> bool:
        """Delete a run, its stream log and its checkpoints inside the caller's transaction."""
        row = self._one("SELECT thread_id FROM runs WHERE run_id = ?", (run_id,))
        if row is None:
            return False
        conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM stream_events WHERE run_id = ?", (run_id,))
        self._delete_run_checkpoints(conn, row[0], run_id)
        return True

    @_threaded
    def runs_inflight(self, thread_id: str) -> list[Record]:
        return self._runs_inflight(thread_id)

    def _runs_inflight(self, thread_id: str) -> list[Record]:
        rows = self._all(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') ORDER BY seq",
            (thread_id,),
        )
        return [_row(_RUN_COLS, r) for r in rows]

    @_threaded
    def run_next_pending(self, thread_id: str) -> Record | None:
        row = self._one(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE thread_id = ? AND status = 'pending' ORDER BY seq LIMIT 1",
            (thread_id,),
        )
        return _row(_RUN_COLS, row) if row else None

    @_threaded
    def runs_with_status(self, statuses: Sequence[str], *, access: AccessFilter | None = None) -> list[Record]:
        sql, params = _runs_sql(f"status IN ({', '.join('?' * len(statuses))})", statuses, access)
        rows = self._all(sql + " ORDER BY seq", params)
        return [_row(_RUN_COLS, r) for r in rows]

    @_threaded
    def run_counts(self) -> dict[str, int]:
        return dict(self._all("SELECT status, COUNT(*) FROM runs GROUP BY status"))

    @_threaded
    def runs_by_ids(self, run_ids: Sequence[str], *, access: AccessFilter | None = None) -> list[Record]:
        if not run_ids:
            return []
        sql, params = _runs_sql(f"run_id IN ({', '.join('?' * len(run_ids))})", run_ids, access)
        rows = self._all(sql + " ORDER BY seq", params)
        return [_row(_RUN_COLS, r) for r in rows]

    # leases -----------------------------------------------------------------------------
    @_threaded
    def runs_claim(self, owner: str, lease_seconds: float, limit: int, *, now: float | None = None) -> list[Record]:
        now = time.time() if now is None else now
        stamp = now_iso()
        with self._tx() as conn:  # the file's write lock makes the pick and the update one step
            rows = self._all(
                f"SELECT {', '.join(_RUN_COLS)} FROM runs r WHERE r.status = 'pending' AND r.run_at <= ? "
                "AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id "
                "AND (x.status = 'running' OR (x.status = 'pending' AND x.seq < r.seq))) ORDER BY r.seq LIMIT ?",
                (now, limit),
            )
            claimed = [_row(_RUN_COLS, r) for r in rows]
            for run in claimed:
                conn.execute("UPDATE runs SET status = 'running', owner = ?, lease_until = ?, updated_at = ? "
                             "WHERE run_id = ?", (owner, now + lease_seconds, stamp, run["run_id"]))
                conn.execute("UPDATE threads SET metadata = json_patch(metadata, ?), updated_at = ? WHERE thread_id = ?",
                             (_enc(query.claim_stamp(run)), stamp, run["thread_id"]))
                run.update(status="running", updated_at=stamp)
        return claimed

    @_threaded
    def runs_renew(self, owner: str, lease_seconds: float, run_ids: Sequence[str], *,
                   now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        held = []
        with self._tx() as conn:
            for run_id in run_ids:
                cur = conn.execute("UPDATE runs SET lease_until = ? WHERE run_id = ? AND owner = ? AND status = 'running'",
                                   (now + lease_seconds, run_id, owner))
                if cur.rowcount:
                    held.append(run_id)
        return held

    @_threaded
    def runs_lease_expired(self, *, now: float | None = None, limit: int = 100) -> list[Record]:
        rows = self._all(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE status = 'running' AND lease_until < ? ORDER BY seq LIMIT ?",
            (time.time() if now is None else now, limit),
        )
        return [_row(_RUN_COLS, r) for r in rows]

    @_threaded
    def runs_expire_leases(self, owner: str) -> int:
        return self.conn.execute("UPDATE runs SET lease_until = 0 WHERE owner = ? AND status = 'running'",
                                 (owner,)).rowcount

    @_threaded
    def run_take_over(self, run_id: str, owner: str, lease_seconds: float, *, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        cur = self.conn.execute(
            "UPDATE runs SET owner = ?, lease_until = ? WHERE run_id = ? AND status = 'running' AND lease_until < ?",
            (owner, now + lease_seconds, run_id, now),
        )
        return cur.rowcount > 0

    # stream logs --------------------------------------------------------------------
    @_threaded
    def stream_append(self, run_id: str, events: Sequence[tuple[int, str, bytes]]) -> None:
        if not events:
            return
        self.conn.executemany(
            "INSERT OR IGNORE INTO stream_events (run_id, seq, event, data) VALUES (?, ?, ?, ?)",
            [(run_id, seq, event, data) for seq, event, data in events],
        )

    @_threaded
    def stream_read(self, run_id: str, after: int) -> list[tuple[int, str, bytes]]:
        rows = self._all(
            "SELECT seq, event, data FROM stream_events WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after)
        )
        return [(int(s), e, bytes(d)) for s, e, d in rows]

    # checkpoints ----------------------------------------------------------------------
    @_threaded
    def checkpoints_delete_for_run(self, thread_id: str, run_id: str) -> None:
        with self._tx() as conn:
            self._delete_run_checkpoints(conn, thread_id, run_id)

    def _delete_run_checkpoints(self, conn: sqlite3.Connection, thread_id: str, run_id: str) -> None:
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
    def checkpoints_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
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
    def checkpoints_prune(self, thread_ids: Sequence[str], strategy: str) -> None:
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
    def checkpoints_delete_thread(self, thread_id: str) -> None:
        self._saver.delete_thread(thread_id)

