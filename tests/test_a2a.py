"""/a2a/{assistant_id} and the agent card, driven by the official a2a-sdk client against a real server.

Recorded from the official development server (langgraph-api 0.16.7) with the `agent` graph
and the slash method names: message/send answers a Task {kind task, id "<contextId>:<runId>",
contextId, history [user "hello", agent "You said: hello", each with taskId and contextId, the
user message keeping its messageId], status {state completed, timestamp}, artifacts
[{name "Assistant Response", description "Response from assistant <id>", parts [text "You said:
hello"]}]}; a second message with that contextId answers a new task whose history holds both
turns; tasks/get answers the task with status.message "Task completed successfully" and the
history as that task left it; message/stream sends, as `event: message` SSE, the Task
(submitted, history = the sent message), `working` status-updates carrying the reply so far
("You", "You ", "You said:", ...), an artifact-update (append false, lastChunk true) and a
final `completed` status-update. Errors are JSON-RPC error objects with HTTP 200: unknown task
-32001 "Task not found: <id>", unknown method -32601 "Method not found: <m>", bad JSON -32700
"Invalid JSON payload" with id null. With `chat_hitl` (tests/langgraph.json): the first message
is an `input-required` task with an artifact "Interrupt" ("Agent requires input to continue",
one data part {id, value}) and the user message as history; a message with that taskId resumes
the graph in the same task, `completed` with the reply as artifact and both messages in history;
tasks/cancel on the finished task is -32002. skeino answers the same (checked side by side,
ids and timestamps aside), except where docs/a2a.md says.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import GetTaskRequest, Message, Part, Role, SendMessageRequest, TaskState
from a2a.utils.errors import TaskNotFoundError, UnsupportedOperationError

from serverproc import Server
from test_mcp import KEY, READER, config_with, keyed  # noqa: F401 (keyed is a fixture)

AGENT = "agent"
FAILING = "failing"


async def _assistant_id(url: str, graph_id: str) -> str:
    """The graph's default assistant: other test files add assistants to the shared server."""
    async with httpx.AsyncClient(base_url=url) as http:
        found = (await http.post("/assistants/search", json={
            "graph_id": graph_id, "metadata": {"created_by": "system"}})).json()
    return found[0]["assistant_id"]


async def _card(http: httpx.AsyncClient, url: str, assistant_id: str) -> Any:
    resolver = A2ACardResolver(http, url)
    return await resolver.get_agent_card(relative_card_path=f"/.well-known/agent-card.json?assistant_id={assistant_id}")


def _message(text: str, context_id: str | None = None, task_id: str | None = None) -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, parts=[Part(text=text)], message_id=str(uuid.uuid4()))
    if context_id:
        message.context_id = context_id
    if task_id:
        message.task_id = task_id
    return SendMessageRequest(message=message)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


async def test_agent_card(server: Server, http: httpx.AsyncClient) -> None:
    assistant_id = await _assistant_id(server.url, AGENT)
    card = await _card(http, server.url, assistant_id)
    assert card.name == "agent" and card.description == "agent assistant"
    assert card.capabilities.streaming is True
    assert [(i.url, i.protocol_binding, i.protocol_version) for i in card.supported_interfaces] == [
        (f"{server.url}/a2a/{assistant_id}", "JSONRPC", "0.3.0")]
    assert card.skills[0].id == f"{assistant_id}-main" and card.skills[0].name == "agent Capabilities"
    assert list(card.default_input_modes) == ["application/json", "text/plain"]
    same = (await http.get(f"{server.url}/a2a/{assistant_id}/.well-known/agent-card.json")).json()
    assert same["url"] == f"{server.url}/a2a/{assistant_id}"
    missing = await http.get(f"{server.url}/.well-known/agent-card.json")
    assert missing.status_code == 400 and "assistant_id" in missing.json()["detail"]
    unknown = await http.get(f"{server.url}/.well-known/agent-card.json", params={"assistant_id": str(uuid.uuid4())})
    assert unknown.status_code == 404


async def test_send_continue_and_get_a_task(server: Server, http: httpx.AsyncClient) -> None:
    assistant_id = await _assistant_id(server.url, AGENT)
    client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(
        await _card(http, server.url, assistant_id))
    first = [r async for r in client.send_message(_message("hello"))]
    assert len(first) == 1 and first[0].HasField("task")
    task = first[0].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.id == f"{task.context_id}:{task.id.split(':')[1]}"
    assert [p.text for p in task.artifacts[0].parts] == ["You said: hello"]
    assert task.artifacts[0].name == "Assistant Response"
    assert [(m.role, m.parts[0].text) for m in task.history] == [
        (Role.ROLE_USER, "hello"), (Role.ROLE_AGENT, "You said: hello")]

    # The same context is the same thread: the conversation continues in a new task.
    second = [r async for r in client.send_message(_message("again", context_id=task.context_id))][0].task
    assert second.context_id == task.context_id and second.id != task.id
    assert [m.parts[0].text for m in second.history] == ["hello", "You said: hello", "again", "You said: again"]
    assert [m.task_id for m in second.history] == [task.id, task.id, second.id, second.id]
    async with httpx.AsyncClient(base_url=server.url) as raw:
        state = (await raw.get(f"/threads/{task.context_id}/state")).json()
    assert len(state["values"]["messages"]) == 4

    got = await client.get_task(GetTaskRequest(id=task.id))
    assert got.id == task.id and got.status.state == TaskState.TASK_STATE_COMPLETED
    assert got.status.message.parts[0].text == "Task completed successfully"
    assert [m.parts[0].text for m in got.history] == ["hello", "You said: hello"]  # as that task left it
    short = await client.get_task(GetTaskRequest(id=second.id, history_length=1))
    assert [m.parts[0].text for m in short.history] == ["You said: again"]

    with pytest.raises(TaskNotFoundError, match="Task not found"):
        await client.get_task(GetTaskRequest(id=f"{task.context_id}:{uuid.uuid4()}"))
    with pytest.raises(UnsupportedOperationError, match="terminal task"):
        [r async for r in client.send_message(_message("more", task_id=task.id))]


async def test_stream_a_reply(server: Server, http: httpx.AsyncClient) -> None:
    assistant_id = await _assistant_id(server.url, AGENT)
    client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(
        await _card(http, server.url, assistant_id))
    events = [r async for r in client.send_message(_message("stream me"))]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task" and events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert events[0].task.history[0].parts[0].text == "stream me"
    working = [e.status_update for e in events if e.HasField("status_update") and not e.status_update.status.state
               == TaskState.TASK_STATE_COMPLETED]
    texts = [w.status.message.parts[0].text for w in working]
    assert len(texts) > 1 and texts[-1] == "You said: stream me"  # the reply as it grows
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert kinds[-2:] == ["artifact_update", "status_update"]
    assert events[-2].artifact_update.artifact.parts[0].text == "You said: stream me"
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    task_id = events[0].task.id
    got = await client.get_task(GetTaskRequest(id=task_id))
    assert [m.parts[0].text for m in got.history] == ["stream me", "You said: stream me"]


async def test_protocol_errors_are_json_rpc_error_objects(server: Server, http: httpx.AsyncClient,
                                                          no_server_errors: None) -> None:
    assistant_id = await _assistant_id(server.url, AGENT)
    url = f"{server.url}/a2a/{assistant_id}"

    async def rpc(method: str, params: Any) -> dict[str, Any]:
        res = await http.post(url, json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
        assert res.status_code == 200
        return res.json()

    bad_json = await http.post(url, content=b"{nope")
    assert bad_json.status_code == 200
    assert bad_json.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Invalid JSON payload"}}
    assert (await rpc("foo/bar", {}))["error"] == {"code": -32601, "message": "Method not found: foo/bar"}
    assert (await rpc("message/send", {}))["error"]["code"] == -32602
    assert (await rpc("message/send", {"message": {"role": "user", "parts": "x", "messageId": "m"}}))["error"][
        "code"] == -32602
    msg = {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "messageId": "m1"}
    assert (await rpc("message/send", {"message": {**msg, "contextId": "not-a-uuid"}}))["error"]["code"] == -32602
    file_part = {"kind": "file", "file": {"uri": "https://example.invalid/a.png"}}
    assert (await rpc("message/send", {"message": {**msg, "parts": [file_part]}}))["error"]["code"] == -32005
    assert (await rpc("tasks/get", {"id": "nope"}))["error"] == {"code": -32001, "message": "Task not found: nope"}
    assert (await rpc("tasks/get", {"id": "nope", "historyLength": -1}))["error"]["code"] == -32602
    unknown = await http.post(f"{server.url}/a2a/{uuid.uuid4()}",
                              json={"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}})
    assert unknown.json()["error"]["code"] == -32602 and "not found" in unknown.json()["error"]["message"]
    counter = await _assistant_id(server.url, "counter")
    no_messages = await http.post(f"{server.url}/a2a/{counter}",
                                  json={"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}})
    assert "messages" in no_messages.json()["error"]["message"]
    # A stream that cannot start is one SSE event holding the error object.
    res = await http.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "message/stream", "params": {}})
    assert res.status_code == 200 and '"code":-32602' in res.text


async def test_a_failing_graph_is_a_failed_task(server: Server, http: httpx.AsyncClient) -> None:
    # `failing` has no messages key: a data part is its input.
    assistant_id = await _assistant_id(server.url, FAILING)
    msg = {"role": "user", "parts": [{"kind": "data", "data": {"x": 1}}], "messageId": "m2"}
    res = await http.post(f"{server.url}/a2a/{assistant_id}",
                          json={"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}})
    task = res.json()["result"]
    assert task["status"]["state"] == "failed"
    assert task["status"]["message"]["parts"][0]["text"] == "Error executing assistant: ValueError"
    res = await http.post(f"{server.url}/a2a/{assistant_id}", headers={"Accept": "text/event-stream"},
                          json={"jsonrpc": "2.0", "id": 2, "method": "message/stream", "params": {"message": msg}})
    events = [json.loads(line[5:]) for line in res.text.splitlines() if line.startswith("data:")]
    assert events[0]["result"]["kind"] == "task"
    assert events[-1]["result"]["final"] is True and events[-1]["result"]["status"]["state"] == "failed"


async def test_disable_a2a_removes_the_endpoints(tmp_path: Path, http: httpx.AsyncClient) -> None:
    srv = Server(db=tmp_path / "s.db", config=config_with(tmp_path, http={"disable_a2a": True})).start()
    try:
        assistant_id = await _assistant_id(srv.url, AGENT)
        card = await http.get(f"{srv.url}/.well-known/agent-card.json", params={"assistant_id": assistant_id})
        assert card.status_code == 404
        res = await http.post(f"{srv.url}/a2a/{assistant_id}",
                              json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}})
        assert res.status_code == 404
        assert (await http.post(f"{srv.url}/mcp", json={})).status_code != 404  # only A2A is off
    finally:
        srv.stop()


async def test_a_question_from_the_graph_is_input_required_and_the_answer_resumes_the_task(
        server: Server, http: httpx.AsyncClient) -> None:
    assistant_id = await _assistant_id(server.url, "chat_hitl")
    client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(
        await _card(http, server.url, assistant_id))
    asked = [r async for r in client.send_message(_message("book the flight"))][0].task
    assert asked.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert asked.artifacts[0].name == "Interrupt"
    assert asked.artifacts[0].parts[0].data.struct_value["value"]["question"] == "Shall I go ahead?"
    assert (await client.get_task(GetTaskRequest(id=asked.id))).status.state == TaskState.TASK_STATE_INPUT_REQUIRED

    answered = [r async for r in client.send_message(_message("yes", task_id=asked.id))][0].task
    assert answered.id == asked.id and answered.context_id == asked.context_id  # the same task goes on
    assert answered.status.state == TaskState.TASK_STATE_COMPLETED
    assert answered.artifacts[0].parts[0].text == "Confirmed with 'yes': book the flight"
    got = await client.get_task(GetTaskRequest(id=asked.id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED
    assert [m.parts[0].text for m in got.history] == ["book the flight", "Confirmed with 'yes': book the flight"]


async def test_api_keys_and_scopes_apply(keyed: Server, http: httpx.AsyncClient) -> None:
    assistant_id = await _assistant_id_with_key(keyed.url)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}
    card_url = f"{keyed.url}/.well-known/agent-card.json"
    assert (await http.post(f"{keyed.url}/a2a/{assistant_id}", json=body)).status_code == 401
    assert (await http.get(card_url, params={"assistant_id": assistant_id})).status_code == 401
    reader = {"x-api-key": READER}
    assert (await http.get(card_url, params={"assistant_id": assistant_id}, headers=reader)).status_code == 200
    denied = await http.post(f"{keyed.url}/a2a/{assistant_id}", json=body, headers=reader)
    assert denied.status_code == 403 and "runs:write" in denied.json()["detail"]
    allowed = await http.post(f"{keyed.url}/a2a/{assistant_id}", json=body, headers={"x-api-key": KEY})
    assert allowed.json()["error"]["code"] == -32001


async def _assistant_id_with_key(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": KEY}) as http:
        return (await http.post("/assistants/search", json={"graph_id": AGENT})).json()[0]["assistant_id"]


async def test_cancel_a_streaming_task(server: Server, http: httpx.AsyncClient) -> None:
    assistant_id = await _assistant_id(server.url, "slow")
    url = f"{server.url}/a2a/{assistant_id}"
    msg = {"role": "user", "parts": [{"kind": "data", "data": {"seconds": 60}}], "messageId": "m3"}
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=60) as streamer:
        async with streamer.stream("POST", url, json={"jsonrpc": "2.0", "id": 1, "method": "message/stream",
                                                      "params": {"message": msg}}) as res:
            async for line in res.aiter_lines():
                if not line.startswith("data:"):
                    continue
                events.append(json.loads(line[5:]))
                if len(events) == 1:
                    task_id = events[0]["result"]["id"]
                    cancel = await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tasks/cancel",
                                                        "params": {"id": task_id}})
                    assert cancel.json()["result"]["status"]["state"] == "canceled"
    assert events[-1]["result"]["final"] is True and events[-1]["result"]["status"]["state"] == "canceled"
    again = await http.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "tasks/cancel", "params": {"id": task_id}})
    assert again.json()["error"]["code"] == -32002
    got = await http.post(url, json={"jsonrpc": "2.0", "id": 4, "method": "tasks/get", "params": {"id": task_id}})
    assert got.json()["result"]["status"]["state"] == "canceled"
