"""Map the API's stream modes onto LangGraph's and LangGraph's chunks onto SSE events."""

from __future__ import annotations

from typing import Any, Iterable

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message

# API stream mode → the LangGraph stream mode that feeds it (None: astream_events).
API_TO_LANGGRAPH: dict[str, str | None] = {
    "values": "values",
    "updates": "updates",
    "messages-tuple": "messages",
    "messages": "messages",
    "custom": "custom",
    "debug": "debug",
    "checkpoints": "checkpoints",
    "tasks": "tasks",
    "events": None,
}
STREAM_MODES = tuple(API_TO_LANGGRAPH)

# Always requested from LangGraph: the runtime needs the last values and any interrupt.
_INTERNAL = ("values", "updates")


def normalize_modes(stream_mode: str | list[str] | None) -> list[str]:
    if stream_mode is None:
        return ["values"]
    modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
    seen: list[str] = []
    for m in modes:
        if m not in seen:
            seen.append(m)
    return seen or ["values"]


def _checkpoint_ref(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    conf = config.get("configurable", {})
    return {
        "checkpoint_id": conf.get("checkpoint_id"),
        "thread_id": conf.get("thread_id"),
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
    }


class StreamMapper:
    """Turns (namespace, LangGraph mode, chunk) into the API's (event, data) pairs."""

    def __init__(self, modes: list[str], subgraphs: bool) -> None:
        self.modes = set(modes)
        self.subgraphs = subgraphs
        self.events_mode = "events" in self.modes
        self._partial: dict[str, BaseMessageChunk | BaseMessage] = {}

    def langgraph_modes(self) -> list[str]:
        wanted = {API_TO_LANGGRAPH[m] for m in self.modes} - {None}
        return [m for m in (*_INTERNAL, *sorted(wanted - set(_INTERNAL)))]  # type: ignore[arg-type]

    def _name(self, event: str, ns: tuple[str, ...]) -> str:
        return f"{event}|{'|'.join(ns)}" if ns else event

    def map(self, ns: tuple[str, ...], mode: str, chunk: Any) -> Iterable[tuple[str, Any]]:
        if ns and not self.subgraphs:
            return ()
        if mode == "__events__":  # one astream_events item, already in wire shape
            return (("events", chunk),)
        if mode == "messages":
            return self._messages(ns, chunk)
        if mode in ("values", "updates"):
            if mode not in self.modes:
                return ()
            if mode == "values" and isinstance(chunk, dict) and "__interrupt__" in chunk and len(chunk) == 1:
                # LangGraph reports interrupts inside the values stream; the wire does not.
                return ()
            return ((self._name(mode, ns), chunk),)
        if mode == "debug":
            return ((self._name(mode, ns), self._debug(chunk)),)
        return ((self._name(mode, ns), chunk),)

    def _debug(self, chunk: Any) -> Any:
        if isinstance(chunk, dict) and chunk.get("type") == "checkpoint":
            payload = dict(chunk.get("payload") or {})
            payload["checkpoint"] = _checkpoint_ref(payload.get("config"))
            payload["parent_checkpoint"] = _checkpoint_ref(payload.get("parent_config"))
            return {**chunk, "payload": payload}
        return chunk

    def _messages(self, ns: tuple[str, ...], chunk: Any) -> list[tuple[str, Any]]:
        message, metadata = chunk
        out: list[tuple[str, Any]] = []
        if "messages-tuple" in self.modes:
            out.append((self._name("messages", ns), [message, metadata]))
        if "messages" in self.modes:
            msg_id = getattr(message, "id", None) or ""
            previous = self._partial.get(msg_id)
            if previous is None:
                out.append((self._name("messages/metadata", ns), {msg_id: {"metadata": metadata}}))
                merged = message
            elif isinstance(previous, BaseMessageChunk) and isinstance(message, BaseMessageChunk):
                merged = previous + message
            else:
                merged = message
            self._partial[msg_id] = merged
            full = message_chunk_to_message(merged) if isinstance(merged, BaseMessageChunk) else merged
            out.append((self._name("messages/partial", ns), [full]))
        return out

