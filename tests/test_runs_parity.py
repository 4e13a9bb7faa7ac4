"""Runs where client code can tell skeino from the official server, compared with `langgraph dev`.

Each test names what it compared: the same request sent with the official SDK to the
official development server (langgraph-api 0.16.7, langgraph 1.2.24) serving this
directory's langgraph.json, and to skeino.
"""

from __future__ import annotations

from typing import Any

import pytest


# Compared: runs.wait on context_dataclass / context_pydantic / context_typeddict with no
# context, `{}`, `{"model": "x"}`, `{"model": "x", "bogus": 1}` and with only
# config.configurable {"model": "fromcfg", "zzz": 1}; the official server answered exactly
# the values asserted here (TypedDict schemas have no defaults: LangGraph gives None).
DEFAULTS = {"model": "fake:default", "temperature": 0.5}


@pytest.mark.parametrize("graph_id,kind", [("context_dataclass", "DataclassContext"),
                                           ("context_pydantic", "PydanticContext")])
async def test_context_defaults_from_schema(client: Any, graph_id: str, kind: str) -> None:
    for context in (None, {}):
        thread = await client.threads.create()
        extra = {} if context is None else {"context": context}
        result = await client.runs.wait(thread["thread_id"], graph_id, input={}, **extra)
        assert result == {"context": {"kind": kind, **DEFAULTS}}, context
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], graph_id, input={}, context={"model": "x", "bogus": 1})
    assert result == {"context": {"kind": kind, **DEFAULTS, "model": "x"}}
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], graph_id, input={},
                                    config={"configurable": {"model": "fromcfg", "zzz": 1}})
    assert result == {"context": {"kind": kind, **DEFAULTS, "model": "fromcfg"}}


async def test_context_typeddict(client: Any) -> None:
    thread = await client.threads.create()
    assert await client.runs.wait(thread["thread_id"], "context_typeddict", input={}) == {"context": None}
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "context_typeddict", input={},
                                    context={"model": "x", "bogus": 1})
    assert result == {"context": {"kind": "dict", "model": "x"}}


async def test_context_defaults_on_a_stream(client: Any) -> None:
    thread = await client.threads.create()
    chunks = [c async for c in client.runs.stream(thread["thread_id"], "context_dataclass", input={},
                                                    stream_mode="values")]
    assert chunks[-1].data == {"context": {"kind": "DataclassContext", **DEFAULTS}}
