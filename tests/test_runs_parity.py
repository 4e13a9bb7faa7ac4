"""Runs where client code can tell skeino from the official server, compared with `langgraph dev`.

Each test names what it compared: the same request sent with the official SDK to the
official development server (langgraph-api 0.16.7, langgraph 1.2.24) serving this
directory's langgraph.json, and to skeino.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from helpers import raw


# Compared: runs.wait on context_dataclass / context_pydantic / context_typeddict with no
# context, `{}`, `{"model": "x"}`, `{"model": "x", "bogus": 1}` and with only
# config.configurable {"model": "fromcfg", "zzz": 1}; the official server answered exactly
# the values asserted here (TypedDict schemas have no defaults: LangGraph gives None).
DEFAULTS = {"model": "fake:default", "temperature": 0.5}


@pytest.mark.parametrize("graph_id,kind", [("context_dataclass", "DataclassContext"),
                                           ("context_pydantic", "PydanticContext")])
async def test_context_defaults_from_schema(client: Any, graph_id: str, kind: str) -> None:
    for context in (None, {}):
        thread = await client.threads.create()
        extra = {} if context is None else {"context": context}
        result = await client.runs.wait(thread["thread_id"], graph_id, input={}, **extra)
        assert result == {"context": {"kind": kind, **DEFAULTS}}, context
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], graph_id, input={}, context={"model": "x", "bogus": 1})
    assert result == {"context": {"kind": kind, **DEFAULTS, "model": "x"}}
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], graph_id, input={},
                                    config={"configurable": {"model": "fromcfg", "zzz": 1}})
    assert result == {"context": {"kind": kind, **DEFAULTS, "model": "fromcfg"}}


async def test_context_typeddict(client: Any) -> None:
    thread = await client.threads.create()
    assert await client.runs.wait(thread["thread_id"], "context_typeddict", input={}) == {"context": None}
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "context_typeddict", input={},
                                    context={"model": "x", "bogus": 1})
    assert result == {"context": {"kind": "dict", "model": "x"}}


async def test_context_defaults_on_a_stream(client: Any) -> None:
    thread = await client.threads.create()
    chunks = [c async for c in client.runs.stream(thread["thread_id"], "context_dataclass", input={},
                                                    stream_mode="values")]
    assert chunks[-1].data == {"context": {"kind": "DataclassContext", **DEFAULTS}}


# Compared: the official chat UI's Approve/Reject request (`input` {} or {"messages": []}
# beside `command.resume` = {"decisions": [...]}) on the approval graph; the official
# server resumed both and ended with the same messages. It also ignores a non-empty input
# sent with a command (it dropped a new user message); skeino refuses that one instead.
WEATHER = {"messages": [{"role": "user", "content": "weather in Rome"}]}


@pytest.mark.parametrize("empty", [{}, {"messages": []}, None])
async def test_command_with_empty_input_resumes(client: Any, empty: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.wait(tid, "approval", input=WEATHER)
    [request] = first["__interrupt__"]
    assert request["value"]["action_requests"][0]["args"] == {"city": "Rome"}
    assert (await client.threads.get(tid))["status"] == "interrupted"
    resumed = await client.runs.wait(tid, "approval", input=empty, command={"resume": {"decisions": [{"type": "approve"}]}})
    assert [m["type"] for m in resumed["messages"]] == ["human", "ai", "tool", "ai"]
    assert resumed["messages"][-1]["content"] == "The tool answered: It is sunny and 21 degrees in Rome."
    state = await client.threads.get_state(tid)
    assert state["next"] == [] and (await client.threads.get(tid))["status"] == "idle"


async def test_reject_through_stream_with_empty_input(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "approval", input=WEATHER)
    chunks = [c async for c in client.runs.stream(
        tid, "approval", input={"messages": []}, stream_mode="values",
        command={"resume": {"decisions": [{"type": "reject", "message": "not now"}]}})]
    assert [c.event for c in chunks if c.event == "error"] == []
    messages = chunks[-1].data["messages"]
    assert [(m["type"], m["content"]) for m in messages[2:]] == [("tool", "not now"), ("ai", "The tool answered: not now")]


async def test_command_with_real_input_is_refused(client: Any) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "approval", input=WEATHER)
    with pytest.raises(UnprocessableEntityError) as err:
        await client.runs.create(thread["thread_id"], "approval", input={"messages": [{"role": "user", "content": "hi"}]},
                                 command={"resume": {"decisions": [{"type": "approve"}]}})
    assert "'input' and 'command'" in str(err.value)


# Compared: an assistant_id that is neither a UUID nor a graph id on all six run-creating
# routes: the official server answers 422 (the SDK raises UnprocessableEntityError); an
# unknown UUID answers 404 (NotFoundError).
RUN_ROUTES = ["/threads/{tid}/runs", "/threads/{tid}/runs/wait", "/threads/{tid}/runs/stream",
              "/runs", "/runs/wait", "/runs/stream"]


async def test_unknown_assistant_on_run_creation(client: Any) -> None:
    thread = await client.threads.create()
    for route in RUN_ROUTES:
        path = route.format(tid=thread["thread_id"])
        res = await raw(client, "POST", path, json={"assistant_id": "nope", "input": {}})
        assert res.status_code == 422, (path, res.text)
        assert "nope" in res.json()["detail"] and "agent" in res.json()["detail"]
        res = await raw(client, "POST", path, json={"assistant_id": "00000000-0000-0000-0000-00000000000a", "input": {}})
        assert res.status_code == 404, (path, res.text)
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(thread["thread_id"], "nope", input={})
    with pytest.raises(httpx.HTTPStatusError) as err:  # runs.wait raises httpx's error for any status
        await client.runs.wait(None, "nope", input={})
    assert err.value.response.status_code == 422
    with pytest.raises(NotFoundError):
        await client.runs.create(thread["thread_id"], "00000000-0000-0000-0000-00000000000a", input={})
    assert await client.runs.list(thread["thread_id"]) == []


async def wait_for(probe: Any, predicate: Any, timeout: float = 15) -> Any:
    """Poll `probe()` until `predicate(value)`; the value, or AssertionError after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if predicate(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never met; last value: {value}")
        await asyncio.sleep(0.02)


# Compared: cancelling a finished run (plain, wait=true, action=rollback, and through
# POST /runs/cancel with its id): the official server answers 404 every time and the run
# stays `success`. Cancelling `slow` with action=interrupt while it sleeps in `nap` (the
# `before` checkpoint written, next == ["nap"]): run `interrupted`, thread `interrupted`.
async def test_cancel_finished_run_is_404_and_leaves_it(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "counter", input={"count": 0})
    await client.runs.join(tid, run["run_id"])
    for query in ("", "?wait=true", "?action=rollback"):
        res = await raw(client, "POST", f"/threads/{tid}/runs/{run['run_id']}/cancel{query}")
        assert res.status_code == 404, (query, res.text)
        assert isinstance(res.json()["detail"], str)
    with pytest.raises(NotFoundError):
        await client.runs.cancel(tid, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.cancel_many(thread_id=tid, run_ids=[run["run_id"]])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
    assert (await client.threads.get(tid))["values"] == {"count": 3}


async def test_interrupt_leaves_thread_interrupted_when_tasks_remain(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_for(lambda: client.threads.get_state(tid), lambda s: s["next"] == ["nap"])
    # Compared: the official server answers a cancel with wait=true as 200 `{}` (JSON) with
    # Location pointing at the join, for action=interrupt and action=rollback alike.
    res = await raw(client, "POST", f"/threads/{tid}/runs/{run['run_id']}/cancel",
                    params={"wait": "true", "action": "interrupt"})
    assert (res.status_code, res.json()) == (200, {})
    assert res.headers["location"] == f"/threads/{tid}/runs/{run['run_id']}/join"
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(tid))["status"] == "interrupted"
    assert (await client.threads.get_state(tid))["next"] == ["nap"]


# Compared: two counter runs on one thread, then deleting the second and then the first:
# on the official server the state and history go back to what the first run left (same
# checkpoint id), then to no checkpoint at all. (Its thread record keeps the deleted
# run's values; skeino mirrors the remaining state into the record as well.)
async def test_deleting_a_run_deletes_its_checkpoints(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "counter", input={"count": 0})
    await client.runs.join(tid, first["run_id"])
    history_first = await client.threads.get_history(tid, limit=100)
    second = await client.runs.create(tid, "counter", input={"count": 10})
    await client.runs.join(tid, second["run_id"])
    assert (await client.threads.get_state(tid))["values"] == {"count": 13}

    await client.runs.delete(tid, second["run_id"])
    state = await client.threads.get_state(tid)
    assert state["values"] == {"count": 3}
    assert state["checkpoint"]["checkpoint_id"] == history_first[0]["checkpoint"]["checkpoint_id"]
    assert [h["checkpoint"] for h in await client.threads.get_history(tid, limit=100)] \
        == [h["checkpoint"] for h in history_first]
    assert (await client.threads.get(tid))["values"] == {"count": 3}

    await client.runs.delete(tid, first["run_id"])
    assert await client.threads.get_history(tid, limit=100) == []
    assert (await client.threads.get_state(tid))["values"] == {}


# Compared: joining a counter run created with stream_mode values+updates+debug, with
# stream_mode=updates (also as a list, and a live `slow` run): the official server sent
# only `updates` events. It drops `error` events too when they were not asked for;
# skeino still delivers them, so a client learns that its run failed.
async def test_join_stream_delivers_only_requested_modes(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"seconds": 0.3}, stream_mode=["values", "updates", "debug"])
    live = [p.event async for p in client.runs.join_stream(tid, run["run_id"], stream_mode="updates")]
    assert live == ["updates"] * 3
    again = [p.event async for p in client.runs.join_stream(tid, run["run_id"], stream_mode=["updates"],
                                                              last_event_id="-1")]
    assert again == ["updates"] * 3
    failed = await client.runs.create(tid, "failing", input={}, stream_mode=["values", "updates"])
    events = [p.event async for p in client.runs.join_stream(tid, failed["run_id"], stream_mode="updates")]
    assert events == ["error"]


# The official server takes any after_seconds (1e308 left the thread busy for good and
# every later run of it queued behind); skeino's maximum is 30 days (docs/http-api.md).
async def test_after_seconds_has_a_maximum(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    for bad in (1e308, 30 * 24 * 3600 + 1, -1):
        with pytest.raises(UnprocessableEntityError) as err:
            await client.runs.create(tid, "counter", input={"count": 0}, after_seconds=bad)
        assert "after_seconds" in str(err.value)
    res = await raw(client, "POST", f"/threads/{tid}/runs", content=b'{"assistant_id": "counter", "after_seconds": 1e999}',
                    headers={"Content-Type": "application/json"})
    assert res.status_code == 422
    assert await client.runs.list(tid) == []
    assert (await client.threads.get(tid))["status"] == "idle"
    longest = await client.runs.create(tid, "counter", input={"count": 0}, after_seconds=30 * 24 * 3600)
    assert longest["status"] == "pending"
    await client.runs.cancel(tid, longest["run_id"], wait=True)


# Not compared: the official server answers this race the same way by design (one
# survivor); skeino used to leave 1 to 11 runs, some interrupted, and writes of deleted runs.
async def test_concurrent_rollbacks_leave_one_run(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    busy = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_for(lambda: client.runs.get(tid, busy["run_id"]), lambda r: r["status"] == "running")
    # Each run takes seconds, so none can end before the others arrive and supersede it.
    created = await asyncio.gather(*(
        client.runs.create(tid, "slow", input={"seconds": 3 + i / 100}, multitask_strategy="rollback")
        for i in range(1, 11)))
    runs = await wait_for(lambda: client.runs.list(tid, limit=100),
                          lambda rs: all(r["status"] not in ("pending", "running") for r in rs))
    assert len(runs) == 1, [(r["run_id"], r["status"]) for r in runs]
    [survivor] = runs
    assert survivor["status"] == "success" and survivor["run_id"] in {r["run_id"] for r in created}
    seconds = next(r["kwargs"]["input"]["seconds"] for r in created if r["run_id"] == survivor["run_id"])
    assert (await client.threads.get_state(tid))["values"] == {"seconds": seconds, "steps": ["before", "nap", "after"]}
    history = await client.threads.get_history(tid, limit=100)
    assert history and {h["metadata"]["run_id"] for h in history} == {survivor["run_id"]}
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_concurrent_interrupts_leave_one_run_going(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    busy = await client.runs.create(tid, "slow", input={"seconds": 30})
    await wait_for(lambda: client.runs.get(tid, busy["run_id"]), lambda r: r["status"] == "running")
    await asyncio.gather(*(
        client.runs.create(tid, "slow", input={"seconds": 3}, multitask_strategy="interrupt") for _ in range(10)))
    runs = await wait_for(lambda: client.runs.list(tid, limit=100),
                          lambda rs: all(r["status"] not in ("pending", "running") for r in rs))
    assert len(runs) == 11
    assert sorted(r["status"] for r in runs) == ["interrupted"] * 10 + ["success"]
    assert runs[0]["status"] == "success"  # the newest run is the one that ran
    assert (await client.threads.get(tid))["status"] == "idle"
