"""A chat agent whose tool calls wait for a human decision, in the shape the official chat UI speaks.

The interrupt carries `action_requests` and `review_configs` (LangChain's human-in-the-loop
request); the UI's Approve/Reject buttons resume it with `{"decisions": [{"type": ...}]}`
sent as `command.resume`, alongside an empty `input`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

from agent import TOOLS, make_model


async def call_model(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    model = make_model(config).bind_tools(TOOLS)
    return {"messages": [await model.ainvoke(state["messages"], config)]}


def review(state: MessagesState) -> dict[str, Any]:
    """Ask for a decision on every tool call; rejected calls get a tool message instead of running."""
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    calls = last.tool_calls
    answer = interrupt({
        "action_requests": [{"name": c["name"], "args": c["args"], "description": f"Call {c['name']}?"} for c in calls],
        "review_configs": [{"action_name": c["name"], "allowed_decisions": ["approve", "reject"]} for c in calls],
    })
    decisions = answer.get("decisions", []) if isinstance(answer, dict) else []
    rejected = [
        ToolMessage(d.get("message") or "The user rejected this call.", tool_call_id=c["id"], status="error")
        for c, d in zip(calls, decisions) if d.get("type") != "approve"
    ]
    return {"messages": rejected}


def route_model(state: MessagesState) -> str:
    last = state["messages"][-1]
    return "review" if isinstance(last, AIMessage) and last.tool_calls else END


def route_review(state: MessagesState) -> str:
    # Rejected calls already have their tool messages: back to the model; else run the tools.
    return "agent" if isinstance(state["messages"][-1], ToolMessage) else "tools"


builder = StateGraph(MessagesState)
builder.add_node("agent", call_model)
builder.add_node("review", review)
builder.add_node("tools", ToolNode(TOOLS))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", route_model, {"review": "review", END: END})
builder.add_conditional_edges("review", route_review, {"agent": "agent", "tools": "tools"})
builder.add_edge("tools", "agent")
graph = builder.compile()
