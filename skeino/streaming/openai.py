"""OpenAI chat-completions shapes: OpenAI messages in, completions and chunks out.

Pure conversions (no I/O) between the OpenAI wire format and LangChain message dicts,
plus `ChunkMapper`, which turns a run's `messages-tuple` stream into
`chat.completion.chunk` objects and remembers what it saw (usage, the last reply).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

from skeino.errors import SkeinoError

# OpenAI role → LangChain message type.
_ROLE_TO_TYPE = {"system": "system", "developer": "system", "user": "human", "assistant": "ai", "tool": "tool"}
# Content part types each role may carry; anything else is refused rather than dropped.
_USER_PARTS = {"text", "image_url", "input_audio", "file"}
_TEXT_PARTS = {"text"}
_ASSISTANT_PARTS = {"text", "refusal"}
# Message keys clients echo back from responses; harmless when empty.
_ECHOED_KEYS = {"refusal", "annotations", "audio", "function_call"}
_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id"} | _ECHOED_KEYS
# Finish reasons a model may report that the client should see instead of "stop".
_MODEL_FINISH_REASONS = {"length", "content_filter"}


class RequestError(SkeinoError):
    """An error OpenAI clients understand: HTTP status, message, offending param and code."""

    def __init__(self, detail: str, *, status_code: int = 400, param: str | None = None,
                 code: str | None = None, kind: str | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.param = param
        self.code = code
        self.kind = kind or ("invalid_request_error" if status_code < 500 else "server_error")


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# requests ------------------------------------------------------------------------------
def to_langchain_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """OpenAI chat messages → LangChain message dicts (the graph's `messages` input)."""
    return [_to_langchain(message, f"messages[{i}]") for i, message in enumerate(messages)]


def _to_langchain(message: Any, where: str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise RequestError(f"'{where}' must be an object", param=where)
    role = message.get("role")
    if role == "function":
        raise RequestError("role 'function' is deprecated and not supported; use 'tool'", param=f"{where}.role")
    if role not in _ROLE_TO_TYPE:
        raise RequestError(f"Invalid value for '{where}.role': {role!r}; supported: {', '.join(_ROLE_TO_TYPE)}",
                           param=f"{where}.role")
    for key in message:
        if key not in _MESSAGE_KEYS:
            raise RequestError(f"Unrecognized message argument supplied: '{where}.{key}'", param=f"{where}.{key}")
    if message.get("audio") or message.get("function_call"):
        key = "audio" if message.get("audio") else "function_call"
        raise RequestError(f"'{where}.{key}' is not supported", param=f"{where}.{key}")
    out: dict[str, Any] = {"type": _ROLE_TO_TYPE[role], "content": _content(message, role, where)}
    if message.get("name") is not None:
        out["name"] = str(message["name"])
    if role == "assistant" and message.get("tool_calls"):
        out["tool_calls"] = _tool_calls(message["tool_calls"], f"{where}.tool_calls")
    if role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise RequestError(f"Missing required parameter: '{where}.tool_call_id'", param=f"{where}.tool_call_id")
        out["tool_call_id"] = message["tool_call_id"]
    return out


def _content(message: dict[str, Any], role: str, where: str) -> str | list[dict[str, Any]]:
    content = message.get("content")
    if content is None and role == "assistant":
        # An assistant turn may consist of tool calls or a refusal only.
        return message.get("refusal") or ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(f"Invalid type for '{where}.content': expected a string or an array of content parts",
                           param=f"{where}.content")
    allowed = _USER_PARTS if role == "user" else _ASSISTANT_PARTS if role == "assistant" else _TEXT_PARTS
    return [_part(part, allowed, f"{where}.content[{j}]") for j, part in enumerate(content)]


def _part(part: Any, allowed: set[str], where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in allowed:
        raise RequestError(f"Invalid content part '{where}': type {kind!r} is not supported here; "
                           f"supported: {', '.join(sorted(allowed))}", param=f"{where}.type")
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    if kind == "text" and not isinstance(part.get("text"), str):
        raise RequestError(f"Missing required parameter: '{where}.text'", param=f"{where}.text")
    # image_url, input_audio and file parts are already in a shape LangChain chat models accept.
    return dict(part)


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise RequestError(f"Invalid type for '{where}': expected an array", param=where)
    out = []
    for i, call in enumerate(calls):
        here = f"{where}[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise RequestError(f"'{here}' must be a function tool call", param=here)
        try:
            args = json.loads(function.get("arguments") or "{}")
        except (TypeError, ValueError):
            args = None
        if not isinstance(args, dict):
            raise RequestError(f"'{here}.function.arguments' must be a JSON object encoded as a string",
                               param=f"{here}.function.arguments")
        out.append({"id": call.get("id"), "name": function.get("name"), "args": args, "type": "tool_call"})
    return out


def new_messages_start(messages: list[dict[str, Any]], thread_has_history: bool) -> int:
    """Index of the first message a thread does not have yet: after the request's last assistant message."""
    if not thread_has_history:
        return 0
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            return i + 1
    return 0


def content_text(content: Any) -> str:
    """The text of LangChain or OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "".join(texts)


# interrupts ----------------------------------------------------------------------------
def interrupt_text(interrupts: list[dict[str, Any]], resumable: bool) -> str:
    """The assistant message that shows a pending interrupt and how to answer it."""
    value = interrupts[0].get("value")
    shown = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    lines = ["The assistant paused and is waiting for your input:", "", shown, ""]
    if len(interrupts) > 1:
        lines += [f"({len(interrupts) - 1} more question(s) will follow.)", ""]
    if resumable:
        lines.append("Reply to this message to answer; your reply resumes the run.")
    else:
        lines.append("This conversation is stateless, so it cannot be resumed: send the X-Thread-Id header "
                     "to keep the conversation on a skeino thread.")
    return "\n".join(lines)


def resume_command(interrupts: list[dict[str, Any]], answer: str) -> dict[str, Any]:
    """The run command answering the first pending interrupt with the user's text."""
    if len(interrupts) == 1:
        return {"resume": answer}
    # Several are pending: answer them one at a time, in order.
    return {"resume": {interrupts[0]["id"]: answer}}


# responses -----------------------------------------------------------------------------
def model_object(assistant: dict[str, Any]) -> dict[str, Any]:
    """An assistant as an OpenAI model: graph id for default assistants, assistant id otherwise."""
    default = (assistant.get("metadata") or {}).get("created_by") == "system"
    return {
        "id": assistant["graph_id"] if default else assistant["assistant_id"],
        "object": "model",
        "created": _unix(assistant.get("created_at")),
        "owned_by": "skeino",
        "name": assistant.get("name") or assistant["graph_id"],
    }


def _unix(timestamp: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(timestamp)).timestamp())
    except ValueError:
        return 0


def add_usage(total: dict[str, Any] | None, usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Sum two LangChain usage_metadata dicts (nested token details included)."""
    if not usage:
        return total
    if not total:
        return copy.deepcopy(usage)
    out = dict(total)
    for key, value in usage.items():
        if isinstance(value, dict):
            out[key] = add_usage(out.get(key) or {}, value)
        elif isinstance(value, (int, float)):
            out[key] = (out.get(key) or 0) + value
    return out


def openai_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """LangChain usage_metadata → OpenAI usage."""
    usage = usage or {}
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }
    cached = (usage.get("input_token_details") or {}).get("cache_read")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": int(cached)}
    reasoning = (usage.get("output_token_details") or {}).get("reasoning")
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": int(reasoning)}
    return out


def openai_tool_calls(tool_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """LangChain tool calls (args as a dict) → OpenAI tool calls (arguments as a JSON string)."""
    return [
        {"id": call.get("id") or f"call_{i}", "type": "function",
         "function": {"name": call.get("name"), "arguments": json.dumps(call.get("args") or {})}}
        for i, call in enumerate(tool_calls or [])
    ]


def assistant_message(text: str, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    """An OpenAI assistant message; content is null when the turn is tool calls only."""
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None,
                               "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def join_text(*parts: str) -> str:
    """Non-empty texts separated by a blank line."""
    return "\n\n".join(p for p in parts if p)


def completion(completion_id: str, model: str, created: int, message: dict[str, Any], finish_reason: str,
               usage: dict[str, Any] | None) -> dict[str, Any]:
    """A `chat.completion` object with one choice."""
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": openai_usage(usage) if usage else None,
        "system_fingerprint": None,
    }


class ChunkMapper:
    """Maps one run's LangGraph message chunks onto `chat.completion.chunk` dicts.

    Every AI message the run streams lands in the one choice: text of consecutive AI
    messages is separated by a blank line, and tool calls get wire indexes that stay
    unique across messages so clients can assemble them. Usage is summed over the run.
    """

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool = False) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.usage: dict[str, Any] | None = None
        self.ai_ids: list[str] = []  # ids of the AI messages this run produced, in order
        self._wrote_text = False
        self._needs_separator = False
        self._index_base = 0
        self._indexes: dict[int, int] = {}  # the current message's chunk index → wire index
        self._text = ""  # the current (last) AI message, assembled
        self._calls: dict[int, dict[str, Any]] = {}
        self._tool_calls_open = False  # the run's last message so far is an AI message calling tools
        self._model_finish: str | None = None

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """One chunk with one choice."""
        out = {
            "id": self.completion_id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            out["usage"] = None
        return out

    def start(self) -> dict[str, Any]:
        """The first chunk: the role."""
        return self.chunk({"role": "assistant", "content": ""})

    def feed(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Chunks for one streamed message (AI chunks or whole AI messages; others only update state)."""
        kind = message.get("type")
        if kind == "tool":
            self._tool_calls_open = False
            return []
        if kind not in ("AIMessageChunk", "ai"):
            return []
        msg_id = message.get("id") or ""
        if not self.ai_ids or self.ai_ids[-1] != msg_id:
            self._begin(msg_id)
        self.usage = add_usage(self.usage, message.get("usage_metadata"))
        reason = (message.get("response_metadata") or {}).get("finish_reason")
        if reason:
            self._model_finish = reason if reason in _MODEL_FINISH_REASONS else None
        out = []
        text = content_text(message.get("content"))
        if text:
            out.append(self.text(text))
        calls = self._tool_call_deltas(message)
        if calls:
            self._tool_calls_open = True
            out.append(self.chunk({"tool_calls": calls}))
        return out

    def text(self, text: str) -> dict[str, Any]:
        """A content delta (after a blank line when it starts a new message's text)."""
        separator = "\n\n" if self._needs_separator and self._wrote_text else ""
        self._needs_separator = False
        self._wrote_text = True
        self._text += text
        return self.chunk({"content": separator + text})

    def _begin(self, msg_id: str) -> None:
        self.ai_ids.append(msg_id)
        self._index_base += len(self._indexes)
        self._indexes = {}
        self._text = ""
        self._calls = {}
        self._needs_separator = True
        self._model_finish = None

    def _tool_call_deltas(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "ai":  # a whole message: each call complete in one delta
            parts = [{"index": i, "id": c.get("id"), "name": c.get("name"), "args": json.dumps(c.get("args") or {})}
                     for i, c in enumerate(message.get("tool_calls") or [])]
        else:
            parts = message.get("tool_call_chunks") or []
        deltas = []
        for position, part in enumerate(parts):
            local = part.get("index") if part.get("index") is not None else position
            if local not in self._indexes:
                self._indexes[local] = self._index_base + len(self._indexes)
            delta: dict[str, Any] = {"index": self._indexes[local]}
            function: dict[str, Any] = {}
            if part.get("id"):
                delta["id"] = part["id"]
                delta["type"] = "function"
            if part.get("name"):
                function["name"] = part["name"]
            function["arguments"] = part.get("args") or ""
            delta["function"] = function
            deltas.append(delta)
            self._assemble(delta)
        return deltas

    def _assemble(self, delta: dict[str, Any]) -> None:
        call = self._calls.setdefault(delta["index"], {"id": None, "type": "function",
                                                       "function": {"name": None, "arguments": ""}})
        call["id"] = delta.get("id") or call["id"]
        call["function"]["name"] = delta["function"].get("name") or call["function"]["name"]
        call["function"]["arguments"] += delta["function"]["arguments"]

    def finish_reason(self) -> str:
        """`tool_calls` when the run ended on an AI message calling tools, else the model's or `stop`."""
        if self._tool_calls_open:
            return "tool_calls"
        return self._model_finish or "stop"

    def finish(self, extra_text: str = "") -> list[dict[str, Any]]:
        """The closing chunks: optional extra text, the finish reason, then usage if asked for."""
        out = []
        if extra_text:
            self._needs_separator = True
            out.append(self.text(extra_text))
            self._tool_calls_open = False
        out.append(self.chunk({}, self.finish_reason()))
        if self.include_usage:
            out.append({
                "id": self.completion_id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": None, "choices": [], "usage": openai_usage(self.usage),
            })
        return out

    def last_message(self) -> tuple[str, list[dict[str, Any]]]:
        """The last streamed AI message as assembled from its chunks: (text, OpenAI tool calls)."""
        return self._text, [self._calls[i] for i in sorted(self._calls)]


def final_reply(values: Any, mapper: ChunkMapper) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None]:
    """The run's last AI message as (text, OpenAI tool calls, its usage_metadata); from the state, else as streamed."""
    messages = values.get("messages") if isinstance(values, dict) else None
    if isinstance(messages, list) and mapper.ai_ids:
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("type") == "ai":
                if message.get("id") == mapper.ai_ids[-1]:
                    return (content_text(message.get("content")), openai_tool_calls(message.get("tool_calls")),
                            message.get("usage_metadata"))
                break
    text, calls = mapper.last_message()
    return text, calls, None
