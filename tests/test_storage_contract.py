"""The Storage contract (skeino/storage/base.py), run against every backend.

Each backend is one param of the `backend` fixture. Tests never assume an empty database:
they filter by ids and metadata tags of their own, so a backend may share one database
between tests (as a Postgres server would).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from skeino.storage.base import Record, Storage
from skeino.storage.sqlite import SqliteStorage


@dataclass
class Backend:
    name: str
    make: Callable[[], Storage]  # a new, unopened instance on the same database every time


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "contract.db"
    return Backend("sqlite", lambda: SqliteStorage(path))


def _postgres(request: pytest.FixtureRequest) -> Backend:
    from skeino.storage.postgres import PostgresStorage

    # One database for the session (skipped without SKEINO_TEST_DATABASE_URL): the tests
    # never assume an empty one.
    url = request.getfixturevalue("pg_url")
    return Backend("postgres", lambda: PostgresStorage(url, pool_size=4))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _sqlite(tmp_path) if request.param == "sqlite" else _postgres(request)


@pytest.fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    store = backend.make()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# records ----------------------------------------------------------------------------------------
BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ts(seconds: float) -> str:
    """Distinct, ordered timestamps so sorting never depends on ties."""
    return (BASE + timedelta(seconds=seconds)).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())


def assistant(graph_id: str = "g", **over: Any) -> Record:
    return {"assistant_id": new_id(), "graph_id": graph_id, "config": {}, "context": {}, "metadata": {},
            "name": "a", "description": None, "created_at": ts(0), "updated_at": ts(0), **over}


def thread(**over: Any) -> Record:
    return {"thread_id": new_id(), "created_at": ts(0), "updated_at": ts(0), "state_updated_at": ts(0),
            "metadata": {}, "status": "idle", "config": {}, "values": None, "interrupts": {}, "error": None, **over}


def run(thread_id: str, **over: Any) -> Record:
    return {"run_id": new_id(), "thread_id": thread_id, "assistant_id": new_id(), "created_at": ts(0),
            "updated_at": ts(0), "status": "pending", "metadata": {}, "kwargs": {"input": {"n": 1}},
            "multitask_strategy": "enqueue", "run_at": 0.0, **over}


async def search_threads(storage: Storage, **filters: Any) -> list[Record]:
    args: dict[str, Any] = {"ids": None, "metadata": None, "values": None, "status": None, "limit": 100,
                            "offset": 0, "sort_by": "created_at", "sort_order": "asc"}
    return await storage.thread_search(**{**args, **filters})


async def count_threads(storage: Storage, **filters: Any) -> int:
    args: dict[str, Any] = {"ids": None, "metadata": None, "values": None, "status": None}
    return await storage.thread_count(**{**args, **filters})


async def search_assistants(storage: Storage, **filters: Any) -> list[Record]:
    args: dict[str, Any] = {"graph_id": None, "name": None, "metadata": None, "limit": 100, "offset": 0,
                            "sort_by": "created_at", "sort_order": "asc"}
    return await storage.assistant_search(**{**args, **filters})


def ids(rows: list[Record], key: str = "thread_id") -> list[str]:
    return [r[key] for r in rows]


# assistants -------------------------------------------------------------------------------------
async def test_assistant_create_get_and_duplicates(storage: Storage) -> None:
    rec = assistant(config={"configurable": {"k": 1}}, context={"c": 1}, metadata={"m": [1, 2]}, description="d")
    created = await storage.assistant_create(rec)
    assert created is not None and created["version"] == 1
    got = await storage.assistant_get(rec["assistant_id"])
    assert got == {**rec, "version": 1}
    assert await storage.assistant_create({**rec, "name": "other"}) is None
    assert (await storage.assistant_get(rec["assistant_id"]))["name"] == "a"  # type: ignore[index]
    assert await storage.assistant_get(new_id()) is None


async def test_assistant_versions_and_set_latest(storage: Storage) -> None:
    rec = assistant(metadata={"stage": 1}, config={"v": 1})
    await storage.assistant_create(rec)
    aid = rec["assistant_id"]

    v2 = await storage.assistant_update(aid, {"name": "second", "config": {"v": 2}, "metadata": {"stage": 2}})
    assert v2 is not None and v2["version"] == 2 and v2["name"] == "second" and v2["config"] == {"v": 2}
    assert v2["graph_id"] == "g" and v2["created_at"] == rec["created_at"] and v2["updated_at"] != rec["updated_at"]
    assert await storage.assistant_get(aid) == v2

    versions = await storage.assistant_versions(aid, metadata=None, limit=10, offset=0)
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["config"] for v in versions] == [{"v": 2}, {"v": 1}]
    assert all(v["assistant_id"] == aid for v in versions)
    assert [v["version"] for v in await storage.assistant_versions(aid, metadata=None, limit=1, offset=1)] == [1]
    assert [v["version"] for v in await storage.assistant_versions(aid, metadata={"stage": 1}, limit=10, offset=0)] \
        == [1]

    back = await storage.assistant_set_latest(aid, 1)
    assert back is not None and back["version"] == 1 and back["name"] == "a" and back["config"] == {"v": 1}
    assert back["metadata"] == {"stage": 1}
    assert await storage.assistant_get(aid) == back

    # A change after going back gets a new number; no version is overwritten.
    v3 = await storage.assistant_update(aid, {"description": "third"})
    assert v3 is not None and v3["version"] == 3 and v3["config"] == {"v": 1}
    assert [v["version"] for v in await storage.assistant_versions(aid, metadata=None, limit=10, offset=0)] == [3, 2, 1]

    assert await storage.assistant_set_latest(aid, 42) is None
    assert (await storage.assistant_get(aid))["version"] == 3  # type: ignore[index]
    assert await storage.assistant_update(new_id(), {"name": "x"}) is None
    assert await storage.assistant_set_latest(new_id(), 1) is None
    assert await storage.assistant_versions(new_id(), metadata=None, limit=10, offset=0) == []


async def test_assistant_delete(storage: Storage) -> None:
    rec = assistant()
    await storage.assistant_create(rec)
    await storage.assistant_update(rec["assistant_id"], {"name": "b"})
    assert await storage.assistant_delete(rec["assistant_id"]) is True
    assert await storage.assistant_get(rec["assistant_id"]) is None
    assert await storage.assistant_versions(rec["assistant_id"], metadata=None, limit=10, offset=0) == []
    assert await storage.assistant_delete(rec["assistant_id"]) is False
    # The id can be used again, starting over at version 1.
    assert (await storage.assistant_create(rec))["version"] == 1  # type: ignore[index]


async def test_assistant_search_and_count(storage: Storage) -> None:
    tag = uuid.uuid4().hex
    made = [assistant("g1", name=f"zeta-{tag}", metadata={"tag": tag, "deep": {"a": 1, "b": 2}}, created_at=ts(1)),
            assistant("g1", name=f"alpha-{tag}", metadata={"tag": tag, "flag": True}, created_at=ts(2)),
            assistant("g2", name=f"mid-{tag}", metadata={"tag": tag, "flag": 1}, created_at=ts(3))]
    for rec in made:
        await storage.assistant_create(rec)
    z, a, m = (r["assistant_id"] for r in made)
    key = "assistant_id"
    mine = {"metadata": {"tag": tag}}

    assert ids(await search_assistants(storage, **mine), key) == [z, a, m]
    assert ids(await search_assistants(storage, **mine, sort_order="desc"), key) == [m, a, z]
    assert ids(await search_assistants(storage, **mine, sort_by="name"), key) == [a, m, z]
    assert ids(await search_assistants(storage, **mine, sort_by="name", sort_order="desc"), key) == [z, m, a]
    assert ids(await search_assistants(storage, **mine, sort_by="assistant_id"), key) == sorted([z, a, m])
    assert ids(await search_assistants(storage, **mine, limit=2), key) == [z, a]
    assert ids(await search_assistants(storage, **mine, limit=2, offset=2), key) == [m]
    assert await search_assistants(storage, **mine, offset=3) == []

    assert ids(await search_assistants(storage, **mine, graph_id="g1"), key) == [z, a]
    assert ids(await search_assistants(storage, name=f"ALPHA-{tag}"), key) == [a]  # substring, any case
    assert ids(await search_assistants(storage, name=tag), key) == [z, a, m]
    assert ids(await search_assistants(storage, metadata={"tag": tag, "deep": {"a": 1}}), key) == [z]
    assert ids(await search_assistants(storage, metadata={"tag": tag, "flag": True}), key) == [a]
    assert ids(await search_assistants(storage, metadata={"tag": tag, "flag": 1}), key) == [m]

    assert await storage.assistant_count(graph_id=None, name=None, metadata={"tag": tag}) == 3
    assert await storage.assistant_count(graph_id="g1", name=None, metadata={"tag": tag}) == 2
    assert await storage.assistant_count(graph_id=None, name=f"mid-{tag}", metadata=None) == 1
    assert await storage.assistant_count(graph_id=None, name=None, metadata={"tag": tag, "flag": False}) == 0


# threads ----------------------------------------------------------------------------------------
async def test_thread_create_get_update(storage: Storage) -> None:
    rec = thread(metadata={"a": 1, "b": {"x": 1}}, values={"count": 1})
    assert await storage.thread_create(rec) == rec
    assert await storage.thread_get(rec["thread_id"]) == rec
    assert await storage.thread_create({**rec, "status": "busy"}) is None
    assert (await storage.thread_get(rec["thread_id"]))["status"] == "idle"  # type: ignore[index]
    assert await storage.thread_get(new_id()) is None

    updated = await storage.thread_update(rec["thread_id"], {"values": {"count": 2}, "status": "interrupted",
                                                             "interrupts": {"t": [{"id": "i", "value": 1}]}},
                                          merge_metadata={"b": {"y": 2}, "c": 3})
    assert updated is not None
    assert updated["values"] == {"count": 2} and updated["status"] == "interrupted"
    assert updated["interrupts"] == {"t": [{"id": "i", "value": 1}]}
    assert updated["metadata"] == {"a": 1, "b": {"y": 2}, "c": 3}  # shallow merge
    assert updated["updated_at"] != rec["updated_at"] and updated["created_at"] == rec["created_at"]
    assert await storage.thread_get(rec["thread_id"]) == updated
    assert await storage.thread_update(new_id(), {"status": "idle"}) is None


async def test_thread_delete_takes_runs_and_streams(storage: Storage) -> None:
    rec = thread()
    await storage.thread_create(rec)
    r = run(rec["thread_id"])
    await storage.run_create(r, reject_if_busy=False)
    await storage.stream_append(r["run_id"], [(0, "metadata", b"{}")])

    assert await storage.thread_delete(rec["thread_id"]) is True
    assert await storage.thread_get(rec["thread_id"]) is None
    assert await storage.run_get(r["run_id"]) is None
    assert await storage.runs_inflight(rec["thread_id"]) == []
    assert await storage.stream_read(r["run_id"], -1) == []
    assert await storage.thread_delete(rec["thread_id"]) is False


async def test_thread_search_and_count(storage: Storage) -> None:
    tag = uuid.uuid4().hex
    one = thread(created_at=ts(1), metadata={"tag": tag, "deep": {"a": 1, "b": 2}, "tags": ["x", "y"]},
                 values={"count": 1, "messages": [{"role": "user", "content": "hi"}]})
    two = thread(created_at=ts(2), status="busy", metadata={"tag": tag, "flag": True}, values={"count": 2})
    three = thread(created_at=ts(3), status="interrupted", metadata={"tag": tag, "flag": 1}, values=None)
    four = thread(created_at=ts(4), status="error", metadata={"tag": tag}, values={"count": 1})
    for rec in (one, two, three, four):
        await storage.thread_create(rec)
    a, b, c, d = (r["thread_id"] for r in (one, two, three, four))
    mine = {"metadata": {"tag": tag}}

    assert ids(await search_threads(storage, **mine)) == [a, b, c, d]
    assert ids(await search_threads(storage, **mine, sort_order="desc")) == [d, c, b, a]
    assert ids(await search_threads(storage, **mine, sort_by="thread_id")) == sorted([a, b, c, d])
    assert ids(await search_threads(storage, **mine, sort_by="status")) == [b, d, a, c]  # busy, error, idle, int…
    assert ids(await search_threads(storage, **mine, limit=2, offset=1)) == [b, c]
    assert await search_threads(storage, **mine, offset=4) == []

    for status, expected in (("idle", [a]), ("busy", [b]), ("interrupted", [c]), ("error", [d])):
        assert ids(await search_threads(storage, **mine, status=status)) == expected
        assert await count_threads(storage, **mine, status=status) == 1

    # Containment: nested objects by the keys given, lists by the items given, exact types.
    assert ids(await search_threads(storage, metadata={"tag": tag, "deep": {"b": 2}})) == [a]
    assert ids(await search_threads(storage, metadata={"tag": tag, "tags": ["y"]})) == [a]
    assert await search_threads(storage, metadata={"tag": tag, "tags": ["z"]}) == []
    assert ids(await search_threads(storage, metadata={"tag": tag, "flag": True})) == [b]
    assert ids(await search_threads(storage, metadata={"tag": tag, "flag": 1})) == [c]
    assert ids(await search_threads(storage, **mine, values={"count": 1})) == [a, d]
    assert ids(await search_threads(storage, **mine, values={"messages": [{"content": "hi"}]})) == [a]
    assert await search_threads(storage, **mine, values={"count": 3}) == []

    assert ids(await search_threads(storage, ids=[d, b])) == [b, d]
    assert ids(await search_threads(storage, ids=[a, b, c], status="busy")) == [b]
    assert await search_threads(storage, ids=[new_id()]) == []

    assert await count_threads(storage, **mine) == 4
    assert await count_threads(storage, **mine, values={"count": 1}) == 2
    assert await count_threads(storage, ids=[a, b]) == 2


# runs -------------------------------------------------------------------------------------------
async def test_run_create_marks_the_thread_busy(storage: Storage) -> None:
    rec = thread(metadata={"owner": "ann"})
    await storage.thread_create(rec)
    first = run(rec["thread_id"], created_at=ts(1), metadata={"m": 1}, kwargs={"input": {"x": [1, 2]}})
    created = await storage.run_create(first, reject_if_busy=True)
    assert created is not None and created["run_id"] == first["run_id"]
    got = await storage.run_get(first["run_id"])
    assert got is not None
    assert {k: got[k] for k in first} == first
    assert await storage.run_get(first["run_id"], rec["thread_id"]) == got
    assert await storage.run_get(first["run_id"], new_id()) is None

    t = await storage.thread_get(rec["thread_id"])
    assert t is not None and t["status"] == "busy" and t["metadata"] == {"owner": "ann"}


async def test_run_create_on_a_missing_thread(storage: Storage) -> None:
    missing = new_id()
    r = run(missing, created_at=ts(2))
    with pytest.raises(LookupError):
        await storage.run_create(r, reject_if_busy=False)
    assert await storage.run_get(r["run_id"]) is None
    assert await storage.thread_get(missing) is None

    # With a thread record to create (if_not_exists=create), both appear together.
    created = await storage.run_create(r, reject_if_busy=True, new_thread=thread(thread_id=missing, metadata={"k": 1}))
    assert created is not None
    t = await storage.thread_get(missing)
    assert t is not None and t["status"] == "busy" and t["metadata"] == {"k": 1}
    assert (await storage.run_get(r["run_id"], missing)) is not None


async def test_run_start_claims_and_stamps_the_thread(storage: Storage) -> None:
    rec = thread(metadata={"owner": "ann"})
    await storage.thread_create(rec)
    r = run(rec["thread_id"])
    await storage.run_create(r, reject_if_busy=False)

    stamp = {"graph_id": "g", "assistant_id": r["assistant_id"]}
    assert await storage.run_start(r["run_id"], rec["thread_id"], stamp) is True
    assert (await storage.run_get(r["run_id"]))["status"] == "running"  # type: ignore[index]
    t = await storage.thread_get(rec["thread_id"])
    assert t is not None and t["metadata"] == {"owner": "ann", **stamp} and t["status"] == "busy"

    # Only a pending run can be claimed, and a refused claim stamps nothing.
    assert await storage.run_start(r["run_id"], rec["thread_id"], {"graph_id": "other"}) is False
    assert (await storage.thread_get(rec["thread_id"]))["metadata"]["graph_id"] == "g"  # type: ignore[index]
    cancelled = run(rec["thread_id"])
    await storage.run_create(cancelled, reject_if_busy=False)
    assert await storage.run_transition(cancelled["run_id"], "pending", "interrupted") is True
    assert await storage.run_start(cancelled["run_id"], rec["thread_id"], {"graph_id": "other"}) is False
    assert await storage.run_start(new_id(), rec["thread_id"], {"graph_id": "other"}) is False
    assert (await storage.thread_get(rec["thread_id"]))["metadata"]["graph_id"] == "g"  # type: ignore[index]


async def test_reject_if_busy_writes_nothing(storage: Storage) -> None:
    rec = thread()
    await storage.thread_create(rec)
    first = run(rec["thread_id"], created_at=ts(1))
    await storage.run_create(first, reject_if_busy=True)

    refused = run(rec["thread_id"], created_at=ts(2))
    assert await storage.run_create(refused, reject_if_busy=True) is None
    assert await storage.run_get(refused["run_id"]) is None
    assert ids(await storage.runs_inflight(rec["thread_id"]), "run_id") == [first["run_id"]]

    # Without reject_if_busy the run queues behind the first.
    queued = run(rec["thread_id"], created_at=ts(3))
    assert await storage.run_create(queued, reject_if_busy=False) is not None
    assert ids(await storage.runs_inflight(rec["thread_id"]), "run_id") == [first["run_id"], queued["run_id"]]

    # Once nothing is in flight, reject_if_busy lets a run in again.
    for r in (first, queued):
        await storage.run_finish(r["run_id"], rec["thread_id"], "success", {"status": "idle"})
    again = run(rec["thread_id"], created_at=ts(4))
    assert await storage.run_create(again, reject_if_busy=True) is not None


async def test_run_lifecycle(storage: Storage) -> None:
    rec = thread()
    await storage.thread_create(rec)
    tid = rec["thread_id"]
    first, second, third = (run(tid, created_at=ts(i)) for i in (1, 2, 3))
    for r in (first, second, third):
        await storage.run_create(r, reject_if_busy=False)
    assert ids(await storage.runs_inflight(tid), "run_id") == [first["run_id"], second["run_id"], third["run_id"]]
    assert (await storage.run_next_pending(tid))["run_id"] == first["run_id"]  # type: ignore[index]

    assert await storage.run_start(first["run_id"], tid, {"graph_id": "g"}) is True
    assert await storage.run_transition(first["run_id"], "pending", "running") is False  # already moved
    assert await storage.run_transition(new_id(), "pending", "running") is False
    assert (await storage.run_get(first["run_id"]))["status"] == "running"  # type: ignore[index]
    assert (await storage.run_next_pending(tid))["run_id"] == second["run_id"]  # type: ignore[index]
    assert ids(await storage.runs_inflight(tid), "run_id")[0] == first["run_id"]

    # Other runs still pending: the thread stays busy, but takes the finished run's state.
    await storage.run_finish(first["run_id"], tid, "success", {"status": "idle", "values": {"count": 1}})
    t = await storage.thread_get(tid)
    assert t is not None and t["status"] == "busy" and t["values"] == {"count": 1}
    assert (await storage.run_get(first["run_id"]))["status"] == "success"  # type: ignore[index]
    assert ids(await storage.runs_inflight(tid), "run_id") == [second["run_id"], third["run_id"]]

    await storage.run_transition(second["run_id"], "pending", "running")
    await storage.run_finish(second["run_id"], tid, "error", {"status": "error", "error": {"error": "ValueError"}})
    assert (await storage.thread_get(tid))["status"] == "busy"  # type: ignore[index]

    await storage.run_transition(third["run_id"], "pending", "running")
    await storage.run_finish(third["run_id"], tid, "success", {"status": "interrupted", "values": {"count": 3},
                                                               "interrupts": {"task": [{"id": "i", "value": 1}]}})
    t = await storage.thread_get(tid)
    assert t is not None and t["status"] == "interrupted" and t["values"] == {"count": 3}
    assert t["interrupts"] == {"task": [{"id": "i", "value": 1}]} and t["error"] == {"error": "ValueError"}
    assert await storage.runs_inflight(tid) == []
    assert await storage.run_next_pending(tid) is None


async def test_run_queries_update_and_delete(storage: Storage) -> None:
    rec = thread()
    await storage.thread_create(rec)
    tid = rec["thread_id"]
    runs = [run(tid, created_at=ts(i)) for i in range(4)]
    for r in runs:
        await storage.run_create(r, reject_if_busy=False)
    r0, r1, r2, r3 = (r["run_id"] for r in runs)
    await storage.run_transition(r0, "pending", "running")
    await storage.run_finish(r0, tid, "success", {})
    await storage.run_transition(r1, "pending", "running")

    assert ids(await storage.run_list(tid, limit=10, offset=0, status=None), "run_id") == [r3, r2, r1, r0]
    assert ids(await storage.run_list(tid, limit=2, offset=1, status=None), "run_id") == [r2, r1]
    assert ids(await storage.run_list(tid, limit=10, offset=0, status="pending"), "run_id") == [r3, r2]
    assert ids(await storage.run_list(tid, limit=10, offset=0, status="success"), "run_id") == [r0]
    assert await storage.run_list(new_id(), limit=10, offset=0, status=None) == []

    mine = {r0, r1, r2, r3}
    assert [r["run_id"] for r in await storage.runs_with_status(["running"]) if r["run_id"] in mine] == [r1]
    assert [r["run_id"] for r in await storage.runs_with_status(["pending", "success"]) if r["run_id"] in mine] \
        == [r0, r2, r3]
    assert ids(await storage.runs_by_ids([r3, r1, new_id()]), "run_id") == [r1, r3]
    assert await storage.runs_by_ids([]) == []

    updated = await storage.run_update(r2, {"kwargs": {"input": None, "command": {"resume": 1}}, "status": "running"})
    assert updated is not None and updated["kwargs"] == {"input": None, "command": {"resume": 1}}
    assert updated["status"] == "running"
    assert await storage.run_get(r2) == updated
    assert await storage.run_update(new_id(), {"status": "running"}) is None

    await storage.stream_append(r3, [(0, "metadata", b"{}")])
    assert await storage.run_delete(r3) is True
    assert await storage.run_get(r3) is None
    assert await storage.stream_read(r3, -1) == []
    assert await storage.run_delete(r3) is False


# stream logs ------------------------------------------------------------------------------------
async def test_stream_append_and_read(storage: Storage) -> None:
    run_id, other = new_id(), new_id()
    await storage.stream_append(run_id, [(0, "metadata", b'{"run_id": 1}'), (1, "values", b'{"a": 1}')])
    await storage.stream_append(run_id, [])
    await storage.stream_append(other, [(0, "metadata", b"other")])
    await storage.stream_append(run_id, [(2, "custom", bytes(range(256))), (3, "values|child:1", b"\xff\x00")])

    everything = await storage.stream_read(run_id, -1)
    assert everything == [(0, "metadata", b'{"run_id": 1}'), (1, "values", b'{"a": 1}'),
                          (2, "custom", bytes(range(256))), (3, "values|child:1", b"\xff\x00")]
    assert all(isinstance(data, bytes) for _, _, data in everything)
    assert await storage.stream_read(run_id, 1) == everything[2:]
    assert await storage.stream_read(run_id, 3) == []
    assert await storage.stream_read(other, -1) == [(0, "metadata", b"other")]
    assert await storage.stream_read(new_id(), -1) == []


# checkpoints ------------------------------------------------------------------------------------
class CountState(TypedDict):
    count: int


def _inc(state: CountState) -> dict[str, int]:
    return {"count": state["count"] + 1}


def counter(storage: Storage) -> Any:
    """a → b → c, each +1, checkpointing into the backend under test."""
    builder = StateGraph(CountState)
    for name in ("a", "b", "c"):
        builder.add_node(name, _inc)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile(checkpointer=storage.checkpointer)


def config(thread_id: str, run_id: str | None = None) -> dict[str, Any]:
    conf = {"thread_id": thread_id, "checkpoint_ns": ""}
    if run_id:
        conf["run_id"] = run_id  # lands in each checkpoint's metadata, as the executor's runs do
    return {"configurable": conf}


async def checkpoint_ids(storage: Storage, thread_id: str) -> list[str]:
    return [c.config["configurable"]["checkpoint_id"] async for c in storage.checkpointer.alist(config(thread_id))]


async def test_checkpoints_copy_thread(storage: Storage) -> None:
    graph = counter(storage)
    source, target = new_id(), new_id()
    # Stop before b so the copy must carry pending work too.
    await graph.ainvoke({"count": 0}, config(source, new_id()), interrupt_before=["b"])
    await storage.checkpoints_copy_thread(source, target)

    assert await checkpoint_ids(storage, target) == await checkpoint_ids(storage, source)
    copied = await graph.aget_state(config(target))
    original = await graph.aget_state(config(source))
    assert copied.values == original.values == {"count": 1}
    assert copied.next == original.next == ("b",)
    assert copied.config["configurable"]["thread_id"] == target

    # The copy resumes on its own; the source is untouched.
    assert await graph.ainvoke(None, config(target, new_id())) == {"count": 3}
    assert (await graph.aget_state(config(source))).values == {"count": 1}


async def test_checkpoints_prune(storage: Storage) -> None:
    graph = counter(storage)
    keep, drop, bystander = new_id(), new_id(), new_id()
    for tid in (keep, drop, bystander):
        await graph.ainvoke({"count": 0}, config(tid, new_id()))
    latest = (await graph.aget_state(config(keep))).config["configurable"]["checkpoint_id"]
    assert len(await checkpoint_ids(storage, keep)) == 5

    await storage.checkpoints_prune([keep], "keep_latest")
    assert await checkpoint_ids(storage, keep) == [latest]
    state = await graph.aget_state(config(keep))
    assert state.values == {"count": 3} and state.parent_config is None
    # A pruned thread goes on from its latest state.
    assert await graph.ainvoke({"count": 10}, config(keep, new_id())) == {"count": 13}

    await storage.checkpoints_prune([drop], "delete")
    assert await checkpoint_ids(storage, drop) == []
    assert (await graph.aget_state(config(drop))).created_at is None

    assert len(await checkpoint_ids(storage, bystander)) == 5


async def test_checkpoints_delete_for_run(storage: Storage) -> None:
    graph = counter(storage)
    tid, first, second = new_id(), new_id(), new_id()
    await graph.ainvoke({"count": 0}, config(tid, first))
    after_first = await checkpoint_ids(storage, tid)
    await graph.ainvoke({"count": 100}, config(tid, second))
    assert len(await checkpoint_ids(storage, tid)) == 2 * len(after_first)

    await storage.checkpoints_delete_for_run(tid, second)
    assert await checkpoint_ids(storage, tid) == after_first
    assert (await graph.aget_state(config(tid))).values == {"count": 3}
    # Deleting for a run that wrote nothing here changes nothing.
    await storage.checkpoints_delete_for_run(tid, new_id())
    await storage.checkpoints_delete_for_run(new_id(), first)
    assert await checkpoint_ids(storage, tid) == after_first


@pytest.mark.parametrize("action", ["interrupt", "rollback"])
async def test_run_create_superseding(storage: Storage, action: str) -> None:
    graph = counter(storage)
    tid = new_id()
    await storage.thread_create(thread(thread_id=tid))
    running, pending = run(tid, created_at=ts(1)), run(tid, created_at=ts(2))
    for r in (running, pending):
        await storage.run_create(r, reject_if_busy=False)
    assert await storage.run_start(running["run_id"], tid, {}) is True
    await graph.ainvoke({"count": 0}, config(tid, pending["run_id"]))  # a pending run's (retried) writes
    await storage.stream_append(pending["run_id"], [(0, "metadata", b"{}")])

    new = run(tid, created_at=ts(3))
    created, superseded = await storage.run_create_superseding(new, action=action)
    assert created == new
    assert [(r["run_id"], r["status"]) for r in superseded] == [(running["run_id"], "running"),
                                                                 (pending["run_id"], "pending")]
    assert (await storage.run_get(running["run_id"]))["status"] == "running"  # the caller stops it
    assert (await storage.run_get(new["run_id"]))["status"] == "pending"
    assert (await storage.thread_get(tid))["status"] == "busy"
    if action == "rollback":
        assert await storage.run_get(pending["run_id"]) is None
        assert await storage.stream_read(pending["run_id"], -1) == []
        assert await checkpoint_ids(storage, tid) == []
    else:
        assert (await storage.run_get(pending["run_id"]))["status"] == "interrupted"
        assert len(await checkpoint_ids(storage, tid)) == 5
    with pytest.raises(LookupError):
        await storage.run_create_superseding(run(new_id()), action=action)
    made = new_id()
    created, superseded = await storage.run_create_superseding(run(made), action=action,
                                                               new_thread=thread(thread_id=made))
    assert superseded == [] and (await storage.thread_get(made))["status"] == "busy"


async def test_run_delete_takes_its_checkpoints(storage: Storage) -> None:
    graph = counter(storage)
    tid, first, second = new_id(), new_id(), new_id()
    await storage.thread_create(thread(thread_id=tid))
    for run_id in (first, second):
        await storage.run_create(run(tid, run_id=run_id), reject_if_busy=False)
        await graph.ainvoke({"count": 0 if run_id == first else 100}, config(tid, run_id))
        await storage.run_finish(run_id, tid, "success", {})
        if run_id == first:
            after_first = await checkpoint_ids(storage, tid)
    assert await storage.run_delete(second) is True
    assert await checkpoint_ids(storage, tid) == after_first
    assert (await graph.aget_state(config(tid))).values == {"count": 3}
    assert await storage.run_get(first) is not None


async def test_checkpoints_delete_thread(storage: Storage) -> None:
    graph = counter(storage)
    gone, kept = new_id(), new_id()
    for tid in (gone, kept):
        await graph.ainvoke({"count": 0}, config(tid, new_id()), interrupt_before=["c"])
    await storage.checkpoints_delete_thread(gone)
    assert await checkpoint_ids(storage, gone) == []
    assert (await graph.aget_state(config(gone))).created_at is None
    assert (await graph.aget_state(config(kept))).next == ("c",)


async def test_thread_delete_takes_its_checkpoints(storage: Storage) -> None:
    graph = counter(storage)
    rec, kept = thread(), new_id()
    await storage.thread_create(rec)
    for tid in (rec["thread_id"], kept):
        await graph.ainvoke({"count": 0}, config(tid, new_id()))
    assert await storage.thread_delete(rec["thread_id"]) is True
    assert await checkpoint_ids(storage, rec["thread_id"]) == []
    assert len(await checkpoint_ids(storage, kept)) == 5


# lifecycle ------------------------------------------------------------------------------------------
async def test_reopen_keeps_everything_and_migrates_once(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    a, t = assistant(), thread(values={"count": 1})
    try:
        await first.assistant_create(a)
        await first.assistant_update(a["assistant_id"], {"name": "v2"})
        await first.thread_create(t)
        r = run(t["thread_id"])
        await first.run_create(r, reject_if_busy=False)
        await first.stream_append(r["run_id"], [(0, "metadata", b"{}")])
        await counter(first).ainvoke({"count": 0}, config(t["thread_id"], r["run_id"]))
        await first.store.aput(("contract", t["thread_id"]), "k", {"v": 1})
        cps = await checkpoint_ids(first, t["thread_id"])
    finally:
        await first.close()

    # Opening again, twice, runs no migration twice and loses nothing.
    for _ in range(2):
        again = backend.make()
        await again.open()
        try:
            assert (await again.assistant_get(a["assistant_id"]))["version"] == 2  # type: ignore[index]
            assert [v["version"] for v in await again.assistant_versions(a["assistant_id"], metadata=None, limit=10,
                                                                         offset=0)] == [2, 1]
            assert (await again.thread_get(t["thread_id"]))["status"] == "busy"  # type: ignore[index]
            assert ids(await again.runs_inflight(t["thread_id"]), "run_id") == [r["run_id"]]
            assert await again.stream_read(r["run_id"], -1) == [(0, "metadata", b"{}")]
            assert await checkpoint_ids(again, t["thread_id"]) == cps
            assert (await counter(again).aget_state(config(t["thread_id"]))).values == {"count": 3}
            item = await again.store.aget(("contract", t["thread_id"]), "k")
            assert item is not None and item.value == {"v": 1}
        finally:
            await again.close()


async def test_sqlite_migrations_are_versioned(tmp_path: Path) -> None:
    """SQLite only: the schema version is recorded, and migrating an up-to-date file is a no-op."""
    from skeino.storage.sqlite.migrations import MIGRATIONS, migrate

    path = tmp_path / "migrations.db"
    for _ in range(2):
        store = SqliteStorage(path)
        await store.open()
        await store.close()
    store = SqliteStorage(path)
    await store.open()
    try:
        db = store._db  # type: ignore[attr-defined]
        assert await db.run(migrate, db.conn) == len(MIGRATIONS)
        rows = await db.run(lambda: db.conn.execute("SELECT v FROM skeino_migrations ORDER BY v").fetchall())
        assert [row[0] for row in rows] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        await store.close()
