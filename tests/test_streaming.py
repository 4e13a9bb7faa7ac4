"""The SSE wire format of every stream mode, resumable streams, disconnects and heartbeats.

Event names and payload shapes are checked against what the official server sends for
the same graphs (see docs/streaming.md). Most tests go through the official
`langgraph-sdk` client; the ones where the bytes matter read the raw SSE text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
import pytest
from langgraph_sdk import get_client

from serverproc import Server

HI = {"messages": [{"role": "user", "content": "hi"}]}
WEATHER = {"messages": [{"role": "user", "content": "what is the weather in Paris"}]}
NS = re.compile(r"^child:[0-9a-f-]{36}$")

# Keys every serialised message carries, exactly as in the official server's output.
AI_KEYS = {"content", "additional_kwargs", "response_metadata", "type", "name", "id", "tool_calls",
           "invalid_tool_calls", "usage_metadata"}
CHUNK_KEYS = AI_KEYS | {"tool_call_chunks", "chunk_position"}
TASK_KEYS = {"id", "name", "input", "triggers", "metadata"}
TASK_RESULT_KEYS = {"id", "name", "error", "result", "interrupts"}
CHECKPOINT_KEYS = {"config", "parent_config", "values", "metadata", "next", "tasks"}


@dataclass
class Frame:
    """One SSE block as it was on the wire."""

    event: str | None
    data: Any
    id: str | None
    comments: list[str]


def parse_sse(text: str) -> list[Frame]:
    """Split SSE text into blocks; comment-only blocks (heartbeats) are kept too."""
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        event = data = eid = None
        comments: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "data":
                data = json.loads(value)
            elif field == "id":
                eid = value
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        frames.append(Frame(event, data, eid, comments))
    return frames


def events_of(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.event is not None]


async def collect(parts: AsyncIterator[Any]) -> list[Any]:
    return [p async for p in parts]


def names(parts: list[Any]) -> list[str]:
    return [p.event for p in parts]


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def run_status(client: Any, thread_id: str, run_id: str) -> str:
    return (await client.runs.get(thread_id, run_id))["status"]


async def stream(client: Any, assistant: str, inp: Any, **kwargs: Any) -> tuple[str, list[Any]]:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], assistant, input=inp, **kwargs))
    return thread["thread_id"], parts


# Many tokens with a delay: a run that streams long enough to disconnect in the middle.
SLOW_TOKENS = {"configurable": {"fake_tokens": 20, "fake_token_delay": 0.03}}


# ---------------------------------------------------------------------------------------
# one stream mode at a time
# ---------------------------------------------------------------------------------------
async def test_values(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode="values")
    assert names(parts) == ["metadata", "values", "values"]
    assert set(parts[0].data) == {"run_id", "attempt"} and parts[0].data["attempt"] == 1
    assert [m["content"] for m in parts[1].data["messages"]] == ["hi"]
    human, ai = parts[2].data["messages"]
    assert human["type"] == "human" and human["id"] == parts[1].data["messages"][0]["id"]
    assert ai["type"] == "ai" and ai["content"] == "You said: hi"
    assert set(ai) == AI_KEYS


async def test_values_is_the_default_mode(client: Any) -> None:
    thread = await client.threads.create()
    async with httpx.AsyncClient(base_url=client.http.client.base_url) as http:
        r = await http.post(f"/threads/{thread['thread_id']}/runs/stream", json={"assistant_id": "agent", "input": HI})
    assert [f.event for f in parse_sse(r.text)] == ["metadata", "values", "values"]


async def test_updates(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode="updates")
    assert names(parts) == ["metadata", "updates"]
    (node, update), = parts[1].data.items()
    assert node == "agent"
    (ai,) = update["messages"]
    assert ai["content"] == "You said: hi" and set(ai) == AI_KEYS


async def test_messages_tuple_streams_tokens_with_metadata(client: Any) -> None:
    thread_id, parts = await stream(client, "agent", HI, stream_mode="messages-tuple")
    run_id = parts[0].data["run_id"]
    assert names(parts)[0] == "metadata"
    tokens = parts[1:]
    assert len(tokens) >= 5 and set(names(tokens)) == {"messages"}
    text = ""
    for part in tokens:
        chunk, meta = part.data  # the event's data is the [message chunk, metadata] pair
        assert chunk["type"] == "AIMessageChunk" and set(chunk) == CHUNK_KEYS
        assert chunk["id"] == tokens[0].data[0]["id"]
        text += chunk["content"]
        assert meta["langgraph_node"] == "agent"
        assert meta["langgraph_step"] == 1
        assert meta["langgraph_triggers"] == ["branch:to:agent"]
        assert meta["langgraph_path"] == ["__pregel_pull", "agent"]
        assert meta["langgraph_checkpoint_ns"].startswith("agent:")
        assert meta["thread_id"] == thread_id and meta["run_id"] == run_id
        assert meta["graph_id"] == "agent" and meta["run_attempt"] == 1 and "langgraph_version" in meta
    assert text == "You said: hi"


async def test_messages_tuple_with_a_tool_call(client: Any) -> None:
    _, parts = await stream(client, "agent", WEATHER, stream_mode="messages-tuple")
    messages = [p.data[0] for p in parts[1:]]
    nodes = [p.data[1]["langgraph_node"] for p in parts[1:]]
    call_chunks = [m for m in messages if m.get("tool_call_chunks")]
    assert call_chunks and call_chunks[0]["tool_call_chunks"][0]["name"] == "get_weather"
    # The tool node's result is a whole message, sent once.
    tool = [(m, n) for m, n in zip(messages, nodes) if m["type"] == "tool"]
    assert len(tool) == 1 and tool[0][1] == "tools"
    assert tool[0][0]["content"] == "It is sunny and 21 degrees in Paris."
    answer = "".join(m["content"] for m, n in zip(messages, nodes) if n == "agent" and m["type"] == "AIMessageChunk")
    assert answer == "The tool answered: It is sunny and 21 degrees in Paris."


async def test_legacy_messages_mode(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode="messages")
    assert names(parts)[:2] == ["metadata", "messages/metadata"]
    assert set(names(parts)[2:]) == {"messages/partial"}
    (msg_id, info), = parts[1].data.items()
    assert info["metadata"]["langgraph_node"] == "agent"
    contents = []
    for part in parts[2:]:
        (message,) = part.data
        assert message["id"] == msg_id and message["type"] == "ai" and set(message) == AI_KEYS
        contents.append(message["content"])
    # Each event holds the whole message so far.
    assert contents[-1] == "You said: hi"
    assert all(later.startswith(earlier) for earlier, later in zip(contents, contents[1:]))
    assert contents[0] == "You"


async def test_legacy_messages_mode_sends_whole_messages_as_complete(client: Any) -> None:
    _, parts = await stream(client, "agent", WEATHER, stream_mode="messages")
    events = names(parts)
    assert events.count("messages/complete") == 1
    at = events.index("messages/complete")
    assert events[at - 1] == "messages/metadata"  # a new message: its metadata first
    (tool,) = parts[at].data
    assert tool["type"] == "tool" and tool["content"] == "It is sunny and 21 degrees in Paris."
    assert events.count("messages/metadata") == 3  # tool call, tool result, answer


async def test_messages_and_messages_tuple_together_send_tuples_only(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode=["messages", "messages-tuple"])
    assert set(names(parts)) == {"metadata", "messages"}


async def test_events(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode="events")
    run_id = parts[0].data["run_id"]
    assert set(names(parts[1:])) == {"events"}
    items = [p.data for p in parts[1:]]
    for item in items:
        assert {"event", "data", "name", "tags", "run_id", "metadata", "parent_ids"} <= set(item)
        assert "langsmith:hidden" not in item["tags"]
    first, last = items[0], items[-1]
    # The root run is the run itself, named after the graph.
    assert (first["event"], first["name"], first["run_id"], first["parent_ids"]) == ("on_chain_start", "agent", run_id, [])
    assert first["data"] == {"input": HI}
    assert (last["event"], last["name"], last["run_id"]) == ("on_chain_end", "agent", run_id)
    assert last["data"]["output"]["messages"][-1]["content"] == "You said: hi"
    # The root run's own stream chunks feed the other modes and are not events.
    assert not [i for i in items if i["event"] == "on_chain_stream" and i["run_id"] == run_id]
    kinds = [i["event"] for i in items]
    assert kinds[:3] == ["on_chain_start", "on_chain_start", "on_chat_model_start"]
    assert "on_chat_model_end" in kinds
    tokens = [i["data"]["chunk"]["content"] for i in items if i["event"] == "on_chat_model_stream"]
    assert "".join(tokens) == "You said: hi"
    node = items[1]
    assert node["name"] == "agent" and node["tags"] == ["graph:step:1"] and node["parent_ids"] == [run_id]
    assert node["metadata"]["langgraph_node"] == "agent"


async def test_events_with_other_modes(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode=["events", "values"])
    events = names(parts)
    assert events[0] == "metadata" and events.count("values") == 2 and set(events[1:]) == {"events", "values"}
    assert events[1] == "events" and events[2] == "values"  # graph start, then the input values
    assert parts[-2].event == "values" and parts[-1].data["event"] == "on_chain_end"


async def test_debug(client: Any) -> None:
    thread_id, parts = await stream(client, "agent", HI, stream_mode="debug")
    assert names(parts) == ["metadata"] + ["debug"] * 5
    items = [p.data for p in parts[1:]]
    assert [(i["type"], i["step"]) for i in items] == [
        ("checkpoint", -1), ("checkpoint", 0), ("task", 1), ("task_result", 1), ("checkpoint", 1)]
    for item in items:
        assert set(item) == {"step", "timestamp", "type", "payload"}
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$", item["timestamp"])
    first, second, task, result, last = (i["payload"] for i in items)
    for cp in (first, second, last):
        assert set(cp) == CHECKPOINT_KEYS | {"checkpoint", "parent_checkpoint"}
        conf = cp["config"]["configurable"]
        assert cp["checkpoint"] == {"checkpoint_id": conf["checkpoint_id"], "thread_id": thread_id, "checkpoint_ns": ""}
    assert first["parent_config"] is None and first["parent_checkpoint"] is None
    assert second["parent_checkpoint"] == first["checkpoint"]
    assert last["parent_checkpoint"] == second["checkpoint"]
    assert first["next"] == ["__start__"] and second["next"] == ["agent"] and last["next"] == []
    assert first["metadata"] == {"source": "input", "step": -1, "parents": {}}
    assert set(task) == TASK_KEYS and task["name"] == "agent" and task["triggers"] == ["branch:to:agent"]
    assert set(result) == TASK_RESULT_KEYS and result["id"] == task["id"] and result["error"] is None
    assert result["result"]["messages"][0]["content"] == "You said: hi"


async def test_checkpoints(client: Any) -> None:
    thread_id, parts = await stream(client, "agent", HI, stream_mode="checkpoints")
    assert names(parts) == ["metadata", "checkpoints", "checkpoints", "checkpoints"]
    items = [p.data for p in parts[1:]]
    for item in items:
        assert set(item) == CHECKPOINT_KEYS  # no `checkpoint`/`parent_checkpoint`: those are debug's
        assert item["config"]["configurable"]["thread_id"] == thread_id
    assert [i["metadata"]["step"] for i in items] == [-1, 0, 1]
    assert items[1]["parent_config"]["configurable"]["checkpoint_id"] == items[0]["config"]["configurable"]["checkpoint_id"]
    assert items[1]["tasks"] == [{"id": items[1]["tasks"][0]["id"], "name": "agent", "interrupts": [], "state": None}]
    assert items[2]["values"]["messages"][-1]["content"] == "You said: hi"


async def test_tasks(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode="tasks")
    assert names(parts) == ["metadata", "tasks", "tasks"]
    start, end = parts[1].data, parts[2].data
    assert set(start) == TASK_KEYS and set(end) == TASK_RESULT_KEYS
    assert start["id"] == end["id"] and start["name"] == end["name"] == "agent"
    assert start["input"]["messages"][0]["content"] == "hi"
    assert start["metadata"]["graph_id"] == "agent" and start["metadata"]["run_id"] == parts[0].data["run_id"]
    assert end["error"] is None and end["interrupts"] == []


async def test_custom(client: Any) -> None:
    _, parts = await stream(client, "writer", {}, stream_mode="custom")
    assert names(parts) == ["metadata", "custom", "custom", "custom"]
    assert [p.data for p in parts[1:]] == [{"progress": 0}, {"progress": 1}, {"progress": 2}]


async def test_custom_with_updates_keeps_the_order_of_the_graph(client: Any) -> None:
    _, parts = await stream(client, "writer", {}, stream_mode=["custom", "updates"])
    assert names(parts) == ["metadata", "custom", "custom", "custom", "updates"]
    assert parts[-1].data == {"emit": {"done": True}}


async def test_several_modes_at_once(client: Any) -> None:
    _, parts = await stream(client, "agent", HI, stream_mode=["values", "updates", "messages-tuple"])
    events = names(parts)
    tokens = events.count("messages")
    assert tokens >= 5
    assert events == ["metadata", "values"] + ["messages"] * tokens + ["updates", "values"]


async def test_every_mode_at_once(client: Any) -> None:
    modes = ["values", "updates", "messages-tuple", "custom", "debug", "checkpoints", "tasks", "events"]
    _, parts = await stream(client, "writer", {}, stream_mode=modes)
    events = names(parts)
    assert events[0] == "metadata"
    assert {e for e in events[1:]} == {"values", "updates", "custom", "debug", "checkpoints", "tasks", "events"}
    assert events.count("custom") == 3 and events.count("checkpoints") == 3 and events.count("tasks") == 2
    # An empty input is no state yet: only the final values.
    assert events.count("debug") == 5 and events.count("values") == 1 and events.count("updates") == 1


async def test_interrupts_reach_values_and_updates(client: Any) -> None:
    _, parts = await stream(client, "hitl", {"task": "ship"}, stream_mode=["values", "updates"])
    assert names(parts) == ["metadata", "values", "updates", "values", "updates", "values"]
    (pending,) = parts[4].data["__interrupt__"]
    assert pending["value"]["question"] == "Approve this plan?"
    # useStream reads a run's pending interrupts from the last values event.
    assert parts[5].data["__interrupt__"] == [pending]
    assert parts[5].data["plan"].startswith("Plan for ship")


async def test_sdk_v2_stream_parts(client: Any) -> None:
    thread = await client.threads.create()
    parts = await collect(client.runs.stream(thread["thread_id"], "pipeline", input={"value": "x"},
                                             stream_mode="updates", stream_subgraphs=True, version="v2"))
    child = [p for p in parts if p["ns"]]
    assert [p["type"] for p in child] == ["updates"] and NS.match(child[0]["ns"][0])
    assert child[0]["data"] == {"child_step": {"value": "x|parent|child"}}


# ---------------------------------------------------------------------------------------
# subgraphs and errors
# ---------------------------------------------------------------------------------------
async def test_subgraph_events_are_named_mode_and_namespace(client: Any) -> None:
    _, parts = await stream(client, "pipeline", {"value": "x"}, stream_mode=["values", "updates", "custom"],
                            stream_subgraphs=True)
    events = names(parts)
    child = {e.split("|", 1)[1] for e in events if "|" in e}
    assert len(child) == 1
    (ns,) = child
    assert NS.match(ns)
    assert events == [
        "metadata",
        "values", "updates", "values",
        f"values|{ns}", f"custom|{ns}", f"updates|{ns}", f"values|{ns}",
        "updates", "values",
        "updates", "values",
    ]
    data = [p.data for p in parts]
    assert data[2] == {"parent_step": {"value": "x|parent"}}
    assert data[4] == {"value": "x|parent"}
    assert data[5] == {"progress": "child working"}
    assert data[6] == {"child_step": {"value": "x|parent|child"}}
    assert data[8] == {"child": {"value": "x|parent|child"}}
    assert data[-1] == {"value": "x|parent|child|done"}


async def test_without_stream_subgraphs_nothing_comes_from_inside(client: Any) -> None:
    _, parts = await stream(client, "pipeline", {"value": "x"}, stream_mode=["values", "updates", "custom"])
    assert names(parts) == ["metadata"] + ["values", "updates"] * 3 + ["values"]


async def test_subgraph_debug_tasks_point_at_the_subgraph_checkpoint(client: Any) -> None:
    thread_id, parts = await stream(client, "pipeline", {"value": "x"}, stream_mode="debug", stream_subgraphs=True)
    parent_checkpoints = [p.data["payload"] for p in parts if p.event == "debug" and p.data["type"] == "checkpoint"]
    (before_child,) = [cp for cp in parent_checkpoints if cp["next"] == ["child"]]
    (task,) = before_child["tasks"]
    assert "state" not in task
    assert task["checkpoint"]["thread_id"] == thread_id and task["checkpoint"]["checkpoint_ns"].startswith("child:")
    inner = [p.data["payload"] for p in parts if p.event.startswith("debug|") and p.data["type"] == "checkpoint"]
    assert inner and all(cp["checkpoint"]["checkpoint_ns"].startswith("child:") for cp in inner)
    assert all("checkpoint_map" in cp["checkpoint"] for cp in inner)


async def test_error_event_ends_the_stream(client: Any) -> None:
    thread_id, parts = await stream(client, "failing", {"x": 1})
    assert names(parts) == ["metadata", "values", "error"]
    assert parts[1].data == {"x": 1}
    assert parts[2].data == {"error": "ValueError", "message": "boom"}
    run = (await client.runs.list(thread_id))[0]
    assert run["status"] == "error"


async def test_error_event_in_every_mode(client: Any) -> None:
    _, parts = await stream(client, "failing", {"x": 1}, stream_mode=["updates", "tasks", "events"])
    assert parts[-1].event == "error" and parts[-1].data == {"error": "ValueError", "message": "boom"}
    assert names(parts).count("error") == 1
    (result,) = [p.data for p in parts if p.event == "tasks" and "error" in p.data]
    assert result["error"] and "boom" in json.dumps(result["error"])


# ---------------------------------------------------------------------------------------
# the bytes on the wire
# ---------------------------------------------------------------------------------------
async def test_wire_format_ids_and_headers(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        r = await http.post(f"/threads/{thread_id}/runs/stream",
                            json={"assistant_id": "agent", "input": HI, "stream_mode": ["messages-tuple", "updates"]})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    frames = events_of(parse_sse(r.text))
    run_id = frames[0].data["run_id"]
    assert r.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert r.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    # Every event has an id; ids count up from 0 without gaps.
    assert [f.id for f in frames] == [str(i) for i in range(len(frames))]
    # Each block is exactly `event:`, `data:` (compact one-line JSON), `id:`.
    blocks = [b for b in r.text.split("\n\n") if b]
    assert len(blocks) == len(frames)
    for block, frame in zip(blocks, frames):
        lines = block.split("\n")
        assert [line.split(":", 1)[0] for line in lines] == ["event", "data", "id"]
        assert lines[1] == "data: " + json.dumps(frame.data, separators=(",", ":"), ensure_ascii=False)


async def test_stateless_stream(client: Any) -> None:
    parts = await collect(client.runs.stream(None, "agent", input=HI, stream_mode="updates"))
    assert names(parts) == ["metadata", "updates"]
    assert parts[1].data["agent"]["messages"][0]["content"] == "You said: hi"


# ---------------------------------------------------------------------------------------
# joining, replay and resumption
# ---------------------------------------------------------------------------------------
async def test_join_after_the_run_ended_replays_it(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "agent", input=HI, stream_mode=["values", "updates"])
    await client.runs.join(tid, run["run_id"])
    full = await collect(client.runs.join_stream(tid, run["run_id"], last_event_id="-1"))
    assert names(full) == ["metadata", "values", "updates", "values"]
    assert full[0].data["run_id"] == run["run_id"]
    tail = await collect(client.runs.join_stream(tid, run["run_id"], last_event_id="1"))
    assert [(p.event, p.data) for p in tail] == [(p.event, p.data) for p in full[2:]]
    # A filter keeps only the requested modes, as the official server's join does (compared
    # with langgraph dev: stream_mode=updates gave only `updates` events); errors always pass.
    only_updates = await collect(client.runs.join_stream(tid, run["run_id"], stream_mode="updates"))
    assert names(only_updates) == ["updates"]
    both = await collect(client.runs.join_stream(tid, run["run_id"], stream_mode=["metadata", "updates"]))
    assert names(both) == ["metadata", "updates"]
    async with httpx.AsyncClient(base_url=client.http.client.base_url) as http:
        r = await http.get(f"/threads/{tid}/runs/{run['run_id']}/stream", params={"stream_mode": '["values"]'})
    assert [f.event for f in parse_sse(r.text)] == ["values", "values"]


async def _read_events(http: httpx.AsyncClient, method: str, url: str, count: int,
                       **kwargs: Any) -> tuple[list[Frame], httpx.Headers]:
    """Read `count` events, then drop the connection."""
    frames: list[Frame] = []
    buffer = ""
    async with http.stream(method, url, **kwargs) as r:
        assert r.status_code == 200, await r.aread()
        async for text in r.aiter_text():
            buffer += text.replace("\r\n", "\n")
            *blocks, buffer = buffer.split("\n\n")
            frames += events_of(parse_sse("\n\n".join(blocks)))
            if len(frames) >= count:
                return frames[:count], r.headers
    raise AssertionError(f"stream ended after {len(frames)} events")


async def test_resume_mid_stream_with_last_event_id(client: Any, server: Server) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        first, headers = await _read_events(
            http, "POST", f"/threads/{thread_id}/runs/stream", 4,
            json={"assistant_id": "agent", "input": HI, "stream_mode": "messages-tuple", "stream_resumable": True,
                  "config": SLOW_TOKENS})
        run_id = first[0].data["run_id"]
        # The run goes on without us (a resumable stream continues by default).
        assert await run_status(client, thread_id, run_id) == "running"
        r = await http.get(headers["location"], headers={"Last-Event-ID": first[-1].id})
        rest = events_of(parse_sse(r.text))
    assert await run_status(client, thread_id, run_id) == "success"
    assert [f.id for f in first] == ["0", "1", "2", "3"]
    assert [int(f.id) for f in rest] == list(range(4, 4 + len(rest)))
    # Nothing lost and nothing twice: the two halves are the whole run.
    everything = await collect(client.runs.join_stream(thread_id, run_id, last_event_id="-1"))
    assert [(f.event, f.data) for f in first + rest] == [(p.event, p.data) for p in everything]
    text = "".join(chunk["content"] for chunk, _ in (p.data for p in everything[1:]))
    assert text == " ".join(f"tok{i}" for i in range(20))


async def test_sdk_join_stream_resumes_from_last_event_id(client: Any) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "agent", input=HI, stream_mode="messages-tuple",
                                   stream_resumable=True, config=SLOW_TOKENS)
    seen: list[Any] = []
    async for part in client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1"):
        seen.append(part)
        if len(seen) == 3:
            break
    # Live: the run is still going while we rejoin after the third event (id 2).
    rest = await collect(client.runs.join_stream(thread_id, run["run_id"], last_event_id="2"))
    everything = await collect(client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1"))
    assert [(p.event, p.data) for p in seen + rest] == [(p.event, p.data) for p in everything]
    assert names(everything)[0] == "metadata" and len(everything) > 20


async def test_two_subscribers_each_get_every_event_once(client: Any, server: Server) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "agent", input=HI, stream_mode=["messages-tuple", "values"],
                                   config=SLOW_TOKENS)

    async def subscribe() -> list[Frame]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            r = await http.get(f"/threads/{thread_id}/runs/{run['run_id']}/stream")
            return events_of(parse_sse(r.text))

    one, two = await asyncio.gather(subscribe(), subscribe())
    assert await run_status(client, thread_id, run["run_id"]) == "success"
    for frames in (one, two):
        ids = [int(f.id) for f in frames]  # type: ignore[arg-type]
        assert ids == list(range(len(ids)))
        assert frames[0].event == "metadata" and frames[-1].event == "values"
    assert [(f.id, f.event, f.data) for f in one] == [(f.id, f.event, f.data) for f in two]
    assert sum(1 for f in one if f.event == "messages") >= 20  # one event per token


async def test_resumable_stream_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    srv = Server(db=db).start()
    try:
        c = get_client(url=srv.url)
        thread_id = (await c.threads.create())["thread_id"]
        before = await collect(c.runs.stream(thread_id, "pipeline", input={"value": "x"}, stream_resumable=True,
                                             stream_mode=["updates", "custom"], stream_subgraphs=True))
        await c.http.client.aclose()
    finally:
        srv.stop()
    run_id = before[0].data["run_id"]
    srv = Server(db=db).start()
    try:
        c = get_client(url=srv.url)
        after = await collect(c.runs.join_stream(thread_id, run_id, last_event_id="-1"))
        assert [(p.event, p.data) for p in after] == [(p.event, p.data) for p in before]
        tail = await collect(c.runs.join_stream(thread_id, run_id, last_event_id="2"))
        assert [(p.event, p.data) for p in tail] == [(p.event, p.data) for p in before[3:]]
        async with httpx.AsyncClient(base_url=srv.url) as http:
            r = await http.get(f"/threads/{thread_id}/runs/{run_id}/stream", headers={"Last-Event-ID": "-1"})
        assert [f.id for f in events_of(parse_sse(r.text))] == [str(i) for i in range(len(before))]
        await c.http.client.aclose()
    finally:
        srv.stop()


async def test_last_event_id_replays_what_clients_saw_before_a_kill(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    srv = Server(db=db).start()
    try:
        c = get_client(url=srv.url)
        thread_id = (await c.threads.create())["thread_id"]
        seen: list[Any] = []
        # Long enough (200 tokens, 50 ms apart) to be surely live when the server dies.
        async for part in c.runs.stream(thread_id, "agent", input=HI, stream_mode="messages-tuple",
                                        stream_resumable=True,
                                        config={"configurable": {"fake_tokens": 200, "fake_token_delay": 0.05}}):
            seen.append(part)
            if len(seen) == 6:
                break
        run_id = seen[0].data["run_id"]
        assert await run_status(c, thread_id, run_id) == "running"
    finally:
        srv.kill()
    srv = Server(db=db).start()
    try:
        c = get_client(url=srv.url)
        # Every event a client saw before the crash is still there, with the same ids.
        replay = await collect(c.runs.join_stream(thread_id, run_id, last_event_id="-1"))
        assert [(p.id, p.event, p.data) for p in replay[:6]] == [(p.id, p.event, p.data) for p in seen]
        tail = await collect(c.runs.join_stream(thread_id, run_id, last_event_id=seen[2].id))
        assert [(p.event, p.data) for p in tail[:3]] == [(p.event, p.data) for p in seen[3:]]
        await c.http.client.aclose()
    finally:
        srv.stop()


async def test_a_finished_runs_log_expires_after_stream_keep_seconds(tmp_path: Path) -> None:
    srv = Server(db=tmp_path / "skeino.db", env={"SKEINO_STREAM_KEEP_SECONDS": "1"}).start()
    try:
        c = get_client(url=srv.url)
        # Streamed as they are created, so nothing can expire before it is read. The resumable
        # run ends before the plain one starts, so its memory copy expires first.
        kept_tid = (await c.threads.create())["thread_id"]
        first = await collect(c.runs.stream(kept_tid, "counter", input={"count": 0}, stream_mode="updates",
                                            stream_resumable=True))
        assert names(first) == ["metadata", "updates", "updates", "updates"]
        kept_id = first[0].data["run_id"]

        tid = (await c.threads.create())["thread_id"]
        live = await collect(c.runs.stream(tid, "counter", input={"count": 0}, stream_mode="updates"))
        assert names(live) == ["metadata", "updates", "updates", "updates"]
        plain_id = live[0].data["run_id"]

        async def expired() -> bool:
            return await collect(c.runs.join_stream(tid, plain_id, last_event_id="-1")) == []

        # Well before the 10 s default: the setting is what counts.
        await wait_until(expired, timeout=7, what="the log to expire")
        assert (await c.runs.get(tid, plain_id))["status"] == "success"
        assert await c.runs.join(tid, plain_id) == {"count": 3}

        # The resumable run's memory copy expired first; its log comes back from the database.
        later = await collect(c.runs.join_stream(kept_tid, kept_id, last_event_id="-1"))
        assert [(p.event, p.data) for p in later] == [(p.event, p.data) for p in first]
        await c.http.client.aclose()
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------
# the client going away
# ---------------------------------------------------------------------------------------
async def test_disconnect_cancels_the_run_by_default(client: Any, server: Server) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        (meta,), _ = await _read_events(http, "POST", f"/threads/{thread_id}/runs/stream", 1,
                                        json={"assistant_id": "slow", "input": {"seconds": 30}})
    run_id = meta.data["run_id"]

    async def interrupted() -> bool:
        return await run_status(client, thread_id, run_id) == "interrupted"

    await wait_until(interrupted, what="the run to be cancelled")
    thread = await client.threads.get(thread_id)
    # Interrupted when stopped with tasks left to run (as on the official server); idle if
    # the cancel came before the first checkpoint. Never busy.
    assert thread["status"] in ("interrupted", "idle")
    # The thread is free again: the next run starts right away.
    result = await client.runs.wait(thread_id, "counter", input={"count": 0}, multitask_strategy="reject")
    assert result == {"count": 3}


async def test_disconnect_with_continue_lets_the_run_finish(client: Any, server: Server) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        (meta,), _ = await _read_events(http, "POST", f"/threads/{thread_id}/runs/stream", 1,
                                        json={"assistant_id": "slow", "input": {"seconds": 0.5},
                                              "on_disconnect": "continue"})
    run_id = meta.data["run_id"]

    async def finished() -> bool:
        return await run_status(client, thread_id, run_id) == "success"

    await wait_until(finished, what="the run to finish")
    state = await client.threads.get_state(thread_id)
    assert state["values"]["steps"] == ["before", "nap", "after"]


# The stream the server cuts at shutdown ends without a complete response, which uvicorn logs.
@pytest.mark.allow_server_log(r"ASGI callable returned without completing response")
async def test_server_shutdown_is_not_the_client_leaving(tmp_path: Path) -> None:
    # The server closes the stream when it stops; the run still gets the shutdown grace.
    db = tmp_path / "skeino.db"
    srv = Server(db=db, env={"SKEINO_SHUTDOWN_GRACE": "10"}).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
            thread_id = (await http.post("/threads", json={})).json()["thread_id"]
            received: list[str] = []

            async def listen() -> None:
                async with http.stream("POST", f"/threads/{thread_id}/runs/stream",
                                       json={"assistant_id": "slow", "input": {"seconds": 1}}) as r:
                    async for text in r.aiter_text():
                        received.append(text)

            listener = asyncio.create_task(listen())

            async def napping() -> bool:
                return "event: values" in "".join(received)

            await wait_until(napping, what="the run to start")
            await asyncio.to_thread(srv.stop)
            with contextlib.suppress(httpx.HTTPError):
                await listener  # the connection went away with the server
    finally:
        srv.stop()
    srv = Server(db=db).start()
    try:
        c = get_client(url=srv.url)
        (run,) = await c.runs.list(thread_id)
        assert run["status"] == "success"
        assert (await c.threads.get_state(thread_id))["values"]["steps"] == ["before", "nap", "after"]
        await c.http.client.aclose()
    finally:
        srv.stop()


async def test_leaving_a_joined_stream_does_not_cancel(client: Any, server: Server) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "slow", input={"seconds": 0.5})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await _read_events(http, "GET", f"/threads/{thread_id}/runs/{run['run_id']}/stream", 1)
    await client.runs.join(thread_id, run["run_id"])
    assert await run_status(client, thread_id, run["run_id"]) == "success"


async def test_leaving_a_joined_stream_with_cancel_on_disconnect(client: Any, server: Server) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "slow", input={"seconds": 30})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await _read_events(http, "GET", f"/threads/{thread_id}/runs/{run['run_id']}/stream", 1,
                           params={"cancel_on_disconnect": "true"})

    async def interrupted() -> bool:
        return await run_status(client, thread_id, run["run_id"]) == "interrupted"

    await wait_until(interrupted, what="the run to be cancelled")


# ---------------------------------------------------------------------------------------
# thread streams and heartbeats
# ---------------------------------------------------------------------------------------
async def test_thread_stream_follows_each_run(client: Any) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    # A run that holds the thread until the test replaces it: the follower is surely
    # subscribed once it has seen this run start, and no later run can slip by before.
    blocker = await client.runs.create(thread_id, "slow", input={"seconds": 60})
    seen: list[Any] = []

    async def follow() -> None:
        async for part in await client.threads.join_stream(thread_id):
            seen.append(part)

    follower = asyncio.create_task(follow())
    try:
        async def subscribed() -> bool:
            return any(p.event == "metadata" and p.data.get("run_id") == blocker["run_id"] for p in seen)

        await wait_until(subscribed, what="the follower to see the first run")
        # rollback: the blocker and its checkpoints go, so `counter` starts on an empty thread.
        first = await client.runs.create(thread_id, "counter", input={"count": 0}, stream_mode=["values", "updates"],
                                         multitask_strategy="rollback")
        await client.runs.join(thread_id, first["run_id"])
        second = await client.runs.create(thread_id, "counter", input={"count": 10})

        async def both_seen() -> bool:
            return sum(1 for p in seen if p.event == "values" and "count" in p.data) >= 8

        await wait_until(both_seen, what="both runs on the thread stream")
    finally:
        follower.cancel()
    runs = [p.data["run_id"] for p in seen if p.event == "metadata" and "attempt" in p.data]
    assert runs == [blocker["run_id"], first["run_id"], second["run_id"]]
    values = [p.data["count"] for p in seen if p.event == "values" and "count" in p.data]
    assert values == [0, 1, 2, 3, 10, 11, 12, 13]
    assert [p.data for p in seen if p.event == "updates"] == [{"a": {"count": 1}}, {"b": {"count": 2}},
                                                              {"c": {"count": 3}}]


async def test_thread_stream_marks_run_ends_and_keeps_ids_increasing(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        blocker = (await http.post(f"/threads/{thread_id}/runs",
                                   json={"assistant_id": "slow", "input": {"seconds": 60}})).json()
        text = ""

        async def follow() -> None:
            nonlocal text
            async with http.stream("GET", f"/threads/{thread_id}/stream") as r:
                async for chunk in r.aiter_text():
                    text += chunk

        def run_ends() -> int:
            return text.count('"status":"run_done"')

        async def subscribed() -> bool:
            return blocker["run_id"] in text

        async def all_ended() -> bool:
            return run_ends() == 3

        follower = asyncio.create_task(follow())
        try:
            await wait_until(subscribed, what="the follower to see the first run")
            for count, strategy in ((0, "rollback"), (10, "enqueue")):
                await http.post(f"/threads/{thread_id}/runs/wait", json={
                    "assistant_id": "counter", "input": {"count": count}, "multitask_strategy": strategy})
            await wait_until(all_ended, what="three run ends on the thread stream")
        finally:
            follower.cancel()
    frames = events_of(parse_sse(text))
    done = [f.data["run_id"] for f in frames if f.event == "metadata" and f.data.get("status") == "run_done"]
    started = [f.data["run_id"] for f in frames if f.event == "metadata" and "attempt" in f.data]
    assert done == started and len(done) == 3 and done[0] == blocker["run_id"]
    ids = [int(f.id) for f in frames]  # type: ignore[arg-type]
    assert ids == list(range(len(ids)))


async def test_heartbeats_keep_an_idle_stream_alive(tmp_path: Path) -> None:
    srv = Server(db=tmp_path / "skeino.db", env={"SKEINO_HEARTBEAT_SECONDS": "0.5"}).start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
            thread_id = (await http.post("/threads", json={})).json()["thread_id"]
            r = await http.post(f"/threads/{thread_id}/runs/stream",
                                json={"assistant_id": "slow", "input": {"seconds": 1.6}, "stream_mode": "updates"})
        frames = parse_sse(r.text)
        pings = [f for f in frames if f.event is None]
        assert len(pings) >= 2 and all(f.comments == ["ping"] for f in pings)
        assert ": ping\n\n" in r.text.replace("\r\n", "\n")
        # The heartbeats fall while the graph naps, between its events.
        order = ["ping" if f.event is None else f.event for f in frames]
        nap = order.index("updates") + 1
        assert order[nap] == "ping"
        assert [f.event for f in events_of(frames)] == ["metadata", "updates", "updates", "updates"]
        # The official client skips the comments.
        c = get_client(url=srv.url)
        parts = await collect(c.runs.stream(None, "slow", input={"seconds": 1.2}, stream_mode="updates"))
        assert names(parts) == ["metadata", "updates", "updates", "updates"]
        await c.http.client.aclose()
    finally:
        srv.stop()
