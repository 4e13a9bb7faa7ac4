"""LangGraph's Postgres checkpointer, fenced by the lease of the run that writes.

A replica that was paused (or cut off) past its lease comes back still executing a run
that a survivor has taken over and recovered. Its checkpoint writes must not land on top
of what the survivor recorded: while the task runs under a lease (storage.base.LEASE_FENCE),
each checkpoint write is one transaction that first calls skeino_fence, which share-locks
the run row and fails unless the run is still running under that lease epoch. A take-over
then either waits for the write to commit or makes it fail with LeaseLost. On a pool the
fence rides in the write's own message (see _Batch): no round trip of its own, and no
transaction left open while the replica is paused, since Postgres runs the whole message
at once.

Unfenced, on a pool, the saver takes no lock of its own (each call has its own connection),
its writes go as one message each (_Batch), and those of a run with LangGraph's default
durability commit without waiting for the disk (storage.base.CHECKPOINT_FLUSH).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator

import psycopg
from langgraph.checkpoint.postgres import _ainternal
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncClientCursor, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from skeino.storage.base import CHECKPOINT_FLUSH, LEASE_FENCE, LeaseLost

FENCE_SQLSTATE = "SK409"  # raised by skeino_fence (migration 5)

# Set around the saver's writes only: reads need no fence.
_WRITING: ContextVar[bool] = ContextVar("skeino_checkpoint_write", default=False)


class FencedPostgresSaver(AsyncPostgresSaver):
    """AsyncPostgresSaver whose writes for a leased run commit only while the lease is held."""

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        token = _WRITING.set(True)
        try:
            return await super().aput(*args, **kwargs)
        finally:
            _WRITING.reset(token)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        token = _WRITING.set(True)
        try:
            await super().aput_writes(*args, **kwargs)
        finally:
            _WRITING.reset(token)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        fence = LEASE_FENCE.get()
        writing = _WRITING.get()
        if not isinstance(self.conn, AsyncConnectionPool):
            if fence is not None and writing:
                async with self._fenced(fence) as cur:
                    yield cur
            else:
                async with super()._cursor(pipeline=pipeline) as cur:
                    yield cur
            return
        # On a pool each call has a connection of its own: the saver's lock, which guards one
        # shared connection, would only make every run's checkpoint reads and writes wait
        # for each other's.
        async with self.conn.connection() as conn:
            if writing:
                batch = _Batch(conn)
                yield batch  # type: ignore[misc]
                await batch.send(relaxed=not CHECKPOINT_FLUSH.get(), fence=fence)
            elif pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur

    @asynccontextmanager
    async def _fenced(self, fence: tuple[str, int]) -> AsyncIterator[AsyncCursor[DictRow]]:
        # (A saver on one connection, not a pool.) No pipeline: a replica paused mid-pipeline leaves
        # its session "active" with the fence's lock held, where idle_in_transaction_session_timeout
        # (see backend.py) cannot end it; between plain statements it is "idle in transaction".
        async with _ainternal.get_connection(self.conn) as conn:
            async with conn.transaction(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                try:
                    await cur.execute("SELECT skeino_fence(%s, %s)", fence)
                except psycopg.Error as exc:
                    if _fence_failed(exc):
                        raise LeaseLost(fence[0]) from None
                    raise
                yield cur


class _Batch:
    """The cursor the saver writes through: its statements are sent as one message at the end.

    LangGraph's writes only execute statements (nothing is read back), through a pipeline,
    which psycopg waits on by polling a socket that is always writable: the event loop spins
    until Postgres answers (a fifth of the server's Python time at 16 clients). Sent instead
    as one simple-protocol message, parameters bound and quoted by psycopg, a write is one
    round trip and one implicit transaction (one commit, not one per statement), with no
    pipeline. `relaxed`: the commit does not wait for the disk (see CHECKPOINT_FLUSH).
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._cursor = AsyncClientCursor(conn)
        self._statements: list[str] = []

    async def execute(self, query: Any, params: Any = None, **_: Any) -> "_Batch":
        self._statements.append(self._cursor.mogrify(query, params))
        return self

    async def executemany(self, query: Any, params_seq: Any, **_: Any) -> None:
        for params in params_seq:
            self._statements.append(self._cursor.mogrify(query, params))

    def __getattr__(self, name: str) -> Any:
        # A newer saver reading results back would need a real cursor: say so at once.
        raise AttributeError(f"checkpoint writes are batched; the saver asked for cursor.{name}")

    async def send(self, *, relaxed: bool, fence: tuple[str, int] | None = None) -> None:
        if not self._statements:
            return
        head = ["SET LOCAL synchronous_commit TO off"] if relaxed else []
        if fence is not None:
            # First in the same transaction: the writes land only while the lease is held.
            head.append(self._cursor.mogrify("SELECT skeino_fence(%s, %s)", fence))
        try:
            await self._cursor.execute(";\n".join(head + self._statements), prepare=False)
        except psycopg.Error as exc:
            if fence is not None and _fence_failed(exc):
                raise LeaseLost(fence[0]) from None
            raise


def _fence_failed(exc: BaseException | None) -> bool:
    """Whether a pipeline's error (or the one it was aborted by) is skeino_fence's refusal."""
    while exc is not None:
        if isinstance(exc, psycopg.Error) and exc.sqlstate == FENCE_SQLSTATE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
