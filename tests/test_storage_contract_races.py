"""The Storage contract where a second backend most easily goes wrong: competing writers
(exactly one winner), the LangGraph store it hands the graphs, and the timestamps it writes.

Runs against every backend of tests/test_storage_contract.py, with its fixtures. Competitors
are tasks on one storage object and on several objects opened on the same database, as
the replicas of a deployment are.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator, Awaitable, Callable

import pytest

from skeino.storage.base import Record, Storage, now_iso
from test_storage_contract import Backend, backend, ids, new_id, run, storage, thread, ts  # noqa: F401  (fixtures)

COMPETITORS = 6


@pytest.fixture
async def replicas(backend: Backend) -> AsyncIterator[list[Storage]]:
    """Three storage objects on one database, each opened as its own process would."""
    opened = [backend.make() for _ in range(3)]
    for s in opened:
        await s.open()
    try:
        yield opened
    finally:
        for s in opened:
            await s.close()


async def race(replicas: list[Storage], attempt: Callable[[Storage, int], Awaitable[object]]) -> list[object]:
    """Run COMPETITORS attempts at once, spread over the replicas; their answers in order."""
    return list(await asyncio.gather(*(attempt(replicas[i % len(replicas)], i) for i in range(COMPETITORS))))


# competing writers ---------------------------------------------------------------------------------
async def test_concurrent_reject_if_busy_lets_exactly_one_run_in(replicas: list[Storage]) -> None:
    first = replicas[0]
    rec = thread()
    await first.thread_create(rec)
    tid = rec["thread_id"]
    candidates = [run(tid, created_at=ts(i)) for i in range(COMPETITORS)]

    answers = await race(replicas, lambda s, i: s.run_create(candidates[i], reject_if_busy=True))
    winners = [candidates[i]["run_id"] for i, a in enumerate(answers) if a is not None]
    assert len(winners) == 1, answers
    # The losers wrote nothing; the thread is busy with the winner alone.
    assert ids(await first.runs_inflight(tid), "run_id") == winners
    for i, a in enumerate(answers):
        if a is None:
            assert await first.run_get(candidates[i]["run_id"]) is None
    assert (await first.thread_get(tid))["status"] == "busy"  # type: ignore[index]


async def test_competing_starts_of_one_run_have_one_winner(replicas: list[Storage]) -> None:
    first = replicas[0]
    rec = thread()
    await first.thread_create(rec)
    r = run(rec["thread_id"])
    await first.run_create(r, reject_if_busy=False)

    answers = await race(replicas, lambda s, i: s.run_start(r["run_id"], rec["thread_id"], {"graph_id": f"g{i}"}))
    assert answers.count(True) == 1 and answers.count(False) == COMPETITORS - 1, answers
    # The thread carries the stamp of the one start that won.
    winner = answers.index(True)
    assert (await first.thread_get(rec["thread_id"]))["metadata"]["graph_id"] == f"g{winner}"  # type: ignore[index]
    assert (await first.run_get(r["run_id"]))["status"] == "running"  # type: ignore[index]


async def test_start_and_cancel_of_a_pending_run_have_one_winner(replicas: list[Storage]) -> None:
    first = replicas[0]
    rec = thread()
    await first.thread_create(rec)
    r = run(rec["thread_id"])
    await first.run_create(r, reject_if_busy=False)

    async def attempt(s: Storage, i: int) -> tuple[str, bool]:
        if i % 2:
            return "cancel", await s.run_transition(r["run_id"], "pending", "interrupted")
        return "start", await s.run_start(r["run_id"], rec["thread_id"], {"graph_id": "g"})

    answers = await race(replicas, attempt)
    won = [what for what, ok in answers if ok]  # type: ignore[misc]
    assert len(won) == 1, answers
    status = (await first.run_get(r["run_id"]))["status"]  # type: ignore[index]
    assert status == {"start": "running", "cancel": "interrupted"}[won[0]]


async def test_competing_transitions_of_a_running_run_have_one_winner(replicas: list[Storage]) -> None:
    first = replicas[0]
    rec = thread()
    await first.thread_create(rec)
    r = run(rec["thread_id"])
    await first.run_create(r, reject_if_busy=False)
    assert await first.run_start(r["run_id"], rec["thread_id"], {"graph_id": "g"}) is True
    targets = ["interrupted", "error", "timeout"]

    answers = await race(replicas, lambda s, i: s.run_transition(r["run_id"], "running", targets[i % 3]))
    assert answers.count(True) == 1, answers
    winner = targets[answers.index(True) % 3]
    assert (await first.run_get(r["run_id"]))["status"] == winner  # type: ignore[index]


# the LangGraph store -----------------------------------------------------------------------------
async def test_store_search_filters_pages_and_scopes_by_prefix(storage: Storage) -> None:
    root = ("contract-store", new_id())
    store = storage.store
    for key, size in (("a", 1), ("b", 5), ("c", 9)):
        await store.aput((*root, "items"), key, {"size": size, "meta": {"kind": "odd" if size % 2 else "even"}})
    await store.aput((*root, "items", "deeper"), "d", {"size": 7})
    await store.aput((*root, "other"), "e", {"size": 5})

    async def keys(prefix: tuple[str, ...], **kwargs: object) -> list[str]:
        return sorted(i.key for i in await store.asearch(prefix, limit=100, **kwargs))  # type: ignore[arg-type]

    assert await keys((*root, "items")) == ["a", "b", "c", "d"]  # a prefix reaches deeper namespaces
    assert await keys(root) == ["a", "b", "c", "d", "e"]
    assert await keys((*root, "items"), filter={"size": 5}) == ["b"]
    assert await keys(root, filter={"size": {"$gte": 5, "$lt": 9}}) == ["b", "d", "e"]
    page = [i.key for i in await store.asearch((*root, "items"), limit=2, offset=0)]
    rest = [i.key for i in await store.asearch((*root, "items"), limit=2, offset=2)]
    assert len(page) == 2 and len(rest) == 2 and sorted(page + rest) == ["a", "b", "c", "d"]
    # An item is exactly what was put, under its own namespace.
    item = await store.aget((*root, "items"), "b")
    assert item is not None and item.value == {"size": 5, "meta": {"kind": "odd"}}
    assert item.namespace == (*root, "items") and item.key == "b"
    await store.adelete((*root, "items"), "b")
    assert await store.aget((*root, "items"), "b") is None
    assert await keys((*root, "items")) == ["a", "c", "d"]


async def test_store_namespaces(storage: Storage) -> None:
    root = ("contract-ns", new_id())
    store = storage.store
    for ns in (("a", "x"), ("a", "y"), ("b", "x"), ("a", "x", "deep")):
        await store.aput((*root, *ns), "k", {"n": 1})

    async def listed(**kwargs: object) -> list[tuple[str, ...]]:
        return sorted(await store.alist_namespaces(limit=100, **kwargs))  # type: ignore[arg-type]

    everything = [(*root, "a", "x"), (*root, "a", "x", "deep"), (*root, "a", "y"), (*root, "b", "x")]
    assert await listed(prefix=root) == everything
    assert await listed(prefix=(*root, "a")) == everything[:3]
    assert await listed(prefix=root, suffix=("x",)) == [(*root, "a", "x"), (*root, "b", "x")]
    assert await listed(prefix=(*root, "*", "x")) == [(*root, "a", "x"), (*root, "a", "x", "deep"), (*root, "b", "x")]
    assert await listed(prefix=root, max_depth=len(root) + 1) == [(*root, "a"), (*root, "b")]
    pages = [await store.alist_namespaces(prefix=root, limit=3, offset=o) for o in (0, 3)]
    assert sorted(pages[0] + pages[1]) == everything


async def test_store_ttl_belongs_to_the_latest_put(storage: Storage) -> None:
    # (Refresh on read is not checked here: LangGraph's Postgres store keeps ttl_minutes as an
    # integer, so a fractional TTL refreshed by a read becomes 0, and whole minutes are too long.)
    ns = ("contract-store-ttl", new_id())
    store = storage.store
    await store.aput(ns, "expires", {"v": 1}, ttl=0.001)
    await store.aput(ns, "renewed", {"v": 2}, ttl=0.001)
    await store.aput(ns, "renewed", {"v": 3}, ttl=None)  # a put without a TTL: never expires
    await store.aput(ns, "later", {"v": 4}, ttl=0.001)
    await store.aput(ns, "later", {"v": 5}, ttl=60)  # a longer TTL replaces the short one
    deadline = time.monotonic() + 15
    while await store.aget(ns, "expires", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "an expired item was never swept"
        await storage.store_sweep_expired()
        await asyncio.sleep(0.2)
    await storage.store_sweep_expired()
    kept = {i.key: i.value for i in await store.asearch(ns, refresh_ttl=False)}
    assert kept == {"renewed": {"v": 3}, "later": {"v": 5}}


async def test_store_reads_that_refresh_ttls_beside_other_writers_log_no_error(
        storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    # The store's own connection writes (TTL refreshes) while the backend's commits runs and
    # threads: each must wait for the other, never give up ("database is locked").
    ns = ("contract-store-busy", new_id())
    for i in range(5):
        await storage.store.aput(ns, f"k{i}", {"v": i}, ttl=60)
    done = asyncio.Event()

    async def writer() -> None:
        while not done.is_set():
            await storage.thread_create(thread())

    task = asyncio.create_task(writer())
    try:
        with caplog.at_level("ERROR", logger="langgraph.store"):
            for _ in range(200):
                assert len(await storage.store.asearch(ns, refresh_ttl=True)) == 5
                await storage.store.aget(ns, "k0", refresh_ttl=True)
    finally:
        done.set()
        await task
    assert [r.getMessage() for r in caplog.records if r.name.startswith("langgraph.store")] == []


# timestamps --------------------------------------------------------------------------------------
# What every backend writes: ISO 8601 with a "T", in UTC with an explicit +00:00 offset, as
# Python's isoformat() gives; clients parse them and the official server sends the same shape.
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00$")


def assert_utc_iso(value: object, near: datetime) -> None:
    assert isinstance(value, str) and ISO_UTC.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    assert abs(parsed - near) < timedelta(minutes=5), (value, near)


async def test_timestamps_the_backend_writes_are_utc_iso_strings(storage: Storage) -> None:
    now = datetime.fromisoformat(now_iso())
    rec = thread()
    await storage.thread_create(rec)
    tid = rec["thread_id"]
    r = run(tid)
    await storage.run_create(r, reject_if_busy=False)
    # Timestamps given in the record come back exactly as given.
    got = await storage.run_get(r["run_id"])
    assert got is not None and got["created_at"] == r["created_at"]
    assert (await storage.thread_get(tid))["created_at"] == rec["created_at"]  # type: ignore[index]

    await storage.run_start(r["run_id"], tid, {"graph_id": "g"})
    assert_utc_iso((await storage.run_get(r["run_id"]))["updated_at"], now)  # type: ignore[index]
    await storage.run_finish(r["run_id"], tid, "success", {"status": "idle", "values": {"n": 1}})
    finished: Record = await storage.run_get(r["run_id"])  # type: ignore[assignment]
    assert_utc_iso(finished["updated_at"], now)
    t = await storage.thread_get(tid)
    assert t is not None
    assert_utc_iso(t["updated_at"], now)
    updated = await storage.thread_update(tid, {"metadata": {"k": 1}})
    assert updated is not None
    assert_utc_iso(updated["updated_at"], now)
    assert_utc_iso((await storage.run_update(r["run_id"], {"metadata": {"m": 1}}))["updated_at"], now)  # type: ignore[index]

    # The store's items carry datetimes in UTC (LangGraph's SQLite store gives them naive,
    # its Postgres store aware; the API writes both with +00:00).
    ns = ("contract-ts", new_id())
    await storage.store.aput(ns, "k", {"v": 1})
    item = await storage.store.aget(ns, "k")
    assert item is not None
    for stamp in (item.created_at, item.updated_at):
        assert isinstance(stamp, datetime) and stamp.utcoffset() in (None, timedelta(0))
        assert abs(stamp.replace(tzinfo=timezone.utc) - now) < timedelta(minutes=5)
