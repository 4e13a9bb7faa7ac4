"""/mcp with the official MCP client and langchain-mcp-adapters against a real server.

Recorded from the official development server (langgraph-api 0.16.7) on the repository's
example graphs: `tools/list` gives each assistant as a tool named after it (whitespace to
`_`, other invalid characters dropped), described "Tool based on the <name> assistant",
annotated readOnly/destructive/idempotent false and openWorld true; a messages graph's input
schema has `messages` as one string "The user message to send to the agent." A call answers
one text block with the Python repr of the run's final values, e.g. counter {'count': 2}
gives "{'count': 5}" and agent {'messages': 'hello'} gives
"{'messages': [{'content': 'hello', ..., 'type': 'human', ...}, {'content': 'You said: hello', ...}]}";
a failed run is a result with isError and the error's type as text; an unknown tool is the
JSON-RPC error -32602 "Unknown tool: <name>". (The official server lists only `agent` on
Python 3.11, where it cannot derive TypedDict input schemas; skeino lists every graph.)
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph_sdk import get_client
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from serverproc import TEST_CONFIG, Server

KEY = "mcp-test-key-" + "m" * 20
READER = "mcp-reader-key-" + "r" * 20


@asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    """An initialized session of the official client (not a fixture: anyio scopes stay in one task)."""
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        async with streamable_http_client(url + "/mcp", http_client=http) as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                yield s


async def test_assistants_are_listed_as_tools_with_their_input_schemas(server: Server) -> None:
    async with mcp_session(server.url) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
    assert {"agent", "counter", "pipeline", "hitl", "slow", "failing"} <= set(tools)
    agent = tools["agent"]
    assert agent.title == "agent"
    assert agent.description == "Tool based on the agent assistant"
    assert agent.inputSchema == {
        "properties": {"messages": {"type": "string", "title": "Messages",
                                    "description": "The user message to send to the agent."}},
        "required": ["messages"], "title": "MessagesState", "type": "object"}
    assert agent.annotations is not None and agent.annotations.openWorldHint is True
    assert agent.annotations.readOnlyHint is False and agent.annotations.destructiveHint is False
    assert tools["counter"].inputSchema["properties"]["count"]["type"] == "integer"
    assert tools["counter"].inputSchema["type"] == "object"


async def test_a_call_runs_the_graph_and_answers_its_values(server: Server) -> None:
    async with mcp_session(server.url) as session:
        result = await session.call_tool("counter", {"count": 2})
        assert not result.isError
        assert [c.text for c in result.content] == ["{'count': 5}"]  # type: ignore[union-attr]
        result = await session.call_tool("agent", {"messages": "hello"})
    text = result.content[0].text  # type: ignore[union-attr]
    assert "'content': 'You said: hello'" in text and "'type': 'human'" in text


async def test_failures_are_tool_errors_and_unknown_tools_are_protocol_errors(server: Server) -> None:
    async with mcp_session(server.url) as session:
        result = await session.call_tool("failing", {})
        assert result.isError and result.content[0].text == "ValueError"  # type: ignore[union-attr]
        with pytest.raises(McpError) as err:
            await session.call_tool("no-such-assistant", {})
    assert err.value.error.code == -32602 and err.value.error.message == "Unknown tool: no-such-assistant"


async def test_a_named_assistant_is_a_tool_and_its_call_is_a_visible_stateless_run(
        server: Server, client: Any) -> None:
    await client.assistants.create("slow", name="slow nap  v2!", description="Naps for a while.")
    async with mcp_session(server.url) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        result = await _call_and_cancel(session, client)
    assert tools["slow_nap_v2"].title == "slow nap  v2!"
    assert tools["slow_nap_v2"].description == "Naps for a while."
    assert "nap" not in result.content[0].text  # type: ignore[union-attr]


async def _call_and_cancel(session: ClientSession, client: Any) -> Any:
    call = asyncio.create_task(session.call_tool("slow_nap_v2", {"seconds": 60}))
    # The call is an ordinary run: its (temporary) thread is busy and the run can be cancelled.
    found: list[Any] = []
    async with asyncio.timeout(20):
        while not found:
            for thread in await client.threads.search(status="busy", limit=100):
                found += [r for r in await client.runs.list(thread["thread_id"])
                          if r["metadata"].get("source") == "mcp" and r["status"] == "running"]
            await asyncio.sleep(0.05)
    run = found[0]
    await client.runs.cancel(run["thread_id"], run["run_id"])
    async with asyncio.timeout(20):
        return await call


class _ToolCallingModel(GenericFakeChatModel):
    """A scripted chat model that accepts tools, as a real one would."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


async def test_langchain_mcp_adapters_tools_in_a_local_agent(server: Server) -> None:
    client = MultiServerMCPClient({"skeino": {"url": server.url + "/mcp", "transport": "streamable_http"}})
    tools = await client.get_tools()
    by_name = {t.name: t for t in tools}
    assert "counter" in by_name and by_name["counter"].args_schema["properties"]["count"]["type"] == "integer"

    model = _ToolCallingModel(messages=iter([
        AIMessage("", tool_calls=[{"name": "counter", "args": {"count": 10}, "id": "call-1"}]),
        AIMessage("The counter says 13."),
    ]))

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.bind_tools(tools).ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    builder.add_edge("tools", "agent")
    out = await builder.compile().ainvoke({"messages": [HumanMessage("count from 10")]})
    tool_message = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert "{'count': 13}" in str(tool_message.content)  # computed by skeino's graph, not the fake model
    assert out["messages"][-1].content == "The counter says 13."


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    tmp = tmp_path_factory.mktemp("mcp-keyed")
    srv = Server(db=tmp / "s.db", env={"SKEINO_API_KEYS": f"{KEY}=runs:write,assistants:read;{READER}=assistants:read",
                                       "LANGGRAPH_API_KEY": "", "LANGSMITH_API_KEY": ""}).start()
    yield srv  # type: ignore[misc]
    srv.stop()


async def test_api_keys_and_scopes_apply(keyed: Server) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=keyed.url) as http:
        assert (await http.post("/mcp", json=body, headers=accept)).status_code == 401
        denied = await http.post("/mcp", json=body, headers={**accept, "x-api-key": READER})
        assert denied.status_code == 403 and "runs:write" in denied.json()["detail"]
    async with mcp_session(keyed.url, {"x-api-key": KEY}) as s:
        result = await s.call_tool("counter", {"count": 0})
        assert result.content[0].text == "{'count': 3}"  # type: ignore[union-attr]


def config_with(folder: Path, **extra: Any) -> Path:
    """The test graphs' langgraph.json, with absolute paths, plus `extra` keys, written in `folder`."""
    config = json.loads(TEST_CONFIG.read_text())
    base = TEST_CONFIG.parent
    config["dependencies"] = [str((base / d).resolve()) for d in config["dependencies"]]
    config["graphs"] = {k: f"{(base / v.split(':')[0]).resolve()}:{v.split(':')[1]}" for k, v in config["graphs"].items()}
    path = folder / "langgraph.json"
    path.write_text(json.dumps({**config, **extra}))
    return path


async def test_disable_mcp_removes_the_endpoint(tmp_path: Path) -> None:
    srv = Server(db=tmp_path / "s.db", config=config_with(tmp_path, http={"disable_mcp": True})).start()
    try:
        res = httpx.post(srv.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"Accept": "application/json, text/event-stream"})
        assert res.status_code == 404
        assert (await get_client(url=srv.url).assistants.search())  # the rest is served
    finally:
        srv.stop()


async def test_server_with_mcp_in_use_stops_cleanly(tmp_path: Path) -> None:
    srv = Server(db=tmp_path / "s.db").start()
    async with mcp_session(srv.url) as s:
        await s.list_tools()
    srv.stop()  # the lifespan closes the MCP session manager, then the runtime
    assert srv.proc is not None and srv.proc.returncode in (0, -15)
    assert srv.log is not None and "Traceback" not in srv.log.read_text()
