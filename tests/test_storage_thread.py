"""The SQLite backend's storage thread: calls queued together are served as one batch."""

from __future__ import annotations

import asyncio
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
