"""Graphs that exist only to exercise the server: slow, failing, custom events, many interrupts."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Send, interrupt

from fake_model import FakeChatModel


class SlowState(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]
    seconds: float


def before(state: SlowState) -> dict[str, Any]:
    return {"steps": ["before"]}


async def nap(state: SlowState) -> dict[str, Any]:
    await asyncio.sleep(state.get("seconds", 30))
    return {"steps": ["nap"]}


def after(state: SlowState) -> dict[str, Any]:
    return {"steps": ["after"]}


_slow = StateGraph(SlowState)
_slow.add_node("before", before)
_slow.add_node("nap", nap)
_slow.add_node("after", after)
_slow.add_edge(START, "before")
_slow.add_edge("before", "nap")
_slow.add_edge("nap", "after")
_slow.add_edge("after", END)
slow = _slow.compile()


class FailState(TypedDict, total=False):
    x: int


def explode(state: FailState) -> dict[str, Any]:
    raise ValueError("boom")


_failing = StateGraph(FailState)
_failing.add_node("explode", explode)
_failing.add_edge(START, "explode")
_failing.add_edge("explode", END)
failing = _failing.compile()


class WriterState(TypedDict, total=False):
    done: bool


def emit(state: WriterState) -> dict[str, Any]:
    write = get_stream_writer()
    for i in range(3):
        write({"progress": i})
    return {"done": True}


_writer = StateGraph(WriterState)
_writer.add_node("emit", emit)
_writer.add_edge(START, "emit")
_writer.add_edge("emit", END)
writer = _writer.compile()


class MultiState(TypedDict, total=False):
    answers: Annotated[list[str], operator.add]


def fan_out(state: MultiState) -> list[Send]:
    return [Send("ask", {"answers": [], "who": who}) for who in ("alice", "bob")]


def ask(state: dict[str, Any]) -> dict[str, Any]:
    answer = interrupt({"ask": state["who"]})
    return {"answers": [f"{state['who']}={answer}"]}


_multi = StateGraph(MultiState)
_multi.add_node("ask", ask)
_multi.add_conditional_edges(START, fan_out, ["ask"])
_multi.add_edge("ask", END)
multi_interrupt = _multi.compile()


class ProbeState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    token: str


def receive(state: ProbeState) -> dict[str, Any]:
    return {"log": [f"receive:{state['token']}"]}


async def work(state: ProbeState, config: RunnableConfig) -> dict[str, Any]:
    # The run's attempt reaches the graph as `run_attempt`: the first attempt blocks so a
    # test can kill the server while it runs; a retried attempt finishes at once.
    attempt = config["metadata"].get("run_attempt", 1)
    if attempt == 1:
        await asyncio.sleep(60)
    return {"log": [f"work:attempt{attempt}:{state['token']}"]}


_probe = StateGraph(ProbeState)
_probe.add_node("receive", receive)
_probe.add_node("work", work)
_probe.add_edge(START, "receive")
_probe.add_edge("receive", "work")
_probe.add_edge("work", END)
retry_probe = _probe.compile()


async def call_with_client_tools(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    # The OpenAI client's own tools: the graph hands the model's calls back to the client.
    tools = config["configurable"].get("openai", {}).get("tools") or []
    model = FakeChatModel().bind(tools=tools) if tools else FakeChatModel()
    return {"messages": [await model.ainvoke(state["messages"], config)]}


_client_tools = StateGraph(MessagesState)
_client_tools.add_node("model", call_with_client_tools)
_client_tools.add_edge(START, "model")
_client_tools.add_edge("model", END)
client_tools = _client_tools.compile()
