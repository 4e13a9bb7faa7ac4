"""Assistants as tools: the names, descriptions and input schemas the official server gives them, and calls.

Protocol-neutral: the MCP endpoint (skeino/api/mcp.py) wraps these records in MCP types.
The derivation follows the official server's MCP handler so that a client sees the same
tool names and schemas from either server.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from skeino import serde
from skeino.runtime.assistants import AssistantService
from skeino.runtime.runs import RunService
from skeino.storage.base import Record

logger = logging.getLogger("skeino.tools")

PAGE_SIZE = 100  # tools per tools/list page, as on the official server
_MAX_ASSISTANTS = 1000  # assistants scanned to resolve a tool name
_NAME_MAX = 128
_INVALID = re.compile(r"[^a-zA-Z0-9_\-.]")

# LangChain message definitions the official server strips from input schemas: an LLM
# calling the tool sends the user's message as a plain string instead.
_MESSAGE_TYPES = frozenset({
    "AIMessage", "AIMessageChunk", "HumanMessage", "HumanMessageChunk", "ChatMessage", "ChatMessageChunk",
    "SystemMessage", "SystemMessageChunk", "FunctionMessage", "FunctionMessageChunk", "ToolMessage",
    "ToolMessageChunk",
})
_SUPPORT_TYPES = frozenset({
    "ToolCall", "ToolCallChunk", "InvalidToolCall", "UsageMetadata", "InputTokenDetails", "OutputTokenDetails",
})
_REF = "#/$defs/"


class ToolError(Exception):
    """A call that names no tool, or an ambiguous one: the protocol's invalid-params error."""


def tool_name(assistant_name: str) -> str:
    """An assistant name as a valid tool name (letters, digits, `_-.`, at most 128 characters)."""
    name = re.sub(r"\s+", "_", assistant_name.strip())
    return _INVALID.sub("", name)[:_NAME_MAX]


def _refs_messages(prop: Any) -> bool:
    if not isinstance(prop, dict) or prop.get("type") != "array":
        return False
    items = prop.get("items") or {}
    for candidate in items.get("oneOf") or items.get("anyOf") or []:
        ref = candidate.get("$ref", "") if isinstance(candidate, dict) else ""
        if ref.startswith(_REF) and ref[len(_REF):] in _MESSAGE_TYPES:
            return True
    return False


def simplify_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A message list becomes one string property; LangChain's message definitions are dropped."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict) or not set(defs) & _MESSAGE_TYPES:
        return schema
    for name in _MESSAGE_TYPES | _SUPPORT_TYPES:
        defs.pop(name, None)
    if not defs:
        del schema["$defs"]
    props = schema.get("properties") or {}
    for key, prop in list(props.items()):
        if _refs_messages(prop):
            props[key] = {"type": "string", "title": prop.get("title", key),
                          "description": "The user message to send to the agent."}
    return schema


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolOutcome:
    text: str
    is_error: bool


class AssistantTools:
    """List assistants as tools and call one as an ordinary stateless run."""

    def __init__(self, assistants: AssistantService, runs: RunService) -> None:
        self._assistants = assistants
        self._runs = runs

    async def page(self, offset: int) -> tuple[list[ToolSpec], int | None]:
        """One page of tools and the next page's offset (None on the last page)."""
        assistants = await self._assistants.search({"limit": PAGE_SIZE, "offset": offset})
        seen: set[str] = set()
        tools: list[ToolSpec] = []
        for assistant in assistants:
            name = tool_name(assistant["name"])
            if name in seen:
                logger.warning("assistant %s is not listed as a tool: its name %r is taken",
                               assistant["assistant_id"], name)
                continue
            seen.add(name)
            spec = await self._spec(assistant, name)
            if spec is not None:
                tools.append(spec)
        return tools, (offset + PAGE_SIZE if len(assistants) == PAGE_SIZE else None)

    async def _spec(self, assistant: Record, name: str) -> ToolSpec | None:
        try:
            schema = (await self._assistants.schemas(assistant["assistant_id"])).get("input_schema")
        except Exception as exc:  # one graph that cannot describe itself must not hide the others
            logger.warning("assistant %s is not listed as a tool: %s: %s", assistant["assistant_id"],
                           type(exc).__name__, exc)
            return None
        if schema is None:
            logger.warning("assistant %s is not listed as a tool: its graph has no input schema",
                           assistant["assistant_id"])
            return None
        schema = simplify_schema(dict(schema))
        schema.setdefault("type", "object")  # MCP wants an object schema
        description = assistant.get("description") or f"Tool based on the {assistant['name']} assistant"
        return ToolSpec(name, assistant["name"], description, schema)

    async def _resolve(self, name: str) -> Record:
        assistants = await self._assistants.search({"limit": _MAX_ASSISTANTS})
        matches = [a for a in assistants if name and tool_name(a["name"]) == name]
        if not matches:
            raise ToolError(f"Unknown tool: {name}")
        if len(matches) > 1:
            raise ToolError("Multiple tools found with the same name.")
        return matches[0]

    async def call(self, name: str, arguments: dict[str, Any], context: dict[str, Any] | None = None) -> ToolOutcome:
        """Run the assistant statelessly and wait; its final values as text, or its error."""
        assistant = await self._resolve(name)
        body: dict[str, Any] = {"assistant_id": assistant["assistant_id"], "input": arguments,
                                "metadata": {"source": "mcp"}}
        if context:
            body["context"] = context
        run, _ = await self._runs.create(None, body)
        result = serde.loads(serde.dumps(await self._runs.wait_for(run)))
        if isinstance(result, dict) and "__error__" in result:
            error = result["__error__"]
            return ToolOutcome(str(error.get("error") if isinstance(error, dict) else error), True)
        # The official server answers the Python repr of the JSON values; clients parse either.
        return ToolOutcome(repr(result), False)
