"""Postgres backend: skeino's tables beside LangGraph's Postgres checkpointer and store, on one pool.

Check-then-write sequences lock the thread's row (SELECT ... FOR UPDATE), so replicas
sharing the database see one order of runs per thread: `reject` admits exactly one of
two simultaneous runs, and enqueued runs keep the order their transactions committed in.
"""

from __future__ import annotations

import asyncio

import time
from typing import Any, Sequence

from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, SortOrder, iso_from_epoch, now_iso
from skeino.storage.postgres.bus import BusTables
from skeino.storage.postgres.checkpoints import CheckpointTables
from skeino.storage.postgres.common import DIALECT, Pooled, jsonb
from skeino.storage.postgres.crons import CronTables
from skeino.storage.postgres.fenced import FencedPostgresSaver
from skeino.storage.postgres.idempotency import IdempotencyTables
from skeino.storage.postgres.migrations import MIGRATION_LOCK, SERVING_LOCK, migrate
from skeino.storage.postgres.runs import RunTables
from skeino.storage.query import ASSISTANT_COLS, THREAD_COLS, VERSION_COLS, cols


async def _fractional_store_ttls(conn: AsyncConnection) -> None:
    """Let store TTLs be fractions of a minute, as they are on SQLite and the official server.

    LangGraph's Postgres store keeps `ttl_minutes` as an integer, so a TTL of 0.5 minutes
    came back as 0 on its first refresh and the item expired at once.
    """
    row = await (await conn.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'store' AND column_name = 'ttl_minutes'")).fetchone()
    if row is not None and row["data_type"] == "integer":  # type: ignore[call-overload,index]
        await conn.execute("ALTER TABLE store ALTER COLUMN ttl_minutes TYPE DOUBLE PRECISION")


# Every CTE runs once, whether read or not, and all see the rows as they were before the
# statement (so the stream events are found through the runs deleted beside them). The
# thread's row goes first, as in every other statement that locks a thread and its runs.
_THREAD_DELETE_TABLES = ("runs", "crons", "thread_ttl", "checkpoints", "checkpoint_writes", "checkpoint_blobs")
_THREAD_DELETE = (
    "WITH gone AS (DELETE FROM threads WHERE thread_id = %s RETURNING 1), "
    + "".join(f"d_{table} AS (DELETE FROM {table} WHERE thread_id = %s), " for table in _THREAD_DELETE_TABLES)
    + "d_events AS (DELETE FROM stream_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = %s)) "
    "SELECT COUNT(*) AS gone FROM gone"
)


# A replica paused (or cut off) inside a transaction keeps its row locks, and the survivor
# taking its runs over would wait on them: the server ends such a transaction (and the
# session) after this long. skeino's transactions never wait on their client that long.
IDLE_IN_TRANSACTION_TIMEOUT = "5s"


async def _configure(conn: AsyncConnection) -> None:
    await conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'")


class PostgresStorage(BusTables, RunTables, CronTables, CheckpointTables, IdempotencyTables, Pooled):
    """The shared backend for one or many replicas."""

    def __init__(self, url: str, *, store_config: dict[str, Any] | None = None,
                 index: dict[str, Any] | None = None, pool_size: int = 20) -> None:
        """`url` is a libpq connection string (postgresql://...); `index` as for SqliteStorage."""
        self.url = url
        self._store_config = store_config or {}
        self._index = index
        # LangGraph's savers want autocommit connections, prepared from the first use
        # (`prepare_threshold=0`, as LangGraph documents): parsing and planning each
        # statement once per connection took about 2 ms off a thread run. skeino's own groups
        # of statements open explicit transactions on the same connections.
        self._pool = AsyncConnectionPool(
            url, min_size=2, max_size=max(pool_size, 4), open=False, configure=_configure,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        self.checkpointer: FencedPostgresSaver
        self.store: AsyncPostgresStore
        self._serving: AsyncConnection[Any] | None = None

    # lifecycle ----------------------------------------------------------------
    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=30)
        self.checkpointer = FencedPostgresSaver(self._pool)  # type: ignore[arg-type]
        ttl = {"sweep_interval_minutes": 1, "refresh_on_read": True, **(self._store_config.get("ttl") or {})}
        self.store = AsyncPostgresStore(self._pool, ttl=ttl, index=self._index)  # type: ignore[arg-type]
        # One connection holds the lock while the others migrate, so replicas starting
        # together neither race nor apply a step twice.
        async with self._pool.connection() as conn:
            await _take_lock(conn, MIGRATION_LOCK)
            try:
                await migrate(conn)
                await self.checkpointer.setup()
                await self.store.setup()
                await _fractional_store_ttls(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        await self.store.start_ttl_sweeper()

    async def serve(self, *, shared: bool) -> bool:
        # A session lock on a connection of its own: it goes with the connection, so a
        # killed server frees it at once (the kernel closes its socket).
        self._serving = await AsyncConnection.connect(self.url, autocommit=True)
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        row = await (await self._serving.execute(f"SELECT {take}(%s)", (SERVING_LOCK,))).fetchone()
        return bool(row and row[0])

    async def close(self) -> None:
        if getattr(self, "store", None) is not None:
            await self.store.stop_ttl_sweeper(timeout=5)
        if self._serving is not None:
            await self._serving.close()
            self._serving = None
        await self._pool.close()

    # assistants ---------------------------------------------------------------
    async def assistant_create(self, record: Record) -> Record | None:
        rec = {**record, "version": 1}
        async with self._tx() as conn:
            sql, params = query.insert(DIALECT, "assistants", ASSISTANT_COLS, rec)
            if not await self._exec(sql + " ON CONFLICT (assistant_id) DO NOTHING", params, conn):
                return None
            await self._insert_version(conn, rec)
        return rec

    async def _insert_version(self, conn: AsyncConnection, rec: Record) -> None:
        await self._exec(*query.insert(DIALECT, "assistant_versions", VERSION_COLS,
                                       {**rec, "created_at": rec["updated_at"]}), conn)

    async def assistant_get(self, assistant_id: str, *, access: AccessFilter | None = None) -> Record | None:
        where = query.Where(DIALECT).eq("assistant_id", assistant_id).access(access)
        return await self._one(f"SELECT {cols(ASSISTANT_COLS)} FROM assistants{where.sql}", where.params)

    async def assistant_update(self, assistant_id: str, changes: Record) -> Record | None:
        async with self._tx() as conn:
            current = await self._one(
                f"SELECT {cols(ASSISTANT_COLS)} FROM assistants WHERE assistant_id = %s FOR UPDATE", (assistant_id,), conn)
            if current is None:
                return None
            top = await self._one("SELECT MAX(version) AS v FROM assistant_versions WHERE assistant_id = %s",
                                  (assistant_id,), conn)
            rec = {**current, **changes, "version": (top and top["v"] or current["version"]) + 1, "updated_at": now_iso()}
            await self._write_assistant(conn, rec)
            await self._insert_version(conn, rec)
        return rec

    async def _write_assistant(self, conn: AsyncConnection, rec: Record) -> None:
        fields = {c: rec[c] for c in ASSISTANT_COLS if c not in ("assistant_id", "created_at")}
        sets, params = query.assignments(DIALECT, fields)
        await self._exec(f"UPDATE assistants SET {sets} WHERE assistant_id = %s", [*params, rec["assistant_id"]], conn)

    async def assistant_delete(self, assistant_id: str) -> bool:
        async with self._tx() as conn:
            gone = await self._exec("DELETE FROM assistants WHERE assistant_id = %s", (assistant_id,), conn)
            await self._exec("DELETE FROM assistant_versions WHERE assistant_id = %s", (assistant_id,), conn)
            await self._exec("DELETE FROM crons WHERE assistant_id = %s", (assistant_id,), conn)
            return gone > 0

    async def assistant_search(self, *, graph_id: str | None, name: str | None, metadata: Record | None,
                               limit: int, offset: int, sort_by: str, sort_order: SortOrder,
                               access: AccessFilter | None = None, after: query.Position | None = None) -> list[Record]:
        where = query.assistant_where(DIALECT, graph_id, name, metadata, access)
        return await self._all(*query.page(DIALECT, "assistants", ASSISTANT_COLS, where, sort_by, query.ASSISTANT_SORT,
                                           sort_order, limit, offset, after))

    async def assistant_count(self, *, graph_id: str | None, name: str | None, metadata: Record | None,
                              access: AccessFilter | None = None) -> int:
        return await self._count("assistants", query.assistant_where(DIALECT, graph_id, name, metadata, access))

    async def _count(self, table: str, where: query.Where) -> int:
        row = await self._one(*query.count(table, where))
        return int(row["count"]) if row else 0

    async def assistant_versions(self, assistant_id: str, *, metadata: Record | None, limit: int,
                                 offset: int) -> list[Record]:
        where = query.Where(DIALECT).eq("assistant_id", assistant_id).contains("metadata", metadata)
        return await self._all(
            f"SELECT {cols(VERSION_COLS)} FROM assistant_versions{where.sql} ORDER BY version DESC LIMIT %s OFFSET %s",
            [*where.params, limit, offset],
        )

    async def assistant_set_latest(self, assistant_id: str, version: int) -> Record | None:
        async with self._tx() as conn:
            current = await self._one(
                f"SELECT {cols(ASSISTANT_COLS)} FROM assistants WHERE assistant_id = %s FOR UPDATE", (assistant_id,), conn)
            chosen = await self._one(
                "SELECT graph_id, config, context, metadata, name, description FROM assistant_versions "
                "WHERE assistant_id = %s AND version = %s", (assistant_id, version), conn)
            if current is None or chosen is None:
                return None
            rec = {**current, **chosen, "version": version, "updated_at": now_iso()}
            await self._write_assistant(conn, rec)
        return rec

    # threads --------------------------------------------------------------------
    async def thread_create(self, record: Record) -> Record | None:
        sql, params = query.insert(DIALECT, "threads", THREAD_COLS, record)
        if not await self._exec(sql + " ON CONFLICT (thread_id) DO NOTHING", params):
            return None
        return record

    async def thread_get(self, thread_id: str, *, access: AccessFilter | None = None) -> Record | None:
        where = query.Where(DIALECT).eq("thread_id", thread_id).access(access)
        return await self._one(f"SELECT {cols(THREAD_COLS)} FROM threads{where.sql}", where.params)

    async def _thread_for_update(self, conn: AsyncConnection, thread_id: str) -> Record | None:
        return await self._one(f"SELECT {cols(THREAD_COLS)} FROM threads WHERE thread_id = %s FOR UPDATE",
                               (thread_id,), conn)

    async def thread_update(self, thread_id: str, changes: Record, *,
                            merge_metadata: Record | None = None) -> Record | None:
        async with self._tx() as conn:
            rec = await self._thread_for_update(conn, thread_id)
            if rec is None:
                return None
            rec.update(changes)
            if merge_metadata:
                rec["metadata"] = {**(rec["metadata"] or {}), **merge_metadata}
            if "updated_at" not in changes:
                rec["updated_at"] = now_iso()
            sets, params = query.assignments(DIALECT, {c: rec[c] for c in THREAD_COLS if c != "thread_id"})
            await self._exec(f"UPDATE threads SET {sets} WHERE thread_id = %s", [*params, thread_id], conn)
        return rec

    async def thread_delete(self, thread_id: str) -> bool:
        # One statement (one round trip, one transaction): every stateless run ends with this.
        row = await self._one(_THREAD_DELETE, [thread_id] * (len(_THREAD_DELETE_TABLES) + 2))
        return bool(row and row["gone"])

    async def thread_ttl_set(self, thread_id: str, *, strategy: str, ttl_minutes: float,
                             now: float | None = None) -> bool:
        expires_at = (time.time() if now is None else now) + ttl_minutes * 60
        written = await self._exec(
            "INSERT INTO thread_ttl (thread_id, strategy, ttl_minutes, expires_at) "
            "SELECT thread_id, %s, %s, %s FROM threads WHERE thread_id = %s "
            "ON CONFLICT (thread_id) DO UPDATE SET strategy = EXCLUDED.strategy, "
            "ttl_minutes = EXCLUDED.ttl_minutes, expires_at = EXCLUDED.expires_at",
            (strategy, ttl_minutes, expires_at, thread_id),
        )
        return written > 0

    async def thread_ttl_get(self, thread_id: str) -> Record | None:
        row = await self._one("SELECT strategy, ttl_minutes, expires_at FROM thread_ttl WHERE thread_id = %s",
                              (thread_id,))
        if row is None:
            return None
        return {"strategy": row["strategy"], "ttl_minutes": row["ttl_minutes"],
                "expires_at": iso_from_epoch(row["expires_at"])}

    async def threads_expired(self, *, now: float | None = None, limit: int = 100) -> list[str]:
        rows = await self._all("SELECT thread_id FROM thread_ttl WHERE expires_at <= %s ORDER BY expires_at LIMIT %s",
                               (time.time() if now is None else now, limit))
        return [r["thread_id"] for r in rows]

    async def store_sweep_expired(self) -> int:
        return await self.store.sweep_ttl()

    async def thread_search(self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                            status: str | None, limit: int, offset: int, sort_by: str,
                            sort_order: SortOrder, access: AccessFilter | None = None,
                            after: query.Position | None = None) -> list[Record]:
        where = query.thread_where(DIALECT, ids, metadata, values, status, access)
        return await self._all(*query.page(DIALECT, "threads", THREAD_COLS, where, sort_by, query.THREAD_SORT,
                                           sort_order, limit, offset, after))

    async def thread_count(self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                           status: str | None, access: AccessFilter | None = None) -> int:
        return await self._count("threads", query.thread_where(DIALECT, ids, metadata, values, status, access))

    # stream logs --------------------------------------------------------------------
    async def stream_append(self, run_id: str, events: Sequence[tuple[int, str, bytes]]) -> None:
        if not events:
            return
        async with self._pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO stream_events (run_id, seq, event, data) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(run_id, seq, event, data) for seq, event, data in events],
                )

    async def stream_read(self, run_id: str, after: int) -> list[tuple[int, str, bytes]]:
        rows = await self._all("SELECT seq, event, data FROM stream_events WHERE run_id = %s AND seq > %s ORDER BY seq",
                               (run_id, after))
        return [(int(r["seq"]), r["event"], bytes(r["data"])) for r in rows]


async def _take_lock(conn: AsyncConnection, key: int) -> None:
    """Take a session advisory lock by polling, never by waiting inside a statement.

    A replica blocked in `pg_advisory_lock` holds an open transaction, and the checkpointer's
    `CREATE INDEX CONCURRENTLY` (run by the lock holder) waits for every open transaction:
    two replicas starting together on a new database would wait on each other for ever.
    """
    while True:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (key,))).fetchone()
        if row and row["locked"]:
            return
        await asyncio.sleep(0.1)
