"""Shape LangGraph StateSnapshots into the ThreadState wire objects."""

from __future__ import annotations

from typing import Any

from langgraph.types import Interrupt, StateSnapshot

from skeino import serde


def interrupt_dict(item: Interrupt | Any) -> dict[str, Any]:
    if isinstance(item, Interrupt):
        return {"id": item.id, "value": serde.to_jsonable(item.value)}
    return serde.to_jsonable(item)


def _saved_checkpoint(config: Any) -> dict[str, Any] | None:
    """The checkpoint a state was read from; None when none was ever written (a new thread).

    The official React hook tells a new thread by this null.
    """
    conf = (config or {}).get("configurable") or {}
    if not conf.get("thread_id") or not conf.get("checkpoint_id"):
        return None
    checkpoint = {"checkpoint_id": conf["checkpoint_id"], "thread_id": conf["thread_id"],
                  "checkpoint_ns": conf.get("checkpoint_ns") or ""}
    if "checkpoint_map" in conf:
        checkpoint["checkpoint_map"] = conf["checkpoint_map"]
    return checkpoint


def snapshot_to_state(snapshot: StateSnapshot) -> dict[str, Any]:
    """A ThreadState dict with plain-JSON values."""
    tasks = []
    for task in snapshot.tasks:
        sub_state = task.state
        tasks.append({
            "id": task.id,
            "name": task.name,
            "path": list(task.path) if task.path else [],
            "error": str(task.error) if task.error is not None else None,
            "interrupts": [interrupt_dict(i) for i in task.interrupts],
            # A subgraph task not started yet: where its checkpoints will be (namespace, no id yet).
            "checkpoint": serde.to_jsonable(sub_state.get("configurable")) if isinstance(sub_state, dict) else None,
            "state": snapshot_to_state(sub_state) if isinstance(sub_state, StateSnapshot) else None,
            "result": serde.to_jsonable(task.result) if task.result is not None else None,
        })
    checkpoint = _saved_checkpoint(snapshot.config)
    parent = _saved_checkpoint(snapshot.parent_config)
    return {
        "values": serde.to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": serde.to_jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [interrupt_dict(i) for i in getattr(snapshot, "interrupts", ())],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def empty_state() -> dict[str, Any]:
    """The state of a thread no graph has written a checkpoint for yet, as the official server answers it."""
    return {
        "values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None, "checkpoint": None,
        "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None, "parent_checkpoint_id": None,
    }


def thread_interrupts(snapshot: StateSnapshot) -> dict[str, list[dict[str, Any]]]:
    """The thread object's `interrupts`: task id → pending interrupts."""
    return {t.id: [interrupt_dict(i) for i in t.interrupts] for t in snapshot.tasks if t.interrupts}
