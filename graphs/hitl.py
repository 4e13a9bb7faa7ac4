"""Human in the loop: draft a plan, ask a human to approve it with interrupt(), then act."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    task: str
    plan: str
    approved: bool
    feedback: str
    result: str


def draft(state: State) -> dict[str, Any]:
    return {"plan": f"Plan for {state.get('task', 'the task')}: step 1, step 2, done."}


def review(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "Approve this plan?", "plan": state["plan"]})
    if isinstance(answer, dict):
        return {"approved": bool(answer.get("approved")), "feedback": str(answer.get("feedback", ""))}
    return {"approved": answer in (True, "yes", "approve", "approved", "y")}


def act(state: State) -> dict[str, Any]:
    if state.get("approved"):
        return {"result": f"Executed: {state['plan']}"}
    return {"result": "Plan rejected; nothing done."}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_node("act", act)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", "act")
builder.add_edge("act", END)
graph = builder.compile()
