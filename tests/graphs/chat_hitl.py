"""A chat graph that asks for confirmation with interrupt() before it answers."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


def confirm(state: MessagesState) -> dict[str, Any]:
    request = next((m.text for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), "")
    answer = interrupt({"question": "Shall I go ahead?", "request": request})
    return {"messages": [AIMessage(f"Confirmed with '{answer}': {request}")]}


_builder = StateGraph(MessagesState)
_builder.add_node("confirm", confirm)
_builder.add_edge(START, "confirm")
_builder.add_edge("confirm", END)
graph = _builder.compile()
