"""A chat agent with one tool. Offline fake model by default; a real OpenAI-compatible
model when OPENAI_API_KEY is set (OPENAI_BASE_URL and SKEINO_MODEL optional)."""

from __future__ import annotations

import os
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from fake_model import FakeChatModel


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny and 21 degrees in {city}."


TOOLS = [get_weather]


def make_model(config: RunnableConfig) -> Any:
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI  # optional extra: pip install skeino[openai]

        return ChatOpenAI(model=os.environ.get("SKEINO_MODEL", "gpt-4o-mini"), base_url=os.environ.get("OPENAI_BASE_URL"))
    tokens = config.get("configurable", {}).get("fake_tokens")
    delay = config.get("configurable", {}).get("fake_token_delay")
    options: dict[str, Any] = {"tokens": tokens}
    if delay is not None:
        options["token_delay"] = float(delay)
    return FakeChatModel(**options)


async def call_model(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    model = make_model(config).bind_tools(TOOLS)
    response = await model.ainvoke(state["messages"], config)
    return {"messages": [response]}


builder = StateGraph(MessagesState)
builder.add_node("agent", call_model)
builder.add_node("tools", ToolNode(TOOLS))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
builder.add_edge("tools", "agent")
graph = builder.compile()
