"""Which SQLite library the backend talks through.

The store's vector index needs the sqlite-vec extension, and many Python builds (pyenv's and
macOS's defaults among them) ship a sqlite3 that cannot load extensions. Then every connection
of the backend goes through sqlean.py, a drop-in sqlite3 that can: two SQLite libraries in one
process must never open the same file, since neither sees the other's POSIX locks.
"""

from __future__ import annotations

import sqlite3
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any, AsyncIterator

import aiosqlite
from langgraph.store.sqlite.aio import AsyncSqliteStore


def sqlite_api(extensions: bool) -> ModuleType:
    """The stdlib sqlite3, unless extensions must load and it cannot load them."""
    if not extensions or hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    import sqlean  # type: ignore[import-untyped]

    return sqlean


def setup_saver(saver: Any) -> None:
    """Run SqliteSaver.setup whatever the library.

    Its schema step re-adds a column on every start and swallows the "duplicate column"
    error only as the stdlib's sqlite3.OperationalError; sqlean raises its own class.
    """
    try:
        saver.setup()
    except Exception as exc:
        if isinstance(exc, sqlite3.Error) or "duplicate column name" not in str(exc):
            raise
        saver.is_setup = True


class SqliteStore(AsyncSqliteStore):
    """LangGraph's SQLite store, whose transactions take the write lock when they begin.

    Its transactions begin deferred and read before they write (a search that refreshes
    TTLs, a sweep). When the backend's own connection commits in between, SQLite refuses
    the upgrade to a write at once, without waiting out the busy timeout, and the store
    logs "database is locked" and skips the write. BEGIN IMMEDIATE waits for the lock instead.
    """

    @asynccontextmanager
    async def _cursor(self, *, transaction: bool = True) -> AsyncIterator[aiosqlite.Cursor]:
        # As AsyncSqliteStore._cursor, but BEGIN IMMEDIATE.
        if not self.is_setup:
            await self.setup()
        async with self.lock:
            if transaction:
                await self.conn.execute("BEGIN IMMEDIATE")
            async with self.conn.cursor() as cur:
                try:
                    yield cur
                finally:
                    if transaction:
                        await self.conn.execute("COMMIT")
