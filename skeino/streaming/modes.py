"""Map the API's stream modes onto LangGraph's and LangGraph's chunks onto SSE events.

Event names and payloads are the official server's (docs/streaming.md): one event
per LangGraph chunk, named after the API mode, with `|<namespace>` appended for
chunks from subgraphs when `stream_subgraphs` is on.
"""

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

# The pseudo-mode under which the executor hands over one astream_events item.
EVENTS = "__events__"

# LangChain marks its plumbing runs (e.g. a graph's `__start__` writer) with this tag;
# tracers and the official server leave them out of the `events` stream.
_HIDDEN_TAG = "langsmith:hidden"


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
    """The `{checkpoint_id, thread_id, checkpoint_ns[, checkpoint_map]}` a config points at, if any."""
    if not config:
        return None
    conf = config.get("configurable") or {}
    if not conf.get("thread_id") or not conf.get("checkpoint_id"):
        return None
    ref: dict[str, Any] = {"checkpoint_id": conf["checkpoint_id"], "thread_id": conf["thread_id"]}
    if "checkpoint_ns" in conf:
        ref["checkpoint_ns"] = conf["checkpoint_ns"] or ""
    if "checkpoint_map" in conf:
        ref["checkpoint_map"] = conf["checkpoint_map"]
    return ref


def _debug_task(task: Any) -> Any:
    # A task that runs a subgraph carries the subgraph's config as `state`; debug
    # clients get it as `checkpoint` instead.
    state = task.get("state") if isinstance(task, dict) else None
    if not isinstance(state, dict) or not state.get("configurable"):
        return task
    out = {k: v for k, v in task.items() if k != "state"}
    out["checkpoint"] = state["configurable"]
    return out


class StreamMapper:
    """Turns (namespace, LangGraph mode, chunk) into the API's (event, data) pairs.

    One mapper per run: the legacy `messages` mode accumulates each message's chunks.
    """

    def __init__(self, modes: list[str], subgraphs: bool) -> None:
        self.modes = set(modes)
        self.subgraphs = subgraphs
        self.events_mode = "events" in self.modes
        self._partial: dict[str, BaseMessage] = {}

    def langgraph_modes(self) -> list[str]:
        wanted = {API_TO_LANGGRAPH[m] for m in self.modes} - {None}
        return [m for m in (*_INTERNAL, *sorted(wanted - set(_INTERNAL)))]  # type: ignore[arg-type]

    def _name(self, event: str, ns: tuple[str, ...]) -> str:
        return f"{event}|{'|'.join(ns)}" if ns else event

    def map(self, ns: tuple[str, ...], mode: str, chunk: Any) -> Iterable[tuple[str, Any]]:
        if ns and not self.subgraphs:
            return ()
        if mode == EVENTS:  # one astream_events item, already in wire shape
            if _HIDDEN_TAG in (chunk.get("tags") or ()):
                return ()
            return (("events", chunk),)
        if mode == "messages":
            return self._messages(ns, chunk)
        if mode not in self.modes:  # values/updates are always fed for the runtime's sake
            return ()
        if mode == "debug":
            return ((self._name(mode, ns), self._debug(chunk)),)
        # Everything else goes out as LangGraph made it; values keep their `__interrupt__`
        # key, where front ends (useStream) look for a run's pending interrupts.
        return ((self._name(mode, ns), chunk),)

    @staticmethod
    def _debug(chunk: Any) -> Any:
        if isinstance(chunk, dict) and chunk.get("type") == "checkpoint" and chunk.get("payload"):
            payload = dict(chunk["payload"])
            payload["checkpoint"] = _checkpoint_ref(payload.get("config"))
            payload["parent_checkpoint"] = _checkpoint_ref(payload.get("parent_config"))
            payload["tasks"] = [_debug_task(t) for t in payload.get("tasks") or []]
            return {**chunk, "payload": payload}
        return chunk

    def _messages(self, ns: tuple[str, ...], chunk: Any) -> list[tuple[str, Any]]:
        message, metadata = chunk
        out: list[tuple[str, Any]] = []
        if "messages-tuple" in self.modes:
            out.append((self._name("messages", ns), [message, metadata]))
        elif "messages" in self.modes:
            # Asking for both: the official server sends only the tuples.
            # The legacy mode sends the whole message so far on every token; like the
            # official server it never names the subgraph the message came from.
            msg_id = getattr(message, "id", None) or ""
            previous = self._partial.get(msg_id)
            if previous is None:
                out.append(("messages/metadata", {msg_id: {"metadata": metadata}}))
                merged = message
            elif isinstance(previous, BaseMessageChunk) and isinstance(message, BaseMessageChunk):
                merged = previous + message
            else:
                merged = message
            self._partial[msg_id] = merged
            if isinstance(message, BaseMessageChunk):
                out.append(("messages/partial", [message_chunk_to_message(merged)]))
            else:  # a finished message (e.g. a tool result) arrives whole
                full = message_chunk_to_message(merged) if isinstance(merged, BaseMessageChunk) else merged
                out.append(("messages/complete", [full]))
        return out
