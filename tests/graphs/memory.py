"""A graph with long-term memory: it writes memories to the store and recalls them by meaning."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


class MemoryState(TypedDict, total=False):
    user: str
    remember: list[str]
    ttl: float  # minutes the memories written by this run live
    recall: str
    found: list[str]


async def remember_and_recall(state: MemoryState, runtime: Runtime) -> dict[str, Any]:
    assert runtime.store is not None
    namespace = ("memories", state["user"])
    for text in state.get("remember") or []:
        await runtime.store.aput(namespace, str(uuid.uuid4()), {"text": text}, ttl=state.get("ttl"))
    if not state.get("recall"):
        return {"found": []}
    hits = await runtime.store.asearch(namespace, query=state["recall"], limit=3)
    return {"found": [hit.value["text"] for hit in hits]}


_builder = StateGraph(MemoryState)
_builder.add_node("remember_and_recall", remember_and_recall)
_builder.add_edge(START, "remember_and_recall")
_builder.add_edge("remember_and_recall", END)
graph = _builder.compile()
