"""The Storage contract for queue bounds: run_create refuses beyond QueueLimits, writing nothing.

Runs against every backend of tests/test_storage_contract.py, with its fixtures.
"""

from __future__ import annotations

import pytest

from skeino.storage.base import QueueFull, QueueLimits, Storage

from test_storage_contract import backend, run, storage, thread  # noqa: F401  (fixtures)


async def pending(storage: Storage) -> int:
    return (await storage.run_counts()).get("pending", 0)


async def test_run_create_refuses_beyond_the_thread_and_server_bounds(storage: Storage) -> None:
    a, b = thread(), thread()
    for t in (a, b):
        await storage.thread_create(t)
    base = await pending(storage)  # the database is shared between tests: count from here
    limits = QueueLimits(server=base + 3, thread=2)
    for _ in range(2):
        assert await storage.run_create(run(a["thread_id"]), reject_if_busy=False, limits=limits) is not None
    with pytest.raises(QueueFull) as full:
        await storage.run_create(run(a["thread_id"]), reject_if_busy=False, limits=limits)
    assert full.value.scope == "thread" and full.value.limit == 2
    assert len(await storage.runs_inflight(a["thread_id"])) == 2

    assert await storage.run_create(run(b["thread_id"]), reject_if_busy=False, limits=limits) is not None
    fresh = thread()
    with pytest.raises(QueueFull) as full:
        await storage.run_create(run(fresh["thread_id"]), reject_if_busy=False, new_thread=fresh, limits=limits)
    assert full.value.scope == "server"
    assert await storage.thread_get(fresh["thread_id"]) is None  # the new thread went with the refusal
    # A running run is no longer queued: it leaves room.
    first = (await storage.runs_inflight(a["thread_id"]))[0]
    assert await storage.run_start(first["run_id"], a["thread_id"], {})
    assert await storage.run_create(run(a["thread_id"]), reject_if_busy=False, limits=limits) is not None
