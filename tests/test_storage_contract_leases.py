"""The Storage contract for run leases (the queue replicas share), against every backend of the main suite.

The database may hold other tests' pending runs, so claims use a large limit and every
assertion looks only at this test's own runs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from skeino.storage.base import LEASE_FENCE, LeaseLost, Record, Storage
from test_storage_contract import Backend, _postgres, backend, new_id, run, storage, thread, ts  # noqa: F401

ALL = 100_000


def conf_run(thread_id: str, **over: object) -> Record:
    """A run whose kwargs carry the graph and assistant a claim stamps on the thread."""
    rec = run(thread_id, **over)
    rec["kwargs"] = {"config": {"configurable": {"graph_id": "g", "assistant_id": rec["assistant_id"]}}}
    return rec


async def made(storage: Storage, n: int, **over: object) -> tuple[str, list[Record]]:
    t = thread(metadata={"owner": "ann"})
    await storage.thread_create(t)
    runs = [conf_run(t["thread_id"], created_at=ts(i), **over) for i in range(n)]
    for r in runs:
        await storage.run_create(r, reject_if_busy=False)
    return t["thread_id"], runs


async def claim(storage: Storage, mine: list[Record], owner: str = "a", **kw: object) -> list[str]:
    ids = {r["run_id"] for r in mine}
    return [r["run_id"] for r in await storage.runs_claim(owner, 30, ALL, **kw) if r["run_id"] in ids]  # type: ignore[arg-type]


async def test_claims_take_the_oldest_run_of_each_idle_thread(storage: Storage) -> None:
    tid, (a1, a2) = await made(storage, 2)
    later = time.time() + 3600
    tid_b, (b1,) = await made(storage, 1, run_at=later)
    mine = [a1, a2, b1]

    assert await claim(storage, mine) == [a1["run_id"]]
    got = await storage.run_get(a1["run_id"])
    assert got is not None and got["status"] == "running"
    t = await storage.thread_get(tid)
    assert t is not None and t["metadata"] == {"owner": "ann", "graph_id": "g", "assistant_id": a1["assistant_id"]}
    # a2 waits for a1; b1 is not due yet.
    assert await claim(storage, mine) == []

    await storage.run_finish(a1["run_id"], tid, "success", {"status": "idle"})
    assert await claim(storage, mine) == [a2["run_id"]]
    assert await claim(storage, mine, now=later + 1) == [b1["run_id"]]
    assert (await storage.thread_get(tid_b))["status"] == "busy"  # type: ignore[index]


async def test_a_cancelled_pending_run_does_not_block_its_thread(storage: Storage) -> None:
    _, (first, second) = await made(storage, 2)
    assert await storage.run_transition(first["run_id"], "pending", "interrupted")
    assert await claim(storage, [first, second]) == [second["run_id"]]


async def test_leases_renew_expire_and_are_taken_over_once(storage: Storage) -> None:
    _, (r,) = await made(storage, 1)
    t0 = time.time()
    assert await claim(storage, [r], owner="a", now=t0) == [r["run_id"]]

    def expired(rows: list[Record]) -> bool:
        return r["run_id"] in {x["run_id"] for x in rows}

    assert not expired(await storage.runs_lease_expired(now=t0 + 20, limit=ALL))
    assert await storage.runs_renew("b", 30, [r["run_id"]], now=t0 + 20) == []  # not b's lease
    assert await storage.runs_renew("a", 30, [r["run_id"], new_id()], now=t0 + 20) == [r["run_id"]]
    assert not expired(await storage.runs_lease_expired(now=t0 + 40, limit=ALL))
    assert expired(await storage.runs_lease_expired(now=t0 + 60, limit=ALL))

    assert await storage.run_take_over(r["run_id"], "b", 30, now=t0 + 60) is not None
    assert await storage.run_take_over(r["run_id"], "c", 30, now=t0 + 61) is None  # b holds it now
    assert not expired(await storage.runs_lease_expired(now=t0 + 61, limit=ALL))
    assert await storage.runs_renew("a", 30, [r["run_id"]], now=t0 + 61) == []  # a lost it


async def test_a_restarting_replica_ends_its_old_leases(storage: Storage) -> None:
    _, (mine,) = await made(storage, 1)
    owner = f"old-{new_id()}"
    assert await claim(storage, [mine], owner=owner) == [mine["run_id"]]
    _, (other,) = await made(storage, 1)
    assert await claim(storage, [other], owner="someone-else") == [other["run_id"]]
    assert await storage.runs_expire_leases(owner) == 1
    expired = {r["run_id"] for r in await storage.runs_lease_expired(limit=ALL)}
    assert mine["run_id"] in expired and other["run_id"] not in expired


async def test_concurrent_claimers_never_share_a_run_or_a_thread(backend: Backend) -> None:
    replicas = [backend.make() for _ in range(3)]
    for s in replicas:
        await s.open()
    try:
        first = replicas[0]
        threads = [await made(first, 3) for _ in range(6)]
        mine = {r["run_id"]: tid for tid, runs in threads for r in runs}
        order = {r["run_id"]: i for _, runs in threads for i, r in enumerate(runs)}
        executed: list[str] = []
        running: set[str] = set()

        async def replica(s: Storage, name: str) -> None:
            idle = 0
            while idle < 3:
                claimed = [r for r in await s.runs_claim(name, 30, 2) if r["run_id"] in mine]
                idle = 0 if claimed else idle + 1
                for r in claimed:
                    assert r["thread_id"] not in running, "two runs of one thread at once"
                    running.add(r["thread_id"])
                    executed.append(r["run_id"])
                await asyncio.sleep(0)
                for r in claimed:
                    running.discard(r["thread_id"])
                    await s.run_finish(r["run_id"], r["thread_id"], "success", {"status": "idle"})

        await asyncio.gather(*(replica(s, f"r{i}") for i, s in enumerate(replicas)))
        assert sorted(executed) == sorted(mine), "every run once"
        for tid, runs in threads:
            assert [order[x] for x in executed if mine[x] == tid] == [0, 1, 2]
    finally:
        for s in replicas:
            await s.close()


async def claimed_and_taken_over(storage: Storage) -> tuple[str, Record, int, int]:
    """A run claimed by replica a, then taken over by b once a's lease ran out: (thread, run, a's epoch, b's)."""
    tid, (r,) = await made(storage, 1)
    t0 = time.time()
    (mine,) = [x for x in await storage.runs_claim("a", 30, ALL, now=t0) if x["run_id"] == r["run_id"]]
    taken = await storage.run_take_over(r["run_id"], "b", 30, now=t0 + 60)
    assert taken is not None and taken != mine["lease_epoch"]
    return tid, r, mine["lease_epoch"], taken


async def test_a_replica_that_lost_its_lease_records_nothing(storage: Storage) -> None:
    tid, r, stale, held = await claimed_and_taken_over(storage)
    before = await storage.thread_get(tid)

    assert await storage.run_finish(r["run_id"], tid, "success", {"status": "idle", "values": {"n": 1}},
                                    fence=stale) is False
    assert await storage.run_update(r["run_id"], {"status": "pending"}, fence=stale) is None
    assert await storage.run_delete(r["run_id"], fence=stale) is False
    got = await storage.run_get(r["run_id"])
    assert got is not None and got["status"] == "running"
    assert await storage.thread_get(tid) == before  # busy, values untouched

    # The holder's writes go through.
    assert await storage.run_finish(r["run_id"], tid, "error", {"status": "error"}, fence=held) is True
    got = await storage.run_get(r["run_id"])
    assert got is not None and got["status"] == "error"
    assert (await storage.thread_get(tid))["status"] == "error"  # type: ignore[index]
    # A finished run is no one's to write any more.
    assert await storage.run_finish(r["run_id"], tid, "success", {"status": "idle"}, fence=held) is False


async def test_the_fence_is_the_lease_epoch_not_the_replica(storage: Storage) -> None:
    # Retried after a take-over, the run is claimed again by the replica that lost it: the
    # old execution there still may not write, the new one may.
    tid, r, stale, held = await claimed_and_taken_over(storage)
    assert await storage.run_update(r["run_id"], {"status": "pending"}, fence=held) is not None
    (again,) = [x for x in await storage.runs_claim("a", 30, ALL) if x["run_id"] == r["run_id"]]
    assert again["lease_epoch"] not in (stale, held)
    assert await storage.run_delete(r["run_id"], fence=stale) is False
    assert await storage.run_finish(r["run_id"], tid, "success", {"status": "idle"}, fence=stale) is False
    assert await storage.run_delete(r["run_id"], fence=again["lease_epoch"]) is True
    assert await storage.run_get(r["run_id"]) is None


async def test_unfenced_writes_are_unchanged(storage: Storage) -> None:
    # A single process (no shared queue) writes without a fence, whatever the lease columns say.
    tid, (r,) = await made(storage, 1)
    assert await storage.run_finish(r["run_id"], tid, "success", {"status": "idle"}) is True
    got = await storage.run_get(r["run_id"])
    assert got is not None and got["status"] == "success"


@pytest.fixture
async def postgres(request: pytest.FixtureRequest) -> Any:
    store = _postgres(request).make()
    await store.open()
    yield store
    await store.close()


async def test_checkpoints_of_a_run_whose_lease_was_taken_over_are_refused(postgres: Any) -> None:
    """Postgres: a replica's checkpointer writes for a leased run only while it holds the lease."""
    tid, (r,) = await made(postgres, 1)
    (mine,) = [x for x in await postgres.runs_claim("a", 30, ALL) if x["run_id"] == r["run_id"]]
    saver = postgres.checkpointer
    config = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}

    def checkpoint() -> Any:
        cp = empty_checkpoint()
        cp["channel_values"] = {"steps": ["x"]}
        return cp

    token = LEASE_FENCE.set((r["run_id"], mine["lease_epoch"]))
    try:
        written = await saver.aput(config, checkpoint(), {"source": "loop", "step": 0}, {"steps": "1"})
        await saver.aput_writes(written, [("steps", ["y"])], "task-1")
        assert await storage_checkpoints(postgres, tid) == 1

        assert await postgres.run_take_over(r["run_id"], "b", 30, now=time.time() + 60) is not None
        with pytest.raises(LeaseLost):
            await saver.aput(config, checkpoint(), {"source": "loop", "step": 1}, {"steps": "2"})
        with pytest.raises(LeaseLost):
            await saver.aput_writes(written, [("steps", ["z"])], "task-2")
    finally:
        LEASE_FENCE.reset(token)
    assert await storage_checkpoints(postgres, tid) == 1
    tup = await saver.aget_tuple({"configurable": {"thread_id": tid, "checkpoint_ns": ""}})
    assert tup is not None and [w[2] for w in tup.pending_writes] == [["y"]]
    # Without a fence (a state update through the API, say) the saver writes as always.
    await saver.aput(config, checkpoint(), {"source": "update", "step": 1}, {"steps": "2"})
    assert await storage_checkpoints(postgres, tid) == 2


async def storage_checkpoints(storage: Any, thread_id: str) -> int:
    row = await storage._one("SELECT COUNT(*) AS n FROM checkpoints WHERE thread_id = %s", (thread_id,))
    return int(row["n"])
