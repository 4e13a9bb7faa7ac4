"""/threads end to end: records, state, history and time travel on a real server, via the official client."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError, UnprocessableEntityError

from helpers import is_iso, names, raw, tag
from serverproc import Server

THREAD_KEYS = {"thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status", "config", "values",
               "interrupts", "error"}
STATE_KEYS = {"values", "next", "tasks", "metadata", "created_at", "checkpoint", "parent_checkpoint", "interrupts",
              "checkpoint_id", "parent_checkpoint_id"}
TASK_KEYS = {"id", "name", "path", "error", "interrupts", "checkpoint", "state", "result"}
# A graceful stop: uvicorn re-raises the SIGTERM it handled once shutdown is done.
STOPPED = (0, -signal.SIGTERM)
COUNTER_ID = "09d6caf4-2ef3-5a8b-b1a7-114690ed5d45"  # the official server's default assistant id for `counter`


pytestmark = pytest.mark.usefixtures("no_server_errors")


async def counted(client: Any, metadata: dict[str, Any] | None = None, count: int = 0) -> str:
    """A thread on which `counter` ran once from `count` (a → b → c, each +1)."""
    thread = await client.threads.create(metadata=metadata)
    assert await client.runs.wait(thread["thread_id"], "counter", input={"count": count}) == {"count": count + 3}
    return thread["thread_id"]


async def checkpoint_with(client: Any, thread_id: str, count: int) -> dict[str, Any]:
    """The newest checkpoint of the thread whose values are {"count": count}."""
    history = await client.threads.get_history(thread_id, limit=100)
    return next(s for s in history if s["values"] == {"count": count})


# create / get / patch / delete -----------------------------------------------------------------
async def test_create_and_get(client: Any) -> None:
    thread = await client.threads.create()
    assert set(thread) == THREAD_KEYS
    assert uuid.UUID(thread["thread_id"])
    assert thread["status"] == "idle" and thread["metadata"] == {}
    assert thread["values"] is None and thread["interrupts"] == {} and thread["error"] is None
    assert is_iso(thread["created_at"]) and is_iso(thread["updated_at"]) and is_iso(thread["state_updated_at"])
    assert await client.threads.get(thread["thread_id"]) == thread


async def test_create_with_id_metadata_and_if_exists(client: Any) -> None:
    thread_id = str(uuid.uuid4())
    created = await client.threads.create(thread_id=thread_id, metadata={"owner": "ann", "n": 1})
    assert created["thread_id"] == thread_id and created["metadata"] == {"owner": "ann", "n": 1}

    with pytest.raises(ConflictError) as exc:
        await client.threads.create(thread_id=thread_id)
    assert exc.value.response.status_code == 409
    assert exc.value.response.json() == {"detail": f"Thread with ID {thread_id} already exists"}
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, if_exists="raise", metadata={"owner": "bob"})

    kept = await client.threads.create(thread_id=thread_id, if_exists="do_nothing", metadata={"owner": "bob"})
    assert kept == created
    assert (await client.threads.get(thread_id))["metadata"] == {"owner": "ann", "n": 1}


async def test_create_refuses_bad_input(client: Any) -> None:
    r = await raw(client, "POST", "/threads", json={"thread_id": "abc"})
    assert r.status_code == 422 and r.json() == {"detail": "Invalid thread ID: must be a UUID"}
    with pytest.raises(UnprocessableEntityError):
        await client.threads.create(thread_id="not-a-uuid")

    for body, field in (({"metadata": "x"}, "metadata"), ({"colour": "blue"}, "colour"),
                        ({"if_exists": "overwrite"}, "if_exists"), ({"thread_id": 5}, "thread_id")):
        r = await raw(client, "POST", "/threads", json=body)
        assert names(r, field), (body, r.text)
    r = await raw(client, "POST", "/threads", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("Invalid JSON in request body")


async def test_create_with_graph_and_supersteps(client: Any) -> None:
    thread = await client.threads.create(
        graph_id="counter", supersteps=[{"updates": [{"values": {"count": 5}, "as_node": "a"}]}],
    )
    assert thread["metadata"] == {"graph_id": "counter"}
    assert thread["values"] == {"count": 5}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"count": 5} and state["next"] == ["b"]
    # The thread continues from the prepared state.
    assert await client.runs.wait(thread["thread_id"], "counter", input=None) == {"count": 7}

    with pytest.raises(BadRequestError) as exc:
        await client.threads.create(graph_id="counter", supersteps=[{"updates": [{"values": {}, "as_node": "zz"}]}])
    assert "zz" in exc.value.response.json()["detail"]


async def test_patch(client: Any) -> None:
    thread = await client.threads.create(metadata={"a": 1, "b": {"x": 1}})
    patched = await client.threads.update(thread["thread_id"], metadata={"b": {"y": 2}, "c": 3})
    # A shallow merge into the existing metadata.
    assert patched["metadata"] == {"a": 1, "b": {"y": 2}, "c": 3}
    assert patched["updated_at"] > thread["updated_at"]
    assert patched["created_at"] == thread["created_at"]
    assert await client.threads.get(thread["thread_id"]) == patched

    r = await raw(client, "PATCH", f"/threads/{thread['thread_id']}", json={"metadata": ["x"]})
    assert r.status_code == 422 and names(r, "metadata")
    r = await raw(client, "PATCH", f"/threads/{thread['thread_id']}", json={"status": "busy"})
    assert r.status_code == 422 and names(r, "status")


async def test_delete_removes_runs_and_checkpoints(client: Any) -> None:
    thread_id = await counted(client)
    assert len(await client.runs.list(thread_id)) == 1
    assert await client.threads.delete(thread_id) is None
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.delete(thread_id)

    # The same id again starts from nothing: no runs and no checkpoints survived.
    again = await client.threads.create(thread_id=thread_id, graph_id="counter")
    assert again["values"] is None
    assert await client.runs.list(thread_id) == []
    assert await client.threads.get_history(thread_id) == []
    assert (await client.threads.get_state(thread_id))["values"] == {}


# search / count --------------------------------------------------------------------------------
@pytest.fixture
async def mixed(client: Any) -> tuple[str, dict[str, str]]:
    """Threads sharing a fresh tag: idle (counter), interrupted (hitl), error (failing), never run."""
    t = tag()
    ids = {"idle": await counted(client, {"suite": t, "kind": "idle", "nested": {"a": 1, "b": 2}}, count=10)}
    hitl = await client.threads.create(metadata={"suite": t, "kind": "interrupted", "flag": True})
    await client.runs.wait(hitl["thread_id"], "hitl", input={"task": t})
    ids["interrupted"] = hitl["thread_id"]
    failing = await client.threads.create(metadata={"suite": t, "kind": "error"})
    result = await client.runs.wait(failing["thread_id"], "failing", input={"x": 1}, raise_error=False)
    assert result["__error__"]["error"] == "ValueError"
    ids["error"] = failing["thread_id"]
    ids["new"] = (await client.threads.create(metadata={"suite": t, "kind": "new", "flag": 1}))["thread_id"]
    return t, ids


async def test_search_by_status_metadata_values_ids(client: Any, mixed: tuple[str, dict[str, str]]) -> None:
    t, ids = mixed
    found = lambda rows: {r["thread_id"] for r in rows}  # noqa: E731
    suite = {"suite": t}

    assert found(await client.threads.search(metadata=suite)) == set(ids.values())
    assert await client.threads.count(metadata=suite) == 4
    assert all(set(r) == THREAD_KEYS for r in await client.threads.search(metadata=suite))

    for status, expected in (("idle", {ids["idle"], ids["new"]}), ("interrupted", {ids["interrupted"]}),
                             ("error", {ids["error"]}), ("busy", set())):
        assert found(await client.threads.search(metadata=suite, status=status)) == expected, status
        assert await client.threads.count(metadata=suite, status=status) == len(expected), status

    # Metadata is containment, recursing into objects; types are exact (True is not 1).
    assert found(await client.threads.search(metadata={**suite, "nested": {"a": 1}})) == {ids["idle"]}
    assert await client.threads.search(metadata={**suite, "nested": {"a": 2}}) == []
    assert found(await client.threads.search(metadata={**suite, "flag": True})) == {ids["interrupted"]}
    assert found(await client.threads.search(metadata={**suite, "flag": 1})) == {ids["new"]}
    # A run adds the graph and assistant to the thread's metadata.
    assert found(await client.threads.search(metadata={**suite, "graph_id": "counter"})) == {ids["idle"]}
    assert found(await client.threads.search(metadata={**suite, "assistant_id": COUNTER_ID})) == {ids["idle"]}

    assert found(await client.threads.search(values={"count": 13})) >= {ids["idle"]}
    assert found(await client.threads.search(metadata=suite, values={"count": 13})) == {ids["idle"]}
    assert found(await client.threads.search(metadata=suite, values={"task": t})) == {ids["interrupted"]}
    assert await client.threads.search(metadata=suite, values={"count": 14}) == []
    assert await client.threads.count(metadata=suite, values={"count": 13}) == 1

    two = [ids["idle"], ids["error"]]
    assert found(await client.threads.search(ids=two)) == set(two)
    assert found(await client.threads.search(ids=two, status="error")) == {ids["error"]}
    assert await client.threads.search(ids=[str(uuid.uuid4())]) == []


async def test_search_busy(client: Any) -> None:
    t = tag()
    thread = await client.threads.create(metadata={"suite": t})
    run = await client.runs.create(thread["thread_id"], "slow", input={"seconds": 30})
    try:
        for _ in range(200):
            if (await client.threads.get(thread["thread_id"]))["status"] == "busy":
                break
            await asyncio.sleep(0.02)
        assert [r["thread_id"] for r in await client.threads.search(metadata={"suite": t}, status="busy")] \
            == [thread["thread_id"]]
        assert await client.threads.count(metadata={"suite": t}, status="busy") == 1
        assert await client.threads.search(metadata={"suite": t}, status="idle") == []
    finally:
        await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)


async def test_search_sort_paginate_select(client: Any) -> None:
    t = tag()
    made = [(await client.threads.create(metadata={"suite": t, "i": i}))["thread_id"] for i in range(3)]
    f = {"metadata": {"suite": t}}
    ids = lambda rows: [r["thread_id"] for r in rows]  # noqa: E731

    assert ids(await client.threads.search(**f)) == made[::-1]  # newest first by default
    assert ids(await client.threads.search(**f, sort_by="created_at", sort_order="asc")) == made
    assert ids(await client.threads.search(**f, sort_by="created_at", sort_order="desc")) == made[::-1]
    assert ids(await client.threads.search(**f, sort_by="thread_id", sort_order="asc")) == sorted(made)
    assert ids(await client.threads.search(**f, sort_by="thread_id", sort_order="desc")) == sorted(made)[::-1]
    await client.threads.update(made[0], metadata={"touched": True})
    assert ids(await client.threads.search(**f, sort_by="updated_at", sort_order="desc"))[0] == made[0]

    assert ids(await client.threads.search(**f, sort_by="created_at", sort_order="asc", limit=2)) == made[:2]
    assert ids(await client.threads.search(**f, sort_by="created_at", sort_order="asc", limit=2, offset=2)) == made[2:]
    assert await client.threads.search(**f, limit=5, offset=3) == []

    rows = await client.threads.search(**f, select=["thread_id", "status"], sort_by="created_at", sort_order="asc")
    assert rows == [{"thread_id": tid, "status": "idle"} for tid in made]


async def test_search_refuses_bad_bodies(client: Any) -> None:
    for body, loc in (({"status": "sleeping"}, "status"), ({"sort_by": "name"}, "sort_by"), ({"limit": 0}, "limit"),
                      ({"offset": -1}, "offset"), ({"metadata": "x"}, "metadata"), ({"ids": "x"}, "ids"),
                      ({"colour": 1}, "colour")):
        r = await raw(client, "POST", "/threads/search", json=body)
        assert r.status_code == 422, body
        assert names(r, loc)
    r = await raw(client, "POST", "/threads/count", json={"limit": 3})
    assert r.status_code == 422 and names(r, "limit")


# copy / prune ----------------------------------------------------------------------------------
async def test_copy(client: Any) -> None:
    source = await counted(client, {"owner": "ann"})
    copy = await client.threads.copy(source)
    new_id = copy["thread_id"]
    assert new_id != source and uuid.UUID(new_id)
    assert copy["values"] == {"count": 3} and copy["status"] == "idle"
    assert copy["metadata"]["owner"] == "ann" and copy["metadata"]["graph_id"] == "counter"
    assert source in copy["metadata"].values()  # the copy names where it came from

    source_history = await client.threads.get_history(source, limit=100)
    copy_history = await client.threads.get_history(new_id, limit=100)
    assert [s["checkpoint_id"] for s in copy_history] == [s["checkpoint_id"] for s in source_history]
    assert [s["values"] for s in copy_history] == [s["values"] for s in source_history]
    assert all(s["checkpoint"]["thread_id"] == new_id for s in copy_history)

    # The two threads go their own ways afterwards.
    assert await client.runs.wait(new_id, "counter", input={"count": 100}) == {"count": 103}
    assert (await client.threads.get_state(source))["values"] == {"count": 3}
    assert (await client.threads.get(source))["values"] == {"count": 3}

    with pytest.raises(NotFoundError):
        await client.threads.copy(str(uuid.uuid4()))


async def test_copy_keeps_an_interrupt(client: Any) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "hitl", input={"task": "t"})
    copy = await client.threads.copy(thread["thread_id"])
    assert copy["status"] == "interrupted"
    assert (await client.threads.get_state(copy["thread_id"]))["next"] == ["review"]
    done = await client.runs.wait(copy["thread_id"], "hitl", command={"resume": "yes"})
    assert done["approved"] is True and done["result"].startswith("Executed:")
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"


async def test_prune(client: Any) -> None:
    keep, drop, untouched = [await counted(client) for _ in range(3)]
    latest = (await client.threads.get_state(keep))["checkpoint_id"]
    assert len(await client.threads.get_history(keep, limit=100)) == 5

    result = await client.threads.prune([keep, str(uuid.uuid4()), "not-a-uuid"], strategy="keep_latest")
    assert result == {"pruned_count": 1}
    history = await client.threads.get_history(keep, limit=100)
    assert [s["checkpoint_id"] for s in history] == [latest]
    state = await client.threads.get_state(keep)
    assert state["values"] == {"count": 3} and state["checkpoint_id"] == latest
    assert (await client.threads.get(keep))["values"] == {"count": 3}
    # A pruned thread keeps working from its latest state.
    await client.threads.update_state(keep, {"count": 40}, as_node="a")
    assert await client.runs.wait(keep, "counter", input=None) == {"count": 42}

    assert await client.threads.prune([drop]) == {"pruned_count": 1}
    with pytest.raises(NotFoundError):
        await client.threads.get(drop)
    assert len(await client.threads.get_history(untouched, limit=100)) == 5

    r = await raw(client, "POST", "/threads/prune", json={"thread_ids": [untouched], "strategy": "shred"})
    assert r.status_code == 422 and names(r, "strategy")
    r = await raw(client, "POST", "/threads/prune", json={})
    assert r.status_code == 422 and names(r, "thread_ids")


# state ----------------------------------------------------------------------------------------
async def test_state_of_a_new_thread(client: Any) -> None:
    # Recorded from the official server: no checkpoint yet is `checkpoint: null` (the official
    # React hook tells a new thread by it), with null metadata — also when the thread already
    # names its graph, and with subgraphs=true.
    empty = {"values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None, "checkpoint": None,
             "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None, "parent_checkpoint_id": None}
    thread = await client.threads.create()
    assert await client.threads.get_state(thread["thread_id"]) == empty
    named = await client.threads.create(metadata={"graph_id": "counter"})
    assert await client.threads.get_state(named["thread_id"]) == empty
    r = await raw(client, "GET", f"/threads/{named['thread_id']}/state", params={"subgraphs": "true"})
    assert r.status_code == 200 and r.json() == empty
    assert await client.threads.get_history(thread["thread_id"]) == []
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread["thread_id"], checkpoint_id=str(uuid.uuid4()))


async def test_latest_state(client: Any) -> None:
    thread_id = await counted(client)
    state = await client.threads.get_state(thread_id)
    assert set(state) == STATE_KEYS
    assert state["values"] == {"count": 3} and state["next"] == [] and state["tasks"] == [] and state["interrupts"] == []
    assert state["checkpoint"]["thread_id"] == thread_id and state["checkpoint"]["checkpoint_ns"] == ""
    assert state["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert state["parent_checkpoint_id"] == state["parent_checkpoint"]["checkpoint_id"]
    assert state["metadata"]["step"] == 3 and state["metadata"]["source"] == "loop"
    assert state["metadata"]["graph_id"] == "counter" and state["metadata"]["assistant_id"] == COUNTER_ID
    assert is_iso(state["created_at"])

    thread = await client.threads.get(thread_id)
    assert thread["values"] == {"count": 3} and thread["status"] == "idle"
    assert thread["metadata"] == {"graph_id": "counter", "assistant_id": COUNTER_ID}


async def test_state_at_a_checkpoint(client: Any) -> None:
    thread_id = await counted(client)
    older = await checkpoint_with(client, thread_id, 1)
    assert older["next"] == ["b"]

    by_id = await client.threads.get_state(thread_id, checkpoint_id=older["checkpoint_id"])
    by_config = await client.threads.get_state(thread_id, checkpoint=older["checkpoint"])
    by_bare_id = await client.threads.get_state(thread_id, checkpoint={"checkpoint_id": older["checkpoint_id"]})
    assert by_id == by_config == by_bare_id == older
    assert by_id["values"] == {"count": 1} and by_id["next"] == ["b"]
    task = by_id["tasks"][0]
    assert set(task) == TASK_KEYS and task["name"] == "b" and task["path"] == ["__pregel_pull", "b"]
    assert task["result"] == {"count": 2}
    # Reading the past changes nothing.
    assert (await client.threads.get_state(thread_id))["values"] == {"count": 3}

    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint_id=str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.threads.get_state(thread_id, checkpoint={"checkpoint_id": str(uuid.uuid4())})
    r = await raw(client, "POST", f"/threads/{thread_id}/state/checkpoint", json={})
    assert r.status_code == 422 and names(r, "checkpoint")
    # The config form the official server takes addresses the same checkpoint; a key that is
    # neither a checkpoint's nor `configurable` is refused by name rather than ignored.
    by_wrapped = await raw(client, "POST", f"/threads/{thread_id}/state/checkpoint",
                           json={"checkpoint": {"configurable": {"checkpoint_id": older["checkpoint_id"]}}})
    assert by_wrapped.json() == older
    r = await raw(client, "POST", f"/threads/{thread_id}/state/checkpoint",
                  json={"checkpoint": {"checkpoint_id": older["checkpoint_id"], "bogus": 1}})
    assert r.status_code == 422 and "bogus" in r.json()["detail"]


async def test_state_with_subgraphs(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "pipeline", input={"value": "x"}, interrupt_before=["child"])

    flat = await client.threads.get_state(tid)
    assert flat["values"] == {"value": "x|parent"} and flat["next"] == ["child"]
    (task,) = flat["tasks"]
    assert task["name"] == "child" and task["state"] is None
    assert task["checkpoint"]["thread_id"] == tid and task["checkpoint"]["checkpoint_ns"].startswith("child:")

    deep = await client.threads.get_state(tid, subgraphs=True)
    (task,) = deep["tasks"]
    assert task["name"] == "child" and task["checkpoint"] is None
    assert set(task["state"]) == STATE_KEYS
    # As on the official server: the subgraph has written no checkpoint yet.
    assert task["state"]["checkpoint"] is None and task["state"]["values"] == {}

    assert await client.runs.wait(tid, "pipeline", input=None) == {"value": "x|parent|child|done"}
    done = await client.threads.get_state(tid, subgraphs=True)
    assert done["next"] == [] and done["tasks"] == []


async def test_interrupted_thread_state(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "hitl", input={"task": "t"})
    (interrupt,) = result["__interrupt__"]
    assert interrupt["value"]["question"] == "Approve this plan?"

    record = await client.threads.get(tid)
    assert record["status"] == "interrupted"
    ((task_id, pending),) = record["interrupts"].items()
    assert pending == [{"id": interrupt["id"], "value": interrupt["value"]}]

    state = await client.threads.get_state(tid)
    assert state["next"] == ["review"]
    assert state["interrupts"] == [{"id": interrupt["id"], "value": interrupt["value"]}]
    (task,) = state["tasks"]
    assert task["id"] == task_id and task["name"] == "review"
    assert task["interrupts"] == state["interrupts"]

    done = await client.runs.wait(tid, "hitl", command={"resume": "yes"})
    assert done["approved"] is True
    record = await client.threads.get(tid)
    assert record["status"] == "idle" and record["interrupts"] == {}
    assert record["values"]["result"].startswith("Executed:")


async def test_thread_values_hold_only_state(client: Any) -> None:
    # The official server's thread object carries the graph state only: the `__interrupt__`
    # key belongs to the /wait answer, not to `values`.
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "hitl", input={"task": "t"})
    record = await client.threads.get(thread["thread_id"])
    state = await client.threads.get_state(thread["thread_id"])
    assert record["values"] == state["values"] == {"task": "t", "plan": "Plan for t: step 1, step 2, done."}


# state updates and history ------------------------------------------------------------------------
async def test_update_state_values(client: Any) -> None:
    thread_id = await counted(client)
    before = await client.threads.get_state(thread_id)
    response = await client.threads.update_state(thread_id, {"count": 100})
    assert set(response) == {"checkpoint"}
    checkpoint = response["checkpoint"]
    assert checkpoint["thread_id"] == thread_id and checkpoint["checkpoint_ns"] == ""

    state = await client.threads.get_state(thread_id)
    assert state["checkpoint_id"] == checkpoint["checkpoint_id"]
    assert state["parent_checkpoint_id"] == before["checkpoint_id"]
    assert state["values"] == {"count": 100}
    assert state["metadata"]["source"] == "update"
    record = await client.threads.get(thread_id)
    assert record["values"] == {"count": 100} and record["status"] == "idle"
    assert record["state_updated_at"] > before["created_at"]


async def test_update_state_as_node(client: Any) -> None:
    thread_id = await counted(client)
    await client.threads.update_state(thread_id, {"count": 10}, as_node="a")
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"count": 10} and state["next"] == ["b"]
    # The run picks up after `a`: b and c still add one each.
    assert await client.runs.wait(thread_id, "counter", input=None) == {"count": 12}

    await client.threads.update_state(thread_id, {"count": 0}, as_node="c")
    assert (await client.threads.get_state(thread_id))["next"] == []


async def test_update_state_from_a_checkpoint(client: Any) -> None:
    thread_id = await counted(client)
    older = await checkpoint_with(client, thread_id, 1)

    by_id = await client.threads.update_state(thread_id, {"count": 50}, checkpoint_id=older["checkpoint_id"])
    state = await client.threads.get_state(thread_id)
    assert state["checkpoint_id"] == by_id["checkpoint"]["checkpoint_id"]
    assert state["parent_checkpoint_id"] == older["checkpoint_id"]
    assert state["values"] == {"count": 50} and state["next"] == ["b"]

    by_config = await client.threads.update_state(thread_id, {"count": 60}, checkpoint=older["checkpoint"])
    state = await client.threads.get_state(thread_id, checkpoint=by_config["checkpoint"])
    assert state["parent_checkpoint_id"] == older["checkpoint_id"] and state["values"] == {"count": 60}
    assert await client.runs.wait(thread_id, "counter", input=None) == {"count": 62}


async def test_update_state_errors(client: Any) -> None:
    thread_id = await counted(client)
    latest = (await client.threads.get_state(thread_id))["checkpoint_id"]

    with pytest.raises(BadRequestError) as exc:
        await client.threads.update_state(thread_id, {"count": 1}, as_node="no_such_node")
    assert "no_such_node" in exc.value.response.json()["detail"]
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread_id, "not a mapping")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        await client.threads.update_state(thread_id, {"count": 1}, checkpoint_id=str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.threads.update_state(thread_id, {"count": 1}, checkpoint={"checkpoint_id": "nope"})
    # None of the refused updates wrote a checkpoint.
    assert (await client.threads.get_state(thread_id))["checkpoint_id"] == latest

    r = await raw(client, "POST", f"/threads/{thread_id}/state", json={"values": {"count": 1}, "node": "a"})
    assert r.status_code == 422 and names(r, "node")
    r = await raw(client, "POST", f"/threads/{thread_id}/state", json={"values": {}, "as_node": 3})
    assert r.status_code == 422 and names(r, "as_node")

    fresh = await client.threads.create()
    with pytest.raises(BadRequestError):
        await client.threads.update_state(fresh["thread_id"], {"count": 1})
    with pytest.raises(NotFoundError):
        await client.threads.update_state(str(uuid.uuid4()), {"count": 1})


async def test_history(client: Any) -> None:
    thread_id = await counted(client)
    await client.threads.update_state(thread_id, {"count": 100})

    history = await client.threads.get_history(thread_id, limit=100)
    assert [s["values"] for s in history] == [{"count": 100}, {"count": 3}, {"count": 2}, {"count": 1}, {"count": 0}, {}]
    assert [s["metadata"]["step"] for s in history] == [4, 3, 2, 1, 0, -1]
    assert [s["metadata"]["source"] for s in history] == ["update", "loop", "loop", "loop", "loop", "input"]
    assert all(set(s) == STATE_KEYS for s in history)
    for newer, older in zip(history, history[1:]):
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]
    assert history[-1]["parent_checkpoint"] is None
    assert history[0] == await client.threads.get_state(thread_id)

    assert [s["values"] for s in await client.threads.get_history(thread_id, limit=2)] == [{"count": 100}, {"count": 3}]
    assert len(await client.threads.get_history(thread_id)) == 6  # default limit 10

    before = history[2]
    by_config = await client.threads.get_history(thread_id, limit=2, before=before["checkpoint"])
    by_id = await client.threads.get_history(thread_id, limit=2, before=before["checkpoint_id"])
    # The official server's form, a checkpoint config (what the JS client sends), and the whole window.
    r = await raw(client, "POST", f"/threads/{thread_id}/history",
                  json={"limit": 2, "before": {"configurable": before["checkpoint"]}})
    assert r.status_code == 200, r.text
    assert [s["values"] for s in by_config] == [s["values"] for s in by_id] == [s["values"] for s in r.json()] \
        == [{"count": 1}, {"count": 0}]
    assert [s["checkpoint_id"] for s in await client.threads.get_history(thread_id, limit=100, before=before["checkpoint"])] \
        == [s["checkpoint_id"] for s in history[3:]]
    assert await client.threads.get_history(thread_id, before=history[-1]["checkpoint"]) == []
    r = await raw(client, "POST", f"/threads/{thread_id}/history", json={"before": {"checkpoint_id": "1f0-unknown"}})
    assert r.status_code == 404, r.text
    r = await raw(client, "POST", f"/threads/{thread_id}/history", json={"before": {"configurable": {}}})
    assert r.status_code == 422 and "before" in r.text, r.text

    assert [s["values"] for s in await client.threads.get_history(thread_id, metadata={"source": "update"})] \
        == [{"count": 100}]
    assert [s["values"] for s in await client.threads.get_history(thread_id, metadata={"step": 1})] == [{"count": 1}]
    assert await client.threads.get_history(thread_id, metadata={"source": "fork"}) == []

    r = await raw(client, "GET", f"/threads/{thread_id}/history")
    assert r.status_code == 200 and r.json() == history
    r = await raw(client, "GET", f"/threads/{thread_id}/history", params={"limit": 2, "before": before["checkpoint_id"]})
    assert [s["values"] for s in r.json()] == [{"count": 1}, {"count": 0}]
    r = await raw(client, "GET", f"/threads/{thread_id}/history", params={"limit": 0})
    assert r.status_code == 422 and names(r, "limit")
    r = await raw(client, "POST", f"/threads/{thread_id}/history", json={"limit": "many"})
    assert r.status_code == 422 and names(r, "limit")


async def test_time_travel(client: Any) -> None:
    thread_id = await counted(client)  # 0 → 3
    older = await checkpoint_with(client, thread_id, 1)  # before b ran in the first run
    assert await client.runs.wait(thread_id, "counter", input={"count": 100}) == {"count": 103}

    # Re-running from the older checkpoint replays b and c on count 1, not on 103.
    assert await client.runs.wait(thread_id, "counter", input=None, checkpoint_id=older["checkpoint_id"]) \
        == {"count": 3}
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"count": 3}
    assert (await client.threads.get(thread_id))["values"] == {"count": 3}

    # The new branch starts with a copy of the older checkpoint (source "fork") hanging off it;
    # the abandoned branch stays in the history.
    history = await client.threads.get_history(thread_id, limit=100)
    assert [s["values"] for s in history[:3]] == [{"count": 3}, {"count": 2}, {"count": 1}]
    fork = history[2]
    assert fork["metadata"]["source"] == "fork" and fork["next"] == ["b"]
    assert fork["parent_checkpoint_id"] == older["checkpoint_id"]
    assert {"count": 103} in [s["values"] for s in history[3:]]
    # The branch point still reads as it did.
    assert (await client.threads.get_state(thread_id, checkpoint_id=older["checkpoint_id"]))["values"] == {"count": 1}


# errors ---------------------------------------------------------------------------------------
async def test_unknown_thread_is_404_everywhere(client: Any) -> None:
    missing = str(uuid.uuid4())
    calls = [
        client.threads.get(missing),
        client.threads.update(missing, metadata={"a": 1}),
        client.threads.delete(missing),
        client.threads.copy(missing),
        client.threads.get_state(missing),
        client.threads.get_state(missing, checkpoint_id=str(uuid.uuid4())),
        client.threads.get_state(missing, checkpoint={"checkpoint_id": str(uuid.uuid4())}),
        client.threads.update_state(missing, {"count": 1}),
        client.threads.get_history(missing),
        client.runs.wait(missing, "counter", input={"count": 0}),
    ]
    for call in calls:
        # The SDK raises its typed NotFoundError for most calls, a plain HTTPStatusError for /wait.
        with pytest.raises(httpx.HTTPStatusError) as exc:
            await call
        assert exc.value.response.status_code == 404
        assert exc.value.response.json() == {"detail": f"Thread with ID {missing} not found"}
    r = await raw(client, "GET", f"/threads/{missing}/history")
    assert r.status_code == 404
    # A malformed id is a 422 naming it, as on the official server, never a crash.
    for path in ("/threads/not-a-uuid", "/threads/not-a-uuid/state", "/threads/not-a-uuid/history"):
        assert (await raw(client, "GET", path)).status_code == 422, path


async def test_unknown_assistant_on_a_thread_is_404(client: Any) -> None:
    thread = await client.threads.create()
    missing = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as exc:
        await client.runs.wait(thread["thread_id"], missing, input={})
    assert exc.value.response.status_code == 404
    assert exc.value.response.json() == {"detail": f"Assistant with ID {missing} not found"}
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


# persistence ----------------------------------------------------------------------------------

async def _everything(client: Any, assistant_id: str, tid: str, interrupted_id: str) -> dict[str, Any]:
    """What a restart must not change, read through the official client."""
    return {
        "assistants": await client.assistants.search(limit=100, sort_by="assistant_id", sort_order="asc"),
        "versions": await client.assistants.get_versions(assistant_id),
        "thread": await client.threads.get(tid),
        "state": await client.threads.get_state(tid),
        "history": await client.threads.get_history(tid, limit=100),
        "interrupted": await client.threads.get(interrupted_id),
        "runs": await client.runs.list(tid),
    }

async def test_restart_keeps_assistants_threads_and_state(fresh_db: Path) -> None:
    first = Server(db=fresh_db).start()
    try:
        client = get_client(url=first.url)
        assistant = await client.assistants.create("counter", metadata={"mine": True}, name="kept")
        assistant = await client.assistants.update(assistant["assistant_id"], name="kept v2")
        thread = await client.threads.create(metadata={"owner": "ann"})
        tid = thread["thread_id"]
        assert await client.runs.wait(tid, assistant["assistant_id"], input={"count": 0}) == {"count": 3}
        await client.threads.update_state(tid, {"count": 7}, as_node="a")
        interrupted = await client.threads.create()
        await client.runs.wait(interrupted["thread_id"], "hitl", input={"task": "t"})
        before = await _everything(client, assistant["assistant_id"], tid, interrupted["thread_id"])
        await client.http.client.aclose()
    finally:
        assert first.stop() in STOPPED

    second = Server(db=fresh_db).start()
    try:
        client = get_client(url=second.url)
        after = await _everything(client, assistant["assistant_id"], tid, interrupted["thread_id"])
        assert after == before
        assert after["state"]["values"] == {"count": 7} and after["state"]["next"] == ["b"]
        assert after["interrupted"]["status"] == "interrupted"
        # Default assistants were not created twice.
        system = [a for a in after["assistants"] if a["metadata"].get("created_by") == "system"]
        assert len(system) == len({a["graph_id"] for a in system})
        # The restored thread keeps running from where it was; the interrupt can be answered.
        assert await client.runs.wait(tid, assistant["assistant_id"], input=None) == {"count": 9}
        done = await client.runs.wait(interrupted["thread_id"], "hitl", command={"resume": "yes"})
        assert done["approved"] is True
        await client.http.client.aclose()
    finally:
        assert second.stop() in STOPPED
