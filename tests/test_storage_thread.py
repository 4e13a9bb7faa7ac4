"""The SQLite backend's storage thread: calls queued together are served as one batch."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from skeino.storage.sqlite.backend import StorageThread


async def test_batched_calls_keep_order_results_and_errors(tmp_path: Path) -> None:
    db = StorageThread(str(tmp_path / "t.db"))
    await db.open()
    try:
        gate = threading.Event()
        order: list[int] = []

        def work(i: int) -> int:
            if i == 0:
                gate.wait(5)  # hold the thread so the rest queue up behind this call
            order.append(i)
            if i % 7 == 3:
                raise ValueError(f"call {i}")
            return i * i

        calls = [asyncio.ensure_future(db.run(work, i)) for i in range(50)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)

        assert order == list(range(50))
        for i, result in enumerate(results):
            if i % 7 == 3:
                assert isinstance(result, ValueError) and str(result) == f"call {i}"
            else:
                assert result == i * i
        # Blocking calls from another thread share the same queue.
        assert await asyncio.to_thread(db.call, work, 2) == 4
    finally:
        await db.close()


async def test_a_cancelled_caller_does_not_break_the_batch(tmp_path: Path) -> None:
    db = StorageThread(str(tmp_path / "t.db"))
    await db.open()
    try:
        gate = threading.Event()
        blocker = asyncio.ensure_future(db.run(gate.wait, 5))
        doomed = asyncio.ensure_future(db.run(lambda: "late"))
        kept = asyncio.ensure_future(db.run(lambda: "kept"))
        await asyncio.sleep(0.02)
        doomed.cancel()
        gate.set()
        assert await blocker is True
        assert await kept == "kept"
        with pytest.raises(asyncio.CancelledError):
            await doomed
    finally:
        await db.close()


async def test_a_batch_commits_once_and_a_failed_call_leaves_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = StorageThread(str(path))
    await db.open()
    try:
        await db.run(lambda: db.conn.execute("CREATE TABLE t (i INTEGER PRIMARY KEY)"))
        db.group_commits = True
        gate = threading.Event()
        seen: list[bool] = []

        def write(i: int) -> int:
            if i == 0:
                gate.wait(5)  # the rest queue up behind this call: one batch
            assert db.conn is not None
            seen.append(db.conn.in_transaction)
            db.conn.execute("INSERT INTO t VALUES (?)", (i,))
            if i == 3:
                raise ValueError("call 3 fails after writing")
            return i

        calls = [asyncio.ensure_future(db.run(write, i)) for i in range(6)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [r if not isinstance(r, Exception) else "error" for r in results] == [0, 1, 2, "error", 4, 5]
        assert all(seen)  # every call ran inside the batch's transaction
        # Answered means committed: another connection sees every write but the failed call's.
        other = sqlite3.connect(path)
        try:
            assert [r[0] for r in other.execute("SELECT i FROM t ORDER BY i")] == [0, 1, 2, 4, 5]
        finally:
            other.close()
        assert db.conn is not None and not db.conn.in_transaction
    finally:
        await db.close()


async def test_a_failed_commit_fails_every_call_of_the_batch(tmp_path: Path) -> None:
    db = StorageThread(str(tmp_path / "t.db"))
    await db.open()
    try:
        assert db.conn is not None
        await db.run(lambda: db.conn.execute(  # type: ignore[union-attr]
            "CREATE TABLE parent (i INTEGER PRIMARY KEY)"))
        # A deferred foreign key is checked at COMMIT: the second call makes the commit fail.
        await db.run(lambda: db.conn.execute(  # type: ignore[union-attr]
            "CREATE TABLE child (i INTEGER REFERENCES parent (i) DEFERRABLE INITIALLY DEFERRED)"))
        await db.run(lambda: db.conn.execute("PRAGMA foreign_keys = ON"))  # type: ignore[union-attr]
        db.group_commits = True
        gate = threading.Event()

        def first() -> str:
            gate.wait(5)
            db.conn.execute("INSERT INTO parent VALUES (1)")  # type: ignore[union-attr]
            return "first"

        calls = [asyncio.ensure_future(db.run(first)),
                 asyncio.ensure_future(db.run(lambda: db.conn.execute(  # type: ignore[union-attr]
                     "INSERT INTO child VALUES (2)").rowcount))]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        assert await db.run(lambda: db.conn.execute("SELECT COUNT(*) FROM parent").fetchone()[0]) == 0  # type: ignore[union-attr]
    finally:
        await db.close()


async def test_calls_made_in_one_turn_wake_the_thread_once(tmp_path: Path) -> None:
    db = StorageThread(str(tmp_path / "t.db"))
    await db.open()
    try:
        real = db._queue
        puts: list[object] = []

        class Counting:
            def put(self, item: object) -> None:
                puts.append(item)
                real.put(item)

            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

        db._queue = Counting()  # type: ignore[assignment]
        results = await asyncio.gather(*(db.run(lambda i=i: i * 2) for i in range(10)))
        assert results == [i * 2 for i in range(10)]
        assert len(puts) == 1  # ten calls, one hand-over to the storage thread
        assert await db.run(lambda: "next turn") == "next turn" and len(puts) == 2
    finally:
        db._queue = real
        await db.close()
