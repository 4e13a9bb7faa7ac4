"""Commits that need not wait for the disk: the same records, and on Postgres, only that transaction relaxed.

A `wait` run's creation and every run's start commit without waiting for their WAL flush on
Postgres (Storage.run_create, PostgresStorage.run_start): a later commit that does wait (a
checkpoint, the run's end) makes them durable too. What must hold is that nothing else
changes: the records read back the same, a refused run writes nothing, and the setting never
leaks to the next user of the pooled connection.
"""

from __future__ import annotations

from typing import Any

import pytest

from skeino.storage.base import Storage
from test_storage_contract import backend, new_id, run, storage, thread, ts  # noqa: F401  (fixtures)


async def test_a_run_created_without_flush_reads_back_the_same(storage: Storage) -> None:
    rec = thread()
    await storage.thread_create(rec)
    first = run(rec["thread_id"], created_at=ts(1))
    assert await storage.run_create(first, reject_if_busy=True, flush=False) is not None
    got = await storage.run_get(first["run_id"])
    assert got is not None and {k: got[k] for k in first} == first
    t = await storage.thread_get(rec["thread_id"])
    assert t is not None and t["status"] == "busy"
    # Refused (busy): nothing written, as with a flushed commit.
    second = run(rec["thread_id"], created_at=ts(2))
    assert await storage.run_create(second, reject_if_busy=True, flush=False) is None
    assert await storage.run_get(second["run_id"]) is None
    # Superseding, unflushed: the pending run is replaced.
    third = run(rec["thread_id"], created_at=ts(3))
    created, superseded = await storage.run_create_superseding(third, action="interrupt", flush=False)
    assert created["run_id"] == third["run_id"] and [r["run_id"] for r in superseded] == [first["run_id"]]
    gone = await storage.run_get(first["run_id"])
    assert gone is not None and gone["status"] == "interrupted"
    assert await storage.run_start(third["run_id"], rec["thread_id"], {"graph_id": "g"})
    started = await storage.run_get(third["run_id"])
    assert started is not None and started["status"] == "running"


async def _one(conn: Any, sql: str, params: Any = ()) -> Any:
    return await (await conn.execute(sql, params)).fetchone()


async def test_postgres_relaxes_only_that_transaction(storage: Storage, backend: Any) -> None:
    if backend.name != "postgres":
        pytest.skip("Postgres's synchronous_commit")
    from contextlib import AsyncExitStack

    from psycopg.pq import TransactionStatus

    pool = storage._pool  # type: ignore[attr-defined]
    table = f"commits_probe_{new_id().replace('-', '')}"
    async with pool.connection() as conn:
        await conn.execute(f"CREATE TABLE {table} (v int)")
    try:
        async with storage._tx(flush=False) as conn:  # type: ignore[attr-defined]
            assert conn.info.transaction_status == TransactionStatus.INTRANS
            pid = (await _one(conn, "SELECT pg_backend_pid() AS p"))["p"]
            assert (await _one(conn, "SELECT current_setting('synchronous_commit') AS s"))["s"] == "off"
            await conn.execute(f"INSERT INTO {table} VALUES (1)")
        with pytest.raises(RuntimeError):
            async with storage._tx(flush=False) as conn:  # type: ignore[attr-defined]
                await conn.execute(f"INSERT INTO {table} VALUES (2)")
                raise RuntimeError("refused")
        async with pool.connection() as conn:
            rows = await (await conn.execute(f"SELECT v FROM {table}")).fetchall()
            assert [r["v"] for r in rows] == [1]  # the first committed, the second rolled back
        # The connection that ran them is back in the pool, idle, its setting as before.
        async with AsyncExitStack() as held:
            for _ in range(pool.max_size):
                conn = await held.enter_async_context(pool.connection())
                if (await _one(conn, "SELECT pg_backend_pid() AS p"))["p"] == pid:
                    assert conn.info.transaction_status == TransactionStatus.IDLE
                    assert (await _one(conn, "SELECT current_setting('synchronous_commit') AS s"))["s"] == "on"
                    break
            else:
                pytest.fail("the connection left the pool")
    finally:
        async with pool.connection() as conn:
            await conn.execute(f"DROP TABLE {table}")


async def test_postgres_checkpoint_writes_of_async_runs_do_not_wait_for_the_disk(storage: Storage, backend: Any) -> None:
    """Only writes of a run with LangGraph's default durability relax the commit, and no call waits for another's."""
    if backend.name != "postgres":
        pytest.skip("Postgres's checkpointer")
    import asyncio

    from skeino.storage.base import CHECKPOINT_FLUSH
    from skeino.storage.postgres.fenced import _WRITING

    saver = storage.checkpointer  # type: ignore[attr-defined]
    table = f"checkpoint_probe_{new_id().replace('-', '')}"
    async with saver.conn.connection() as conn:
        await conn.execute(f"CREATE TABLE {table} (case_name text, setting text)")

    async def write(case: str, flush: bool, writing: bool) -> None:
        CHECKPOINT_FLUSH.set(flush)
        _WRITING.set(writing)
        async with saver._cursor(pipeline=True) as cur:
            await cur.execute(f"INSERT INTO {table} SELECT %s, current_setting('synchronous_commit')", (case,))
            await cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(case, "x"), (case, "y")])
            # Values are quoted into the message: quotes, percent signs and placeholders in them stay text.
            await cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (case, "it's 50%s %(x)s done;"))

    try:
        # Each in a task of its own, as runs are: the context variables stay there.
        await asyncio.create_task(write("async run", False, True))
        await asyncio.create_task(write("sync run", True, True))
        await asyncio.create_task(write("not a write", False, False))  # reads and deletes are left alone
        async with saver.conn.connection() as conn:
            rows = await (await conn.execute(f"SELECT case_name, setting FROM {table} "
                                             "WHERE setting NOT IN ('x', 'y', 'it''s 50%s %(x)s done;')")).fetchall()
            assert {r["case_name"]: r["setting"] for r in rows} == {"async run": "off", "sync run": "on", "not a write": "on"}
            n = await (await conn.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
            assert n["n"] == 12  # every statement of every batch landed, each value as it was sent

        # A saver that read a write's results back is told so, not given nothing.
        _WRITING.set(True)
        with pytest.raises(AttributeError, match="batched"):
            async with saver._cursor(pipeline=True) as cur:
                await cur.fetchone()
        _WRITING.set(False)

        # Two calls at once both get in: the saver's own lock does not serialize them on a pool.
        inside, release = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with saver._cursor() as cur:
                await cur.execute("SELECT 1")
                inside.set()
                await release.wait()

        held = asyncio.create_task(holder())
        await inside.wait()
        try:
            await asyncio.wait_for(asyncio.create_task(write("beside", True, False)), 5)
        finally:
            release.set()
            await held
    finally:
        async with saver.conn.connection() as conn:
            await conn.execute(f"DROP TABLE {table}")
