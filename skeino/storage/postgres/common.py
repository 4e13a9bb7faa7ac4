"""Helpers every Postgres table module shares: the dialect and pooled statements."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Sequence

import orjson
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from skeino.storage.base import Record
from skeino.storage.query import Dialect
from skeino.storage.runkwargs import restored


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def _access(col: str, access: Any) -> tuple[str, list[Any]]:
    from skeino.storage.postgres.access import access_sql  # it builds on jsonb() above

    return access_sql(col, access)


DIALECT = Dialect(param="%s", contains="{col} @> {param}", ilike="{col} ILIKE {param}", encode_json=jsonb,
                  tiebreak="seq", access=_access, json_text="({col} ->> '{key}')",
                  json_is_text="jsonb_typeof({col} -> '{key}') = 'string'")


_BEGIN_NO_FLUSH = b"BEGIN; SET LOCAL synchronous_commit TO off"


class Pooled:
    """Statements on the shared pool: one-off ones in autocommit, groups in one transaction."""

    _pool: AsyncConnectionPool

    @asynccontextmanager
    async def _tx(self, *, flush: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction on a pooled connection.

        `flush=False` lets COMMIT return before its WAL reaches the disk, for writes whose
        loss in a crash leaves a state the server already handles and no client was told
        of: every later commit that waits for its flush (a checkpoint, the run's end)
        makes this one durable too, as the WAL is one sequence. It costs no round trip:
        BEGIN and the setting go in one simple-protocol message.
        """
        async with self._pool.connection() as conn:
            if flush:
                async with conn.transaction():
                    yield conn
                return
            await conn.execute(_BEGIN_NO_FLUSH, prepare=False)
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    async def _script(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[int, list[Record]]]:
        """Several statements in one message: one round trip, one (implicit) transaction.

        Each statement's row count and rows, in order. The simple protocol that carries
        several statements takes no parameters, so psycopg binds them here, quoted as
        literals; an error in any statement rolls back all of them.
        """
        async with self._pool.connection() as conn:
            cur = AsyncClientCursor(conn, row_factory=dict_row)
            await cur.execute(sql, params, prepare=False)  # type: ignore[arg-type]
            results = []
            while True:
                rows = await cur.fetchall() if cur.description is not None else []
                results.append((cur.rowcount, rows))
                if not cur.nextset():
                    return results  # type: ignore[return-value]

    async def _one(self, sql: str, params: Sequence[Any] = (), conn: AsyncConnection | None = None) -> Record | None:
        if conn is not None:
            row = await (await conn.execute(sql, params)).fetchone()  # type: ignore[arg-type]
        else:
            async with self._pool.connection() as c:
                row = await (await c.execute(sql, params)).fetchone()  # type: ignore[arg-type]
        return restored(row) if row is not None and "kwargs" in row else row  # type: ignore[return-value,operator,arg-type]

    async def _all(self, sql: str, params: Sequence[Any] = (), conn: AsyncConnection | None = None) -> list[Record]:
        if conn is not None:
            rows = await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]
        else:
            async with self._pool.connection() as c:
                rows = await (await c.execute(sql, params)).fetchall()  # type: ignore[arg-type]
        if rows and "kwargs" in rows[0]:  # run rows: their kwargs whole again (storage/runkwargs.py)
            return [restored(r) for r in rows]  # type: ignore[arg-type]
        return rows  # type: ignore[return-value]

    async def _exec(self, sql: str, params: Sequence[Any] = (), conn: AsyncConnection | None = None) -> int:
        """Run a statement; how many rows it touched."""
        if conn is not None:
            return (await conn.execute(sql, params)).rowcount  # type: ignore[arg-type]
        async with self._pool.connection() as c:
            return (await c.execute(sql, params)).rowcount  # type: ignore[arg-type]
