"""A run's `kwargs` as stored: without what the run's own columns already say, restored on read.

The server writes every run's kwargs with the run, thread, graph and assistant ids in
`config.configurable`, a copy of the run's metadata (plus the thread id) in
`config.metadata`, and a dozen options at their defaults (null or false): about half of
the run record. Stored, those are dropped; read, they are put back in their places and
order, so every run object a client sees is what it was. kwargs that would not come back
exactly (a custom auth handler rewrote them, a record older than an option) are stored whole.
"""

from __future__ import annotations

from typing import Any

import orjson

from skeino.storage.base import Record

MARK = "~"  # in stored kwargs only: which parts were dropped (a bit each)
_IDS_DROPPED, _METADATA_DROPPED = 1, 2
_WRAPPED = -1  # kwargs with a MARK key of their own, stored whole under "kwargs"
# The options the server writes, in its order, and the defaults left out when stored.
_ORDER = ("input", "command", "config", "context", "stream_mode", "interrupt_before", "interrupt_after", "webhook",
          "feedback_keys", "temporary", "subgraphs", "resumable", "durability", "on_disconnect", "on_completion",
          "protocol")
_DEFAULTS: dict[str, Any] = {"command": None, "interrupt_before": None, "interrupt_after": None, "webhook": None,
                             "feedback_keys": None, "temporary": False, "subgraphs": False, "resumable": False,
                             "durability": None, "on_disconnect": None, "protocol": False}
_IDS = ("run_id", "thread_id", "graph_id", "assistant_id")


def _ids(run: Record) -> dict[str, Any]:
    return {"run_id": run.get("run_id"), "thread_id": run.get("thread_id"),
            "graph_id": (run.get("metadata") or {}).get("graph_id"), "assistant_id": run.get("assistant_id")}


def _is_default(key: str, value: Any) -> bool:
    return key in _DEFAULTS and value is _DEFAULTS[key]  # None and False are singletons: 0 or "" stay


def _drop(kwargs: Record, run: Record) -> Record:
    flags = 0
    out: Record = {MARK: 0}
    for key, value in kwargs.items():
        if _is_default(key, value):
            continue
        if key == "config" and isinstance(value, dict):
            config = dict(value)
            conf = config.get("configurable")
            ids = _ids(run)
            if (isinstance(conf, dict) and None not in ids.values() and list(conf)[-4:] == list(_IDS)
                    and all(conf[k] == ids[k] for k in _IDS)):
                config["configurable"] = {k: v for k, v in conf.items() if k not in _IDS}
                flags |= _IDS_DROPPED
            if run.get("thread_id") and config.get("metadata") == {**(run.get("metadata") or {}),
                                                                     "thread_id": run["thread_id"]}:
                config["metadata"] = None  # keeps its place among config's keys
                flags |= _METADATA_DROPPED
            value = config
        out[key] = value
    out[MARK] = flags
    return out


def restore(kwargs: Any, run: Record) -> Any:
    """The kwargs the run was written with, from what is stored (kwargs stored whole come back as they are)."""
    if not isinstance(kwargs, dict) or MARK not in kwargs:
        return kwargs
    flags = kwargs[MARK]
    if flags == _WRAPPED:
        return kwargs["kwargs"]
    out: Record = {}
    for key in _ORDER:
        if key in kwargs:
            out[key] = kwargs[key]
        elif key in _DEFAULTS:
            out[key] = _DEFAULTS[key]
    for key, value in kwargs.items():
        if key not in out and key != MARK:
            out[key] = value
    config = out.get("config")
    if flags and isinstance(config, dict):
        config = out["config"] = dict(config)
        if flags & _IDS_DROPPED:
            config["configurable"] = {**config["configurable"], **_ids(run)}
        if flags & _METADATA_DROPPED:
            config["metadata"] = {**(run.get("metadata") or {}), "thread_id": run.get("thread_id")}
    return out


def stored(run: Record) -> Record:
    """The run as it is written: its kwargs without what restore() puts back."""
    kwargs = run.get("kwargs")
    if not isinstance(kwargs, dict):
        return run
    if MARK in kwargs:  # would be taken for the stored form
        return {**run, "kwargs": {MARK: _WRAPPED, "kwargs": kwargs}}
    dropped = _drop(kwargs, run)
    # Only what comes back byte for byte (key order too) is stored trimmed.
    try:
        if orjson.dumps(restore(dropped, run)) != orjson.dumps(kwargs):
            return run
    except orjson.JSONEncodeError:  # the backend's own encoder will say what is wrong
        return run
    return {**run, "kwargs": dropped}


def stored_changes(changes: Record) -> Record:
    """Changes to a run as they are written: new kwargs lose only their default options."""
    if "kwargs" not in changes:
        return changes
    return {**changes, "kwargs": stored({"kwargs": changes["kwargs"]})["kwargs"]}


def restored(row: Record) -> Record:
    """A run row read back, its kwargs whole again (in place)."""
    kwargs = row.get("kwargs")
    if isinstance(kwargs, dict) and MARK in kwargs:
        row["kwargs"] = restore(kwargs, row)
    return row
