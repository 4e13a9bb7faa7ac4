"""Graphs that report the `runtime.context` they were given, one per kind of context schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    context: Any


@dataclass
class DataclassContext:
    model: str = "fake:default"
    temperature: float = 0.5


class PydanticContext(BaseModel):
    model: str = "fake:default"
    temperature: float = 0.5


class TypedDictContext(TypedDict, total=False):
    model: str


def _report(runtime: Runtime[Any]) -> dict[str, Any]:
    context = runtime.context
    if context is None:
        return {"context": None}
    if isinstance(context, dict):
        return {"context": {"kind": "dict", **context}}
    fields = context.model_dump() if isinstance(context, BaseModel) else vars(context)
    return {"context": {"kind": type(context).__name__, **fields}}


def _build(schema: type) -> Any:
    def report(state: State, runtime: Runtime[Any]) -> dict[str, Any]:
        return _report(runtime)

    builder = StateGraph(State, context_schema=schema)
    builder.add_node("report", report)
    builder.add_edge(START, "report")
    builder.add_edge("report", END)
    return builder.compile()


dataclass_graph = _build(DataclassContext)
pydantic_graph = _build(PydanticContext)
typeddict_graph = _build(TypedDictContext)
