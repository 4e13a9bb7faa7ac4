"""Runs through the official SDK against a real server: lifecycle, strategies, HITL, stateless."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from helpers import names, raw
from serverproc import Server


async def wait_status(client: Any, thread_id: str, run_id: str, statuses: set[str], timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = await client.runs.get(thread_id, run_id)
        if run["status"] in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stuck in {run['status']}, wanted {statuses}")
        await asyncio.sleep(0.02)


async def wait_values(client: Any, thread_id: str, predicate: Any, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = await client.threads.get_state(thread_id)
        if predicate(state["values"]):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"state never matched: {state['values']}")
        await asyncio.sleep(0.02)


async def test_background_run_then_join(client: Any) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "counter", input={"count": 0})
    assert run["status"] in ("pending", "running", "success")
    assert run["thread_id"] == thread["thread_id"]
    assert run["multitask_strategy"] == "enqueue"
    result = await client.runs.join(thread["thread_id"], run["run_id"])
    assert result == {"count": 3}
    done = await client.runs.get(thread["thread_id"], run["run_id"])
    assert done["status"] == "success"
    t = await client.threads.get(thread["thread_id"])
    assert t["status"] == "idle"
    assert t["metadata"]["graph_id"] == "counter"
    assert t["metadata"]["assistant_id"] == "09d6caf4-2ef3-5a8b-b1a7-114690ed5d45"
    assert t["values"] == {"count": 3}


async def test_run_merges_assistant_config(client: Any) -> None:
    assistant = await client.assistants.create("agent", config={"configurable": {"fake_tokens": 3}})
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], assistant["assistant_id"],
                                    input={"messages": [{"role": "user", "content": "hi"}]})
    assert result["messages"][-1]["content"] == "tok0 tok1 tok2"
    # The run's own config wins over the assistant's.
    result = await client.runs.wait(thread["thread_id"], assistant["assistant_id"],
                                    input={"messages": [{"role": "user", "content": "hi"}]},
                                    config={"configurable": {"fake_tokens": 1}})
    assert result["messages"][-1]["content"] == "tok0"
    runs = await client.runs.list(thread["thread_id"])
    assert [r["assistant_id"] for r in runs] == [assistant["assistant_id"]] * 2


async def test_enqueue_runs_one_at_a_time_in_order(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"seconds": 0.4})
    second = await client.runs.create(tid, "slow", input={"seconds": 0})
    third = await client.runs.create(tid, "slow", input={"seconds": 0})
    await wait_status(client, tid, first["run_id"], {"running"})
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "pending"
    assert (await client.threads.get(tid))["status"] == "busy"
    await client.runs.join(tid, third["run_id"])
    runs = {r["run_id"]: r for r in await client.runs.list(tid)}
    ends = [runs[r["run_id"]]["updated_at"] for r in (first, second, third)]
    assert ends == sorted(ends)
    state = await client.threads.get_state(tid)
    assert state["values"]["steps"] == ["before", "nap", "after"] * 3
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_reject_gives_409_and_writes_nothing(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_status(client, tid, first["run_id"], {"running"})
    with pytest.raises(ConflictError) as err:
        await client.runs.create(tid, "counter", input={"count": 0}, multitask_strategy="reject")
    assert "already running" in err.value.response.json()["detail"]
    assert len(await client.runs.list(tid)) == 1
    await client.runs.cancel(tid, first["run_id"], wait=True)


async def test_interrupt_strategy_keeps_progress(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_values(client, tid, lambda v: v.get("steps") == ["before"])
    second = await client.runs.create(tid, "slow", input={"seconds": 0}, multitask_strategy="interrupt")
    await client.runs.join(tid, second["run_id"])
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "success"
    state = await client.threads.get_state(tid)
    # The first run's finished step stays; the new run starts from the latest checkpoint.
    assert state["values"]["steps"][0] == "before"
    assert state["values"]["steps"][-3:] == ["before", "nap", "after"]


async def test_rollback_strategy_removes_run_and_checkpoints(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_values(client, tid, lambda v: v.get("steps") == ["before"])
    second = await client.runs.create(tid, "slow", input={"seconds": 0}, multitask_strategy="rollback")
    await client.runs.join(tid, second["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, first["run_id"])
    state = await client.threads.get_state(tid)
    assert state["values"]["steps"] == ["before", "nap", "after"]
    history = await client.threads.get_history(tid, limit=100)
    assert {h["metadata"].get("run_id") for h in history} == {second["run_id"]}


async def test_cancel_sleeping_run_is_prompt(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_values(client, tid, lambda v: v.get("steps") == ["before"])
    started = time.monotonic()
    await client.runs.cancel(tid, run["run_id"], wait=True)
    # Far below the 30 s the node sleeps: cancellation interrupts the await itself.
    assert time.monotonic() - started < 5
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(tid))["status"] != "busy"


async def test_cancel_pending_and_bulk_cancel(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"seconds": 30})
    second = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_status(client, tid, first["run_id"], {"running"})
    await client.runs.cancel(tid, second["run_id"])
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "interrupted"
    await client.runs.cancel_many(thread_id=tid, run_ids=[first["run_id"]])
    await wait_status(client, tid, first["run_id"], {"interrupted"})
    t = await client.threads.get(tid)
    assert t["status"] == "interrupted"  # stopped inside `nap`, which is still to run


async def test_resume_after_interrupt(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "hitl", input={"task": "ship"})
    assert result["plan"].startswith("Plan for ship")
    [pending] = result["__interrupt__"]
    assert pending["value"]["question"] == "Approve this plan?"
    t = await client.threads.get(tid)
    assert t["status"] == "interrupted"
    [(task_id, interrupts)] = t["interrupts"].items()
    assert interrupts[0]["id"] == pending["id"]
    state = await client.threads.get_state(tid)
    assert state["next"] == ["review"]
    assert state["tasks"][0]["interrupts"][0]["value"] == pending["value"]
    assert state["interrupts"][0]["id"] == pending["id"]
    result = await client.runs.wait(tid, "hitl", command={"resume": "yes"})
    assert result["result"].startswith("Executed")
    assert "__interrupt__" not in result
    t = await client.threads.get(tid)
    assert t["status"] == "idle" and t["interrupts"] == {}


async def test_resume_several_interrupts_by_id(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "multi_interrupt", input={"answers": []})
    pending = {i["value"]["ask"]: i["id"] for i in result["__interrupt__"]}
    assert set(pending) == {"alice", "bob"}
    result = await client.runs.wait(tid, "multi_interrupt",
                                    command={"resume": {pending["alice"]: "yes", pending["bob"]: "no"}})
    assert sorted(result["answers"]) == ["alice=yes", "bob=no"]
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_strict_resume_refuses_an_answer_to_no_pending_interrupt(client: Any) -> None:
    assert (await client.http.get("/info"))["flags"]["strict_resume"] is True
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "multi_interrupt", input={"answers": []})
    pending = {i["value"]["ask"]: i["id"] for i in result["__interrupt__"]}
    before = await client.threads.get_state(tid)

    unknown = "0" * 32  # shaped like an interrupt id, but not one that is waiting
    result = await client.runs.wait(tid, "multi_interrupt", command={"resume": {unknown: "yes"}}, strict_resume=True,
                                    raise_error=False)
    assert result["__error__"]["error"] == "UnknownInterruptError"
    # A single value while two interrupts wait is ambiguous.
    result = await client.runs.wait(tid, "multi_interrupt", command={"resume": "yes"}, strict_resume=True,
                                    raise_error=False)
    assert result["__error__"]["error"] == "UnknownInterruptError"
    [latest, *_] = await client.runs.list(tid)
    assert latest["status"] == "error"

    # The thread is as it was: still interrupted, same checkpoint, same interrupts.
    t = await client.threads.get(tid)
    assert t["status"] == "interrupted" and t["error"] is None
    assert {i["id"] for items in t["interrupts"].values() for i in items} == set(pending.values())
    after = await client.threads.get_state(tid)
    assert after["checkpoint"]["checkpoint_id"] == before["checkpoint"]["checkpoint_id"]

    # A resume that names the waiting interrupts goes through under strict_resume too.
    result = await client.runs.wait(tid, "multi_interrupt",
                                    command={"resume": {pending["alice"]: "yes", pending["bob"]: "no"}},
                                    strict_resume=True)
    assert sorted(result["answers"]) == ["alice=yes", "bob=no"]
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_command_update_and_goto(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "hitl", input={"task": "ship"})
    result = await client.runs.wait(tid, "hitl", command={"update": {"approved": True}, "goto": "act"})
    assert result["result"].startswith("Executed")


async def test_interrupt_before_and_continue(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "counter", input={"count": 0}, interrupt_before=["b"])
    assert result["count"] == 1
    state = await client.threads.get_state(tid)
    assert state["next"] == ["b"]
    assert (await client.threads.get(tid))["status"] == "interrupted"
    result = await client.runs.wait(tid, "counter", input=None)
    assert result == {"count": 3}
    result = await client.runs.wait(tid, "counter", input={"count": 10}, interrupt_after="*")
    assert result["count"] == 11


async def test_fork_from_older_checkpoint(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input={"count": 0})
    await client.runs.wait(tid, "counter", input={"count": 100})
    history = await client.threads.get_history(tid, limit=100)
    # The checkpoint where the first run had finished (count 3, nothing next).
    older = next(h for h in history if h["values"].get("count") == 3 and not h["next"])
    result = await client.runs.wait(tid, "counter", input=None, checkpoint_id=older["checkpoint"]["checkpoint_id"])
    assert result == {"count": 3}
    forked = await client.runs.wait(tid, "counter", input={"count": 3}, checkpoint_id=older["checkpoint"]["checkpoint_id"])
    assert forked == {"count": 6}
    state = await client.threads.get_state(tid)
    assert state["values"] == {"count": 6}
    assert state["parent_checkpoint"] is not None
    # The checkpoint in its config form forks from the same place.
    wrapped = {"configurable": {"checkpoint_id": older["checkpoint"]["checkpoint_id"]}}
    assert await client.runs.wait(tid, "counter", input={"count": 3}, checkpoint=wrapped) == {"count": 6}


async def test_failing_graph(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    result = await client.runs.wait(tid, "failing", input={"x": 1}, raise_error=False)
    assert result == {"__error__": {"error": "ValueError", "message": "boom"}}
    with pytest.raises(Exception, match="ValueError: boom"):
        await client.runs.wait(tid, "failing", input={"x": 1})
    [run, *_] = await client.runs.list(tid)
    assert run["status"] == "error"
    t = await client.threads.get(tid)
    assert t["status"] == "error"
    assert t["error"]["message"] == "boom"


async def test_stateless_runs(client: Any, server: Server) -> None:
    before = await client.threads.count()
    assert await client.runs.wait(None, "counter", input={"count": 1}) == {"count": 4}
    run = await client.runs.create(None, "counter", input={"count": 0}, on_completion="keep")
    assert await client.runs.join(run["thread_id"], run["run_id"]) == {"count": 3}
    kept = await client.threads.get(run["thread_id"])
    assert kept["values"] == {"count": 3}
    # The throwaway thread of the first run is gone; the kept one stays.
    assert await client.threads.count() == before + 1
    async with httpx.AsyncClient(base_url=server.url) as http:
        res = await http.post("/runs/batch", json=[
            {"assistant_id": "counter", "input": {"count": i}, "on_completion": "keep"} for i in range(3)])
        assert res.status_code == 200
        batch = res.json()
    assert len(batch) == 3
    for i, r in enumerate(batch):
        assert await client.runs.join(r["thread_id"], r["run_id"]) == {"count": i + 3}


async def test_if_not_exists(client: Any) -> None:
    import uuid

    tid = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as err:
        await client.runs.wait(tid, "counter", input={"count": 0})
    assert err.value.response.status_code == 404
    result = await client.runs.wait(tid, "counter", input={"count": 0}, if_not_exists="create")
    assert result == {"count": 3}
    assert (await client.threads.get(tid))["thread_id"] == tid


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_after_seconds_delays_start(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "counter", input={"count": 0}, after_seconds=0.6)
    assert await client.runs.join(tid, run["run_id"]) == {"count": 3}
    # The server's own clocks say when it started: its first checkpoint, 0.6 s after creation at the earliest.
    history = await client.threads.get_history(tid, limit=100)
    started = min(_ts(h["created_at"]) for h in history)
    assert (started - _ts(run["created_at"])).total_seconds() >= 0.59


async def test_durability_exit_checkpoints_only_the_end(client: Any) -> None:
    lengths = {}
    for durability in ("exit", "async", "sync"):
        tid = (await client.threads.create())["thread_id"]
        assert await client.runs.wait(tid, "counter", input={"count": 0}, durability=durability) == {"count": 3}
        history = await client.threads.get_history(tid, limit=100)
        lengths[durability] = [h["metadata"]["step"] for h in history]
        assert history[0]["values"] == {"count": 3} and history[0]["next"] == []
    # `exit` writes the final checkpoint only; the others one per step (input, a, b, c).
    assert lengths == {"exit": [3], "async": [3, 2, 1, 0, -1], "sync": [3, 2, 1, 0, -1]}
    tid = (await client.threads.create())["thread_id"]
    res = await raw(client, "POST", f"/threads/{tid}/runs", json={"assistant_id": "counter", "durability": "never"})
    assert res.status_code == 422


async def test_max_concurrent_runs_keeps_the_rest_pending(fresh_db: Path) -> None:
    server = Server(db=fresh_db, env={"SKEINO_MAX_CONCURRENT_RUNS": "1"}).start()
    try:
        client = get_client(url=server.url)
        a = (await client.threads.create())["thread_id"]
        b = (await client.threads.create())["thread_id"]
        first = await client.runs.create(a, "slow", input={"seconds": 60})
        await wait_status(client, a, first["run_id"], {"running"})
        second = await client.runs.create(b, "counter", input={"count": 0})
        # Another thread, but the only slot is taken: it waits however long we look.
        with pytest.raises(AssertionError, match="stuck in pending"):
            await wait_status(client, b, second["run_id"], {"running", "success", "error"}, timeout=1)
        await client.runs.cancel(a, first["run_id"], wait=True)
        assert await client.runs.join(b, second["run_id"]) == {"count": 3}
        # It started only once the first had ended, by the server's clocks.
        ended = _ts((await client.runs.get(a, first["run_id"]))["updated_at"])
        history = await client.threads.get_history(b, limit=100)
        assert min(_ts(h["created_at"]) for h in history) >= ended
        await client.http.client.aclose()
    finally:
        server.stop()


async def test_cancel_with_rollback_deletes_the_run_and_what_it_wrote(client: Any) -> None:
    tid = (await client.threads.create())["thread_id"]
    kept = await client.runs.create(tid, "slow", input={"seconds": 0})
    await client.runs.join(tid, kept["run_id"])
    running = await client.runs.create(tid, "slow", input={"seconds": 30})
    pending = await client.runs.create(tid, "slow", input={"seconds": 0})
    await wait_values(client, tid, lambda v: v.get("steps") == ["before", "nap", "after", "before"])
    await client.runs.cancel(tid, pending["run_id"], action="rollback")
    await client.runs.cancel(tid, running["run_id"], wait=True, action="rollback")
    for gone in (running, pending):
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, gone["run_id"])
    assert [r["run_id"] for r in await client.runs.list(tid)] == [kept["run_id"]]
    # The state is as the earlier run left it; the rolled-back run's checkpoints are gone.
    assert (await client.threads.get_state(tid))["values"]["steps"] == ["before", "nap", "after"]
    history = await client.threads.get_history(tid, limit=100)
    assert {h["metadata"].get("run_id") for h in history} == {kept["run_id"]}
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_bulk_cancel_by_status(fresh_db: Path) -> None:
    # Its own server: a cancel by status reaches every thread's runs.
    server = Server(db=fresh_db).start()
    try:
        client = get_client(url=server.url)
        a = (await client.threads.create())["thread_id"]
        b = (await client.threads.create())["thread_id"]
        running = await client.runs.create(a, "slow", input={"seconds": 60})
        behind = await client.runs.create(a, "counter", input={"count": 0})
        delayed = await client.runs.create(b, "counter", input={"count": 0}, after_seconds=600)
        await wait_status(client, a, running["run_id"], {"running"})

        await client.runs.cancel_many(status="pending")
        assert (await client.runs.get(a, behind["run_id"]))["status"] == "interrupted"
        assert (await client.runs.get(b, delayed["run_id"]))["status"] == "interrupted"
        assert (await client.runs.get(a, running["run_id"]))["status"] == "running"
        assert (await client.threads.get(b))["status"] == "idle"

        queued = await client.runs.create(a, "counter", input={"count": 0})
        await client.runs.cancel_many(status="running")
        await wait_status(client, a, running["run_id"], {"interrupted"})
        # The pending run was left alone and now runs.
        assert await client.runs.join(a, queued["run_id"]) == {"count": 3}
        assert (await client.runs.get(a, queued["run_id"]))["status"] == "success"

        last = await client.runs.create(a, "slow", input={"seconds": 60})
        after = await client.runs.create(b, "counter", input={"count": 0}, after_seconds=600)
        await wait_status(client, a, last["run_id"], {"running"})
        await client.runs.cancel_many(status="all")
        await wait_status(client, a, last["run_id"], {"interrupted"})
        assert (await client.runs.get(b, after["run_id"]))["status"] == "interrupted"
        assert await client.threads.count(status="busy") == 0
        await client.http.client.aclose()
    finally:
        server.stop()


async def test_delete_run(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    slow = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_status(client, tid, slow["run_id"], {"running"})
    with pytest.raises(ConflictError):
        await client.runs.delete(tid, slow["run_id"])
    await client.runs.cancel(tid, slow["run_id"], wait=True)
    await client.runs.delete(tid, slow["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, slow["run_id"])


async def test_list_runs_paginates_newest_first(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    ids = [(await client.runs.create(tid, "counter", input={"count": i}))["run_id"] for i in range(3)]
    await client.runs.join(tid, ids[-1])
    listed = await client.runs.list(tid, limit=2)
    assert [r["run_id"] for r in listed] == ids[::-1][:2]
    assert [r["run_id"] for r in await client.runs.list(tid, limit=2, offset=2)] == ids[:1]
    assert [r["run_id"] for r in await client.runs.list(tid, status="success")] == ids[::-1]


async def test_errors_and_headers(server: Server, client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    async with httpx.AsyncClient(base_url=server.url) as http:
        res = await http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "counter", "input": {"count": 0}})
        assert res.status_code == 200
        run_path = res.headers["content-location"]
        assert run_path.startswith(f"/threads/{tid}/runs/")
        assert res.headers["location"] == f"{run_path}/join"
        res = await http.post(f"/threads/{tid}/runs", json={"input": {}})
        assert res.status_code == 422
        assert names(res, "assistant_id")
        res = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "counter", "input": {"count": 1}, "command": {"resume": 1}})
        assert res.status_code == 422
        assert "both" in res.json()["detail"]
        res = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "counter", "bogus": 1})
        assert res.status_code == 422 and names(res, "bogus")
        res = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "counter", "webhook": "http://127.0.0.1:1/x"})
        assert res.status_code == 422 and "loopback" in res.json()["detail"]
        res = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "00000000-0000-0000-0000-00000000000a"})
        assert res.status_code == 404
        res = await http.get(f"/threads/{tid}/runs/00000000-0000-0000-0000-000000000000")
        assert res.status_code == 404
        res = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "counter", "stream_mode": "bogus"})
        assert res.status_code == 422
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(tid, "counter", input={"count": 0}, multitask_strategy="sometimes")
