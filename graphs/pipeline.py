"""A small multi-node graph with a subgraph, and a three-node counter (no LLM)."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class TextState(TypedDict, total=False):
    value: str


def parent_step(state: TextState) -> dict[str, Any]:
    return {"value": f"{state.get('value', '')}|parent"}


def child_step(state: TextState) -> dict[str, Any]:
    get_stream_writer()({"progress": "child working"})
    return {"value": f"{state['value']}|child"}


def finish(state: TextState) -> dict[str, Any]:
    return {"value": f"{state['value']}|done"}


child_builder = StateGraph(TextState)
child_builder.add_node("child_step", child_step)
child_builder.add_edge(START, "child_step")
child_builder.add_edge("child_step", END)
child = child_builder.compile()

builder = StateGraph(TextState)
builder.add_node("parent_step", parent_step)
builder.add_node("child", child)
builder.add_node("finish", finish)
builder.add_edge(START, "parent_step")
builder.add_edge("parent_step", "child")
builder.add_edge("child", "finish")
builder.add_edge("finish", END)
graph = builder.compile()


class CountState(TypedDict, total=False):
    count: int


def _inc(state: CountState) -> dict[str, Any]:
    return {"count": state.get("count", 0) + 1}


counter_builder = StateGraph(CountState)
for name in ("a", "b", "c"):
    counter_builder.add_node(name, _inc)
counter_builder.add_edge(START, "a")
counter_builder.add_edge("a", "b")
counter_builder.add_edge("b", "c")
counter_builder.add_edge("c", END)
counter = counter_builder.compile()
