"""Streaming protocol v2 with the official client: thread event streams, commands, WebSocket."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect

from serverproc import Server

TRANSPORTS = ["sse", "websocket"]
ALL = ["values", "updates", "messages", "tools", "lifecycle", "input", "custom", "tasks", "checkpoints"]


def _root_end(event: dict[str, Any]) -> bool:
    params = event.get("params") or {}
    return (event.get("method") == "lifecycle" and not params.get("namespace")
            and params["data"]["event"] in ("completed", "failed", "interrupted"))


async def _until_end(events: AsyncIterator[dict[str, Any]], ends: int = 1) -> list[dict[str, Any]]:
    """Collect events until the `ends`-th root terminal lifecycle event."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        async for event in events:
            if event.get("type") != "event":
                continue  # the WebSocket's answer to the subscription, which the client passes on
            seen.append(event)
            if _root_end(event):
                ends -= 1
                if ends == 0:
                    return seen
    raise AssertionError(f"stream ended early: {seen}")


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    """`method` or `method:event` for each event, the readable shape of a sequence."""
    out = []
    for e in events:
        data = e["params"]["data"]
        sub = data.get("event") if isinstance(data, dict) and isinstance(data.get("event"), str) else None
        out.append(f"{e['method']}:{sub}" if sub else e["method"])
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tokens_stream_as_content_blocks(client: Any, transport: str) -> None:
    async with client.threads.stream(assistant_id="agent", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "hi there"}]})
        events = await _until_end(thread.events)
        output = await thread.output.with_timeout(10)
    kinds = _kinds(events)
    assert kinds[0] == "lifecycle:running" and kinds[-1] == "lifecycle:completed"
    messages = [e["params"]["data"] for e in events if e["method"] == "messages"]
    assert [m["event"] for m in messages[:2]] == ["message-start", "content-block-start"]
    assert messages[0]["role"] == "ai"
    deltas = "".join(m["delta"]["text"] for m in messages if m["event"] == "content-block-delta")
    assert deltas == "You said: hi there"
    assert messages[-2] == {"event": "content-block-finish", "index": 0,
                            "content": {"type": "text", "text": "You said: hi there"}}
    assert messages[-1]["event"] == "message-finish" and messages[-1]["usage"]["output_tokens"] == 4
    # Every event once, in seq order, each with its own event_id.
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)) and len({e["event_id"] for e in events}) == len(events)
    assert output["messages"][-1]["content"] == "You said: hi there"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tool_call_lifecycle(client: Any, transport: str) -> None:
    async with client.threads.stream(assistant_id="agent", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "weather in Paris?"}]})
        events = await _until_end(thread.events)
    kinds = [k for k in _kinds(events) if k.startswith(("tools", "messages:message-", "lifecycle"))]
    assert kinds == ["lifecycle:running", "messages:message-start", "messages:message-finish",
                     "tools:tool-started", "tools:tool-finished", "messages:message-start",
                     "messages:message-finish", "lifecycle:completed"]
    started, finished = [e["params"]["data"] for e in events if e["method"] == "tools"]
    assert started == {"event": "tool-started", "tool_call_id": "call_weather_1", "tool_name": "get_weather",
                       "input": {"city": "Paris"}}
    assert finished["output"]["content"] == "It is sunny and 21 degrees in Paris."
    call = next(e["params"]["data"] for e in events if e["params"]["data"].get("event") == "content-block-finish")
    assert call["content"] == {"type": "tool_call", "id": "call_weather_1", "name": "get_weather",
                               "args": {"city": "Paris"}}
    updates = [e["params"] for e in events if e["method"] == "updates"]
    assert [u["node"] for u in updates] == ["agent", "tools", "agent"]
    assert updates[1]["data"]["values"]["messages"][0]["type"] == "tool"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subgraph_namespaces_and_lifecycle(client: Any, transport: str) -> None:
    async with client.threads.stream(assistant_id="pipeline", transport=transport) as thread:
        await thread.run.start(input={"value": ""})
        events = await _until_end(thread.events)
        # A filter on the child's namespace (without its task id) sees only the child.
        scoped = client.threads.stream(thread.thread_id, assistant_id="pipeline")
    life = [(e["params"]["namespace"], e["params"]["data"]["event"]) for e in events if e["method"] == "lifecycle"]
    child = life[1][0]
    assert len(child) == 1 and child[0].startswith("child:")
    assert life == [([], "running"), (child, "started"), (child, "completed"), ([], "completed")]
    started = next(e["params"]["data"] for e in events if e["method"] == "lifecycle" and e["params"]["namespace"])
    assert started["graph_name"] == "child" and started["trigger_call_id"] == child[0].split(":", 1)[1]
    child_values = [e["params"]["data"] for e in events if e["method"] == "values" and e["params"]["namespace"]]
    assert child_values[-1] == {"value": "|parent|child"}
    await scoped.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_interrupt_answered_with_input_respond(client: Any, transport: str) -> None:
    async with client.threads.stream(assistant_id="chat_hitl", transport=transport) as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "book it"}]})
        first = await _until_end(thread.events)
        assert _kinds(first)[-2:] == ["input.requested", "lifecycle:interrupted"]
        request = first[-2]["params"]["data"]
        assert request["payload"] == {"question": "Shall I go ahead?", "request": "book it"}
        async with asyncio.timeout(10):
            while not thread.interrupted:
                await asyncio.sleep(0.02)
        assert thread.interrupts[0]["interrupt_id"] == request["interrupt_id"]
        await thread.run.respond("yes")
        rest = await _until_end(thread.events, ends=2)
    # As on the official server, the interrupted run's last values (and tasks, checkpoints)
    # follow its lifecycle event; then comes the run that resumes it.
    kinds = _kinds(rest)
    second = rest[kinds.index("lifecycle:running", len(first)):]
    assert "lifecycle:completed" not in kinds[:len(first)] and _kinds(second)[-1] == "lifecycle:completed"
    assert "input.requested" not in _kinds(second)
    final = [e for e in second if e["method"] == "values"][-1]["params"]["data"]
    assert final["messages"][-1]["content"] == "Confirmed with 'yes': book it"


async def test_a_failing_run_ends_failed_with_its_error(client: Any) -> None:
    async with client.threads.stream(assistant_id="failing") as thread:
        await thread.run.start(input={})
        events = await _until_end(thread.events)
        with pytest.raises(RuntimeError, match="boom"):
            await thread.output.with_timeout(10)
    assert events[-1]["params"]["data"] == {"event": "failed", "graph_name": "failing", "error": "boom"}


async def _sse(url: str, body: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Read `count` events of a raw v2 SSE stream."""
    out: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("POST", url, json=body) as response:
            assert response.status_code == 200
            async with asyncio.timeout(20):
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        out.append(json.loads(line[6:]))
                        if len(out) == count:
                            return out
    raise AssertionError(out)


async def test_reconnect_replays_only_missed_events(server: Server, client: Any) -> None:
    thread_id = str(uuid.uuid4())
    async with client.threads.stream(thread_id, assistant_id="agent") as thread:
        await thread.run.start(input={"messages": [{"role": "user", "content": "one two three"}]})
        everything = await _until_end(thread.events)
    url = f"{server.url}/threads/{thread_id}/stream/events"
    cut = len(everything) // 2
    rest = await _sse(url, {"channels": ALL, "since": everything[cut - 1]["seq"]}, len(everything) - cut)
    assert rest == everything[cut:]
    # A narrower filter replays only its channels, in the same order.
    messages = await _sse(url, {"channels": ["messages"]}, 3)
    assert messages == [e for e in everything if e["method"] == "messages"][:3]


async def test_websocket_carries_runs_over_time_and_reconnects(server: Server) -> None:
    thread_id = str(uuid.uuid4())
    url = f"ws://127.0.0.1:{server.port}/threads/{thread_id}/stream/events"
    start = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "again"}]}}

    async def command(ws: Any, cid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await ws.send(json.dumps({"id": cid, "method": method, "params": params}))
        async with asyncio.timeout(10):
            while True:
                message = json.loads(await ws.recv())
                if message.get("id") == cid and message["type"] != "event":
                    return message
                frames.append(message)

    async def until_end(ws: Any, ends: int) -> None:
        async with asyncio.timeout(20):
            while sum(_root_end(f) for f in frames) < ends:
                frames.append(json.loads(await ws.recv()))

    frames: list[dict[str, Any]] = []
    async with connect(url) as ws:
        sub = await command(ws, 1, "subscription.subscribe", {"channels": ["lifecycle", "messages"]})
        assert sub["type"] == "success" and sub["result"]["replayed_events"] == 0
        for i, cid in enumerate((2, 3)):
            reply = await command(ws, cid, "run.start", start)
            assert reply["type"] == "success" and reply["result"]["run_id"]
            await until_end(ws, i + 1)
        ws_first = list(frames)
        bad = await command(ws, 4, "no.such.thing", {})
        assert bad == {"type": "error", "id": 4, "error": "unknown_command",
                       "message": "Unknown protocol command: no.such.thing"}
        tree = await command(ws, 5, "agent.getTree", {})
        assert tree["result"]["tree"]["status"] == "completed"
    assert [f["params"]["data"]["event"] for f in ws_first if f["method"] == "lifecycle"] == [
        "running", "completed", "running", "completed"]
    # A new socket that names the last event it saw gets only what came after it.
    frames = []
    mid = ws_first[len(ws_first) // 2]
    async with connect(url) as ws:
        sub = await command(ws, 1, "subscription.subscribe", {"channels": ["lifecycle", "messages"],
                                                                "since": mid["seq"]})
        await until_end(ws, 1)
    assert frames == ws_first[len(ws_first) // 2 + 1:]


async def test_runs_cross_between_v1_and_v2(client: Any, server: Server) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    url = f"{server.url}/threads/{tid}/stream/events"
    reader = asyncio.create_task(_sse(url, {"channels": ["lifecycle", "values"]}, 4))
    # A v1 run with values only: v2 sees its lifecycle and values.
    chunks = [c async for c in client.runs.stream(tid, "agent", input={"messages": [{"role": "user", "content": "a"}]})]
    assert [c.event for c in chunks] == ["metadata", "values", "values"]
    v2 = await reader
    assert _kinds(v2) == ["lifecycle:running", "values", "values", "lifecycle:completed"]
    assert v2[2]["params"]["data"] == chunks[2].data
    # A v2 run: a v1 join of the run sees its values.
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        reply = (await http.post(f"/threads/{tid}/commands", json={
            "id": 1, "method": "run.start",
            "params": {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "b"}]}}})).json()
    run_id = reply["result"]["run_id"]
    joined = [c async for c in client.runs.join_stream(tid, run_id)]
    assert joined[-1].data["messages"][-1]["content"] == "You said: b"


async def test_commands_answer_with_typed_errors(server: Server, no_server_errors: None) -> None:
    tid = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async def send(payload: Any) -> httpx.Response:
            return await http.post(f"/threads/{tid}/commands", json=payload)

        bad = await send({"method": "run.start"})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_argument"
        assert (await send({"id": 1, "method": "warp.drive", "params": {}})).json() == {
            "type": "error", "id": 1, "error": "unknown_command", "message": "Unknown protocol command: warp.drive"}
        missing = (await send({"id": 2, "method": "run.start", "params": {"assistant_id": "nope"}})).json()
        assert missing["type"] == "error" and missing["error"] == "invalid_argument" and "nope" in missing["message"]
        extra = (await send({"id": 3, "method": "run.start", "params": {"assistant_id": "agent", "warp": 1}})).json()
        assert extra["error"] == "invalid_argument" and "warp" in extra["message"]
        no_interrupt = (await send({"id": 4, "method": "input.respond",
                                    "params": {"namespace": [], "interrupt_id": "x", "response": 1}})).json()
        assert no_interrupt["error"] in ("no_such_interrupt", "no_such_run")
        started = (await send({"id": 5, "method": "run.start", "params": {
            "assistant_id": "counter", "input": {"count": 0}}})).json()
        assert started["type"] == "success"
        await (await http.get(f"/threads/{tid}/runs/{started['result']['run_id']}/join")).aread()
        state = (await send({"id": 6, "method": "state.get", "params": {"namespace": []}})).json()
        assert state["result"]["values"] == {"count": 3}
        stream = await http.post(f"/threads/{tid}/stream/events", json={"channels": ["bogus"]})
        assert stream.status_code == 400 and "bogus" in stream.json()["detail"]
        assert (await http.post(f"/threads/{tid}/stream/events", json={"channels": ["values"], "since": -2})
                ).status_code == 400


# ---------------------------------------------------------------------------------------
# the official server's frames (docs/captures) for the same graphs
# ---------------------------------------------------------------------------------------
CAPTURES = Path(__file__).parent.parent / "docs" / "captures"
# The channels the official server fills; skeino adds updates, tools, tasks, checkpoints, custom.
SHARED = ["lifecycle", "values", "messages", "input"]


def _capture(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text = (CAPTURES / name).read_text()
    start = json.loads(re.search(r'"method": "run.start", "params": (\{.*\})\}\n', text).group(1))
    body = text.split("# ---- raw SSE body ----\n", 1)[1]
    return start, [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def _shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must agree: methods, namespaces (without task ids), lifecycle, message and input data.

    A subgraph's `started` goes before its first event (the official server sends it after the
    first one); values are compared whole when they hold no messages, whose encoding differs.
    """
    out: list[tuple[Any, ...]] = []
    for e in events:
        params = e["params"]
        ns = tuple(s.split(":")[0] for s in params["namespace"])
        data = params["data"]
        if e["method"] == "values":
            item: tuple[Any, ...] = ("values", ns, None if "messages" in data else data)
        elif e["method"] == "input.requested":
            item = ("input", ns, data["payload"])
        elif e["method"] == "lifecycle":
            item = ("lifecycle", ns, data["event"], data.get("graph_name"))
        else:
            item = ("messages", ns, {k: v for k, v in data.items() if k != "id"})
        if item[:3] == ("lifecycle", ns, "started"):
            first = next((i for i, o in enumerate(out) if o[1] == ns), len(out))
            out.insert(first, item)
        else:
            out.append(item)
    return out


@pytest.mark.parametrize("name", ["v2-agent-tools.txt", "v2-pipeline-subgraph.txt", "v2-writer-custom.txt",
                                  "v2-chat_hitl-interrupt.txt"])
async def test_frames_follow_the_official_captures(server: Server, name: str) -> None:
    start, reference = _capture(name)
    tid = str(uuid.uuid4())
    ends = sum(_root_end(e) for e in reference)
    got: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with http.stream("POST", f"/threads/{tid}/stream/events", json={"channels": SHARED}) as response:
            lines = response.aiter_lines()
            await http.post(f"/threads/{tid}/commands", json={"id": 1, "method": "run.start", "params": start})
            async with asyncio.timeout(20):
                async for line in lines:
                    if not line.startswith("data: "):
                        continue
                    got.append(json.loads(line[6:]))
                    if got[-1]["method"] == "input.requested":
                        answer = {"namespace": [], "interrupt_id": got[-1]["params"]["data"]["interrupt_id"],
                                  "response": "yes"}
                        reply = await http.post(f"/threads/{tid}/commands",
                                                json={"id": 2, "method": "input.respond", "params": answer})
                        assert reply.json()["type"] == "success"
                    if sum(_root_end(e) for e in got) == ends and got[-1]["method"] != "input.requested":
                        break
    assert _shape(got) == _shape(reference)


async def test_websocket_unsubscribe_and_reconnect(server: Server) -> None:
    tid = str(uuid.uuid4())
    url = f"ws://127.0.0.1:{server.port}/threads/{tid}/stream/events"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        reply = (await http.post(f"/threads/{tid}/commands", json={"id": 1, "method": "run.start", "params": {
            "assistant_id": "counter", "input": {"count": 0}}})).json()
        await (await http.get(f"/threads/{tid}/runs/{reply['result']['run_id']}/join")).aread()
    answers: dict[int, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []

    async def read_until(done: Any) -> None:
        async with asyncio.timeout(10):
            while not done():
                message = json.loads(await ws.recv())
                (events.append(message) if message["type"] == "event" else answers.__setitem__(message["id"], message))

    async def send(cid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await ws.send(json.dumps({"id": cid, "method": method, "params": params}))
        await read_until(lambda: cid in answers)
        return answers[cid]

    async with connect(url) as ws:
        sub = await send(1, "subscription.subscribe", {"channels": ["values"]})
        assert sub["result"]["replayed_events"] == 4  # the input, then a, b and c
        await read_until(lambda: len(events) == 4)
        assert [e["params"]["data"]["count"] for e in events] == [0, 1, 2, 3]
        sub_id = sub["result"]["subscription_id"]
        assert (await send(2, "subscription.unsubscribe", {"subscription_id": sub_id}))["result"] == {}
        gone = await send(3, "subscription.unsubscribe", {"subscription_id": sub_id})
        assert gone["error"] == "no_such_subscription"
        # Subscribing again sends nothing this socket already had; reconnect resends what came after an event.
        await send(4, "subscription.subscribe", {"channels": ["values"]})
        first = list(events)
        back = await send(5, "subscription.reconnect", {"last_event_id": first[1]["event_id"]})
        assert back["result"] == {"restored": True, "missed_events": 2}
        await read_until(lambda: len(events) == 6)
        assert events[4:] == first[2:]


async def test_run_start_follows_the_multitask_rules(server: Server, client: Any) -> None:
    tid = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async def start(cid: int, params: dict[str, Any]) -> dict[str, Any]:
            body = {"id": cid, "method": "run.start", "params": {"assistant_id": "slow", **params}}
            return (await http.post(f"/threads/{tid}/commands", json=body)).json()

        first = await start(1, {"input": {"seconds": 30}})
        refused = await start(2, {"input": {"seconds": 0}, "multitask_strategy": "reject"})
        assert refused["type"] == "error" and refused["error"] == "invalid_argument", refused
        queued = await start(3, {"input": {"seconds": 0}})  # enqueue, as on v1
        replacing = await start(4, {"input": {"seconds": 0}, "multitask_strategy": "interrupt"})
        assert all(r["type"] == "success" for r in (first, queued, replacing))
        await client.runs.join(tid, replacing["result"]["run_id"])
        statuses = {r["run_id"]: r["status"] for r in await client.runs.list(tid)}
        assert statuses[first["result"]["run_id"]] == "interrupted"
        assert statuses[replacing["result"]["run_id"]] == "success"


async def test_websocket_frames_follow_the_official_capture(server: Server) -> None:
    """The same commands on one socket get the same answers and the same events as on the official server."""
    lines = (CAPTURES / "v2-websocket-chat_hitl.txt").read_text().splitlines()
    sent = [json.loads(line[2:]) for line in lines if line.startswith("> ")]
    received = [json.loads(line[2:]) for line in lines if line.startswith("< ")]
    ref_events = [m for m in received if m["type"] == "event"]
    tid = str(uuid.uuid4())
    got: list[dict[str, Any]] = []

    async def until(done: Any) -> None:
        async with asyncio.timeout(20):
            while not done():
                got.append(json.loads(await ws.recv()))

    async with connect(f"ws://127.0.0.1:{server.port}/threads/{tid}/stream/events") as ws:
        for command in sent:
            if command["method"] == "input.respond" and command["params"]["interrupt_id"] != "nope":
                await until(lambda: any(_root_end(m) for m in got if m["type"] == "event"))
                asked = next(m for m in got if m.get("method") == "input.requested")
                command = {**command, "params": {**command["params"],
                                                 "interrupt_id": asked["params"]["data"]["interrupt_id"]}}
            if command["id"] == 4:  # after the resumed run has ended, as in the capture
                await until(lambda: sum(_root_end(m) for m in got if m["type"] == "event") == 2)
            await ws.send(json.dumps(command))
        await until(lambda: any(m.get("id") == 6 for m in got))
    answers = {m["id"]: m for m in got if m["type"] != "event"}
    ref_answers = {m["id"]: m for m in received if m["type"] != "event"}
    assert sorted(answers) == sorted(ref_answers)
    for cid, ref in ref_answers.items():
        mine = answers[cid]
        assert (mine["type"], mine.get("error"), sorted(mine.get("result") or {})) == \
            (ref["type"], ref.get("error"), sorted(ref.get("result") or {})), cid
    assert _shape([m for m in got if m["type"] == "event"]) == _shape(ref_events)
    # An answer's meta names the last event the socket had sent by then.
    seqs = [m["seq"] for m in got if m["type"] == "event"]
    assert answers[3]["meta"]["applied_through_seq"] in seqs
