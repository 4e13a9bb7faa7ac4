"""A graph that reports who it runs for, as the server tells it (config and runtime)."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


class State(TypedDict, total=False):
    note: str
    user_id: str
    user_field: str
    permissions: list[str]
    runtime_user: str


def whoami(state: State, config: RunnableConfig, runtime: Runtime) -> dict[str, Any]:
    conf = config["configurable"]
    user = conf.get("langgraph_auth_user")
    info = getattr(runtime, "server_info", None)
    return {
        "user_id": conf.get("langgraph_auth_user_id"),
        "user_field": user.get("team") if user is not None else None,
        "permissions": list(conf.get("langgraph_auth_permissions") or []),
        "runtime_user": info.user.identity if info is not None and info.user is not None else None,
    }


_builder = StateGraph(State)
_builder.add_node("whoami", whoami)
_builder.add_edge(START, "whoami")
_builder.add_edge("whoami", END)
graph = _builder.compile()
