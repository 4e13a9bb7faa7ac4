"""Graphs used only by the benchmarks.

`sleepy`: one node that awaits one second, so a run holds its stream open for a
second while costing (almost) no CPU. Used to measure how many simultaneous
streams a server can hold.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph


class SleepyState(TypedDict, total=False):
    slept: float


async def sleep_one_second(state: SleepyState) -> dict[str, Any]:
    await asyncio.sleep(1)
    return {"slept": state.get("slept", 0) + 1}


_builder = StateGraph(SleepyState)
_builder.add_node("sleep", sleep_one_second)
_builder.add_edge(START, "sleep")
_builder.add_edge("sleep", END)
sleepy = _builder.compile()
