"""Turn a run's LangGraph chunks into protocol-v2 events (the `langchain-protocol` schema).

One `ProtocolMapper` per run, fed the same `(namespace, mode, chunk)` items as the v1
`StreamMapper`. It publishes onto the thread's log:

- `lifecycle`: the run `running`, then `completed` / `failed` / `interrupted`; each
  subgraph `started` when its namespace first shows up and `completed` when its parent
  reports the node's update;
- `values` (without `__interrupt__`), `updates` as `{node, values}`, `custom` as
  `{payload}`, `tasks` as LangGraph makes them, `checkpoints` as `{id, parent_id, step, source}`;
- `messages`: each streamed AI message as `message-start`, per content block
  `content-block-start` / `-delta` / `-finish`, then `message-finish` with the usage;
- `tools`: `tool-started` / `tool-finished` / `tool-error` from LangGraph's `tools` mode;
- `input.requested`: one per pending interrupt, `{interrupt_id, payload}`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from langchain_core.language_models import _compat_bridge as bridge
from langchain_core.messages import AIMessageChunk
from langchain_protocol.protocol import (
    AgentTreeNode,
    Checkpoint,
    InputRequestedData,
    LifecycleData,
    MessagesData,
    UpdatesData,
)
from langgraph.types import Interrupt

from skeino import serde
from skeino.runtime.threadlog import ProtocolEvent, ThreadLog, next_seq

Namespace = tuple[str, ...]

logger = logging.getLogger("skeino.runs")

# LangGraph stream modes a run started through the v2 protocol asks for, so every
# channel has something to carry.
FULL_MODES = ("values", "updates", "messages", "custom", "tools", "checkpoints", "tasks")

CHANNELS = frozenset({"values", "updates", "messages", "tools", "lifecycle", "input", "custom", "tasks",
                      "checkpoints"})


def channel_of(method: str) -> str:
    return "input" if method == "input.requested" else method


def segment_name(segment: str) -> str:
    """`child:1a2b…` → `child`: a namespace segment without its task id."""
    return segment.split(":", 1)[0]


_TEXT_KEY = ("__lc_no_index__", "text", 0)  # the bridge's key for an unindexed text block


def _blocks(message: AIMessageChunk) -> list[tuple[Any, dict[str, Any]]]:
    """The chunk's content blocks as the bridge sees them, without its cost for plain text.

    A token of plain text is most of what streams; building `content_blocks` for it
    costs several times the rest of the event, and gives this same single text block.
    """
    if (type(message.content) is str and not message.tool_call_chunks and not message.tool_calls
            and not message.invalid_tool_calls and not message.additional_kwargs):
        return [(_TEXT_KEY, {"type": "text", "text": message.content})] if message.content else []
    return bridge._iter_protocol_blocks(message)


class _OpenMessage:
    """One AI message being streamed: its blocks by source key, with their wire index."""

    def __init__(self) -> None:
        self.blocks: dict[Any, tuple[int, Any]] = {}
        self.usage: Any = None
        self.response_metadata: dict[str, Any] = {}


class ProtocolMapper:
    """Publishes one run's protocol events onto its thread's log."""

    def __init__(self, log: ThreadLog, run_id: str, graph_name: str,
                 outbox: list[ProtocolEvent] | None = None) -> None:
        self._log = log
        self._outbox = outbox  # also collects the events for the other replicas, when there are any
        self._run_id = run_id
        self._graph_name = graph_name
        self._messages: dict[tuple[Namespace, str], _OpenMessage] = {}
        self._namespaces: dict[Namespace, str] = {}  # open subgraph namespace → status
        self._interrupts: set[str] = set()
        self._interrupted = False

    # publishing -------------------------------------------------------------------
    def _emit(self, method: str, ns: Namespace, data: Any, *, node: str | None = None,
              name: str | None = None) -> None:
        seq = next_seq()
        params: dict[str, Any] = {"namespace": list(ns), "timestamp": int(time.time() * 1000), "data": data}
        if node is not None:
            params["node"] = node
        frame = {"type": "event", "event_id": str(seq), "seq": seq, "method": method, "params": params}
        event = ProtocolEvent(seq, self._run_id, method, ns, name, bytes(memoryview(serde.dumps(frame))))
        self._log.append(event)
        if self._outbox is not None:
            self._outbox.append(event)

    def _lifecycle(self, ns: Namespace, data: LifecycleData | dict[str, Any]) -> None:
        self._emit("lifecycle", ns, data)

    # run lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        self._lifecycle((), {"event": "running", "graph_name": self._graph_name})

    def finish(self, status: str, error: str | None = None) -> None:
        """The run ended with the executor's status (success/error/timeout/interrupted)."""
        for key in list(self._messages):
            self._finish_message(*key)
        if self._interrupted:
            final = "interrupted"
        elif status == "success":
            final = "completed"
        else:
            final = "failed"
            error = error or ("Run was cancelled" if status == "interrupted" else f"Run ended with status {status}")
        for ns in sorted(self._namespaces, key=len, reverse=True):
            self._lifecycle(ns, {"event": final, "graph_name": segment_name(ns[-1])})
        self._namespaces.clear()
        if self._interrupted:
            return  # announced when the interrupt arrived
        data: dict[str, Any] = {"event": final, "graph_name": self._graph_name}
        if error:
            data["error"] = error
        self._lifecycle((), data)

    # chunks -----------------------------------------------------------------------
    def feed(self, ns: Namespace, mode: str, chunk: Any) -> None:
        """Map one chunk; a chunk the mapper cannot read costs the v2 stream that event, never the run."""
        try:
            self._feed(ns, mode, chunk)
        except Exception:
            logger.warning("run %s: no protocol-v2 event for a %s chunk", self._run_id, mode, exc_info=True)

    def _feed(self, ns: Namespace, mode: str, chunk: Any) -> None:
        self._open_namespaces(ns)
        if mode == "values":
            self._values(ns, chunk)
        elif mode == "updates":
            self._updates(ns, chunk)
        elif mode == "messages":
            self._message_chunk(ns, chunk)
        elif mode == "tools" and isinstance(chunk, dict):
            self._emit("tools", ns, chunk)
        elif mode == "custom":
            self._emit("custom", ns, {"payload": chunk})
        elif mode == "tasks":
            self._emit("tasks", ns, chunk)
        elif mode == "checkpoints" and isinstance(chunk, dict):
            self._checkpoint(ns, chunk)

    def _open_namespaces(self, ns: Namespace) -> None:
        for depth in range(1, len(ns) + 1):
            prefix = ns[:depth]
            if prefix in self._namespaces:
                continue
            self._namespaces[prefix] = "started"
            segment = prefix[-1]
            data: dict[str, Any] = {"event": "started", "namespace": list(prefix), "graph_name": segment_name(segment)}
            if ":" in segment:
                data["trigger_call_id"] = segment.split(":", 1)[1]
            self._lifecycle(prefix, data)

    def _values(self, ns: Namespace, chunk: Any) -> None:
        if isinstance(chunk, dict) and "__interrupt__" in chunk:
            self._input_requested(ns, chunk["__interrupt__"])
            chunk = {k: v for k, v in chunk.items() if k != "__interrupt__"}
            if not chunk:
                return
        self._emit("values", ns, chunk)

    def _updates(self, ns: Namespace, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            return
        for node, values in chunk.items():
            if node == "__interrupt__":
                self._input_requested(ns, values)
                continue
            update: UpdatesData = {"node": node, "values": values if isinstance(values, dict) else {"value": values}}
            self._emit("updates", ns, update, node=node)
            self._close_children(ns, node)

    def _close_children(self, parent: Namespace, node: str) -> None:
        """The node's update at `parent` means the subgraph it ran has finished."""
        done = [c for c in self._namespaces
                if len(c) > len(parent) and c[:len(parent)] == parent and segment_name(c[len(parent)]) == node]
        for child in sorted(done, key=len, reverse=True):
            del self._namespaces[child]
            self._lifecycle(child, {"event": "completed", "graph_name": segment_name(child[-1])})

    def _input_requested(self, ns: Namespace, interrupts: Any) -> None:
        for item in interrupts or ():
            interrupt_id = item.id if isinstance(item, Interrupt) else (item or {}).get("id")
            if not interrupt_id or interrupt_id in self._interrupts:
                continue
            self._interrupts.add(interrupt_id)
            value = item.value if isinstance(item, Interrupt) else item.get("value")
            data: InputRequestedData = {"interrupt_id": interrupt_id, "payload": value}
            self._emit("input.requested", ns, data)
            if not self._interrupted:
                self._interrupted = True
                self._lifecycle((), {"event": "interrupted", "graph_name": self._graph_name})

    def _checkpoint(self, ns: Namespace, chunk: dict[str, Any]) -> None:
        conf = (chunk.get("config") or {}).get("configurable") or {}
        if not conf.get("checkpoint_id"):
            return
        metadata = chunk.get("metadata") or {}
        data: Checkpoint = {"id": conf["checkpoint_id"], "step": metadata.get("step", 0),
                            "source": metadata.get("source", "loop")}
        parent = ((chunk.get("parent_config") or {}).get("configurable") or {}).get("checkpoint_id")
        if parent:
            data["parent_id"] = parent
        self._emit("checkpoints", ns, data)

    # messages ---------------------------------------------------------------------
    def _message_chunk(self, ns: Namespace, chunk: Any) -> None:
        message, _metadata = chunk
        # Messages a node returns whole (tool results, a node's own AIMessage) are not
        # token streams; the official server leaves them to `values` and `tools`.
        if not isinstance(message, AIMessageChunk):
            return
        key = (ns, message.id or "")
        state = self._messages.get(key)
        if state is None:
            state = self._messages[key] = _OpenMessage()
            self._emit_message(ns, bridge._build_message_start(message, message.id))
        if message.response_metadata:
            state.response_metadata.update(message.response_metadata)
        for block_key, block in _blocks(message):
            if block_key not in state.blocks:
                index = len(state.blocks)
                state.blocks[block_key] = (index, dict(block))
                self._emit_message(ns, {"event": "content-block-start", "index": index,
                                        "content": bridge._start_skeleton(block)})
            else:
                index, existing = state.blocks[block_key]
                state.blocks[block_key] = (index, bridge._accumulate(existing, block))
            delta = bridge._to_content_delta(block)
            if delta is not None:
                self._emit_message(ns, {"event": "content-block-delta", "index": index, "delta": delta})
        if message.usage_metadata:
            state.usage = bridge._accumulate_usage(state.usage, message.usage_metadata)
        if message.chunk_position == "last":
            self._finish_message(*key)

    def _finish_message(self, ns: Namespace, message_id: str) -> None:
        state = self._messages.pop((ns, message_id))
        for index, block in state.blocks.values():
            self._emit_message(ns, bridge._finalize_and_build_finish(index, block))
        finish: dict[str, Any] = {"event": "message-finish"}
        usage = bridge._isolate_usage(state.usage)
        if usage:
            finish["usage"] = usage
        self._emit_message(ns, finish)

    def _emit_message(self, ns: Namespace, data: MessagesData | dict[str, Any]) -> None:
        self._emit("messages", ns, data)


def matches(event: ProtocolEvent, channels: frozenset[str], namespaces: list[list[str]] | None,
            depth: int | None) -> bool:
    """Whether a subscription (channels, namespace prefixes, depth below them) wants the event."""
    channel = channel_of(event.method)
    if channel not in channels and not (channel == "custom" and event.name and f"custom:{event.name}" in channels):
        return False
    if not namespaces:
        return depth is None or len(event.namespace) <= depth
    for prefix in namespaces:
        if _prefix_match(event.namespace, prefix) and (depth is None or len(event.namespace) - len(prefix) <= depth):
            return True
    return False


def _prefix_match(ns: Namespace, prefix: list[str]) -> bool:
    if len(prefix) > len(ns):
        return False
    # A prefix segment without a task id matches any task of that node.
    return all(seg == cand or (":" not in seg and segment_name(cand) == seg) for seg, cand in zip(prefix, ns))


def parse_filter(params: Any) -> tuple[frozenset[str], list[list[str]] | None, int | None] | str:
    """Validate a subscription filter; a string is the one-sentence reason it is refused."""
    if not isinstance(params, dict):
        return "The subscription filter must be a JSON object."
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels:
        return "channels is required and must be a non-empty array."
    bad = [repr(c) if not isinstance(c, str) else c for c in channels
           if not isinstance(c, str) or not (c in CHANNELS or (c.startswith("custom:") and len(c) > 7))]
    if bad:
        return (f"channels contains unsupported entries: {', '.join(bad[:5])}. Allowed: "
                f"{', '.join(sorted(CHANNELS))}, or any `custom:<name>`.")
    namespaces = params.get("namespaces")
    if namespaces is not None and not (isinstance(namespaces, list) and all(
            isinstance(ns, list) and all(isinstance(s, str) for s in ns) for ns in namespaces)):
        return "namespaces must be an array of arrays of strings."
    depth = params.get("depth")
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 0):
        return "depth must be a non-negative integer."
    return frozenset(channels), namespaces or None, depth


def agent_tree(kept: list[ProtocolEvent], run_id: str | None) -> AgentTreeNode | None:
    """The root graph and subgraphs of a run (the newest kept one by default), from its lifecycle."""
    events = [e for e in kept if e.method == "lifecycle"]
    run_id = run_id or (events[-1].run_id if events else None)
    nodes: dict[Namespace, AgentTreeNode] = {}
    for event in events:
        if event.run_id != run_id:
            continue
        data = orjson.loads(event.frame)["params"]["data"]
        node = nodes.setdefault(event.namespace, {"namespace": list(event.namespace), "status": "started",
                                                  "graph_name": data.get("graph_name") or "", "children": []})
        node["status"] = data["event"]
    for ns, node in sorted(nodes.items(), key=lambda item: len(item[0])):
        if ns and ns[:-1] in nodes:
            nodes[ns[:-1]].setdefault("children", []).append(node)
    return nodes.get(())


def announced_interrupts(kept: list[ProtocolEvent]) -> set[str]:
    """Interrupt ids the newest kept run has asked about (its end may not be recorded yet)."""
    if not kept:
        return set()
    newest = kept[-1].run_id
    return {orjson.loads(e.frame)["params"]["data"]["interrupt_id"] for e in kept
            if e.run_id == newest and e.method == "input.requested"}
