"""LangGraph's RemoteGraph against a real skeino process: a remote graph used like a local one."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

from langchain_core.messages import AIMessageChunk
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command

from serverproc import Server


def _thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


async def test_invoke_state_history_and_update(server: Server) -> None:
    remote = RemoteGraph("counter", url=server.url)
    config = _thread()  # a thread id skeino has never seen: RemoteGraph asks to create it
    assert await remote.ainvoke({"count": 0}, config) == {"count": 3}
    assert await remote.ainvoke({"count": 10}, config) == {"count": 13}

    state = await remote.aget_state(config)
    assert state.values == {"count": 13} and state.next == ()
    history = [s async for s in remote.aget_state_history(config)]
    assert [s.values.get("count") for s in history][:4] == [13, 12, 11, 10]
    assert all(s.config["configurable"]["checkpoint_id"] for s in history)

    updated = await remote.aupdate_state(config, {"count": 100})
    assert updated["configurable"]["checkpoint_id"] != state.config["configurable"]["checkpoint_id"]
    assert (await remote.aget_state(config)).values == {"count": 100}

    # Going back: the state as of an older checkpoint.
    older = next(s for s in history if s.values.get("count") == 11)
    assert (await remote.aget_state(older.config)).values == {"count": 11}


async def test_stream_modes(server: Server) -> None:
    remote = RemoteGraph("counter", url=server.url)
    updates = [chunk async for chunk in remote.astream({"count": 0}, stream_mode="updates")]
    assert updates == [{"a": {"count": 1}}, {"b": {"count": 2}}, {"c": {"count": 3}}]

    parts = [p async for p in remote.astream({"count": 0}, _thread(), stream_mode=["values", "updates"])]
    assert [p.event for p in parts] == ["values", "updates", "values", "updates", "values", "updates", "values"]
    assert parts[-1].data == {"count": 3}

    v2 = [p async for p in remote.astream({"count": 5}, stream_mode="values", version="v2")]
    assert [p["data"]["count"] for p in v2] == [5, 6, 7, 8] and all(p["type"] == "values" for p in v2)


async def test_token_streaming(server: Server) -> None:
    remote = RemoteGraph("agent", url=server.url)
    chunks = [
        msg async for msg, _meta in remote.astream(
            {"messages": [{"role": "user", "content": "hello there"}]}, _thread(), stream_mode="messages"
        )
    ]
    tokens = [m["content"] for m in chunks if m["type"] == "AIMessageChunk"]
    assert len(tokens) > 1
    assert "".join(tokens).strip() == "You said: hello there"
    # Each token is a LangChain message dict that the SDK side can rebuild.
    assert AIMessageChunk(**{k: v for k, v in chunks[0].items() if k != "type"}).content == tokens[0]


async def test_interrupt_and_resume(server: Server) -> None:
    remote = RemoteGraph("hitl", url=server.url)
    config = _thread()
    first = await remote.ainvoke({"task": "ship"}, config)
    [pending] = first["__interrupt__"]
    assert pending["value"]["question"] == "Approve this plan?"
    state = await remote.aget_state(config)
    assert state.next == ("review",)
    done = await remote.ainvoke(Command(resume="yes"), config)
    assert done["result"].startswith("Executed") and "__interrupt__" not in done


class _Count(TypedDict, total=False):
    count: int


async def test_remote_graph_as_a_node_of_a_local_graph(server: Server) -> None:
    remote = RemoteGraph("counter", url=server.url)

    def double(state: _Count) -> dict[str, Any]:
        return {"count": state["count"] * 2}

    builder = StateGraph(_Count)
    builder.add_node("remote", remote)
    builder.add_node("double", double)
    builder.add_edge(START, "remote")
    builder.add_edge("remote", "double")
    builder.add_edge("double", END)
    local = builder.compile(checkpointer=InMemorySaver())

    config = _thread()
    assert await local.ainvoke({"count": 1}, config) == {"count": 8}
    # The remote graph's own steps stream through the local graph as a subgraph's.
    seen = [(ns, chunk) async for ns, chunk in local.astream({"count": 0}, _thread(), stream_mode="updates",
                                                               subgraphs=True)]
    remote_steps = [chunk for ns, chunk in seen if ns and ns[0].startswith("remote")]
    assert remote_steps == [{"a": {"count": 1}}, {"b": {"count": 2}}, {"c": {"count": 3}}]
    assert seen[-1] == ((), {"double": {"count": 6}})
