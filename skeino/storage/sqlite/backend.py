"""SQLite backend: skeino's tables and LangGraph's checkpoints on one connection, one thread.

Every storage call runs whole on a single worker thread that owns the connection: a
transaction (BEGIN ... COMMIT) costs one hop from the event loop instead of one per
statement, and writers never contend inside SQLite (whose busy handler naps 1-100 ms).
LangGraph's store keeps its own aiosqlite connection: it is used rarely, and its vector
search embeds queries on the event loop, which must not hold up the storage thread.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
import sqlite3
from typing import Any, Iterator, Sequence

import aiosqlite
from langgraph.checkpoint.sqlite import SqliteSaver

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, SortOrder
from skeino.storage.sqlite.assistants import AssistantTables
from skeino.storage.sqlite.checkpoints import CheckpointTables, ThreadedSqliteSaver
from skeino.storage.sqlite.common import DIALECT, _row
from skeino.storage.sqlite.connection import _PRAGMAS, SaverConnection, StorageThread
from skeino.storage.sqlite.crons import CronTables
from skeino.storage.sqlite.driver import SqliteStore, setup_saver, sqlite_api
from skeino.storage.sqlite.idempotency import IdempotencyTables
from skeino.storage.sqlite.migrations import migrate
from skeino.storage.sqlite.runs import RunTables
from skeino.storage.sqlite.threads import ThreadTables

__all__ = ["SqliteStorage", "StorageThread", "ThreadedSqliteSaver"]


class SqliteStorage(AssistantTables, ThreadTables, RunTables, CheckpointTables, CronTables, IdempotencyTables):
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
        self._saver = SqliteSaver(SaverConnection(conn))  # type: ignore[arg-type]
        await self._db.run(setup_saver, self._saver)
        self._db.group_commits = True
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

    async def store_sweep_expired(self) -> int:
        return await self.store.sweep_ttl()

    async def serve(self, *, shared: bool) -> bool:
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
        conn = self.conn
        if conn.in_transaction:
            # Inside the storage thread's batch transaction (which took the write lock
            # when it began): a savepoint makes this block all or nothing.
            conn.execute("SAVEPOINT tx")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO tx")
                    conn.execute("RELEASE tx")
                raise
            conn.execute("RELEASE tx")
            return
        # BEGIN IMMEDIATE takes the file's write lock up front so check-then-write
        # sequences are atomic (the store's connection is the only other writer).
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _page(self, table: str, columns: Sequence[str], where: query.Where, sort_by: str | None,
              sortable: frozenset[str], sort_order: SortOrder, limit: int, offset: int,
              after: query.Position | None) -> list[Record]:
        sql, params = query.page(DIALECT, table, columns, where, sort_by, sortable, sort_order, limit, offset, after)
        return [_row((*columns, query.POS), r) for r in self._all(sql, params)]

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params).fetchone()

    def _one_visible(self, sql: str, key: str, access: AccessFilter | None) -> Any:
        """The row `sql` (ending in `WHERE <id> = ?`) finds for `key`, if the access filter lets it be seen."""
        if access is None:
            return self._one(sql, (key,))
        return self._one(sql + " AND access_match(metadata, ?)", (key, access.json))

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()
