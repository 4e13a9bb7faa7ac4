"""A run's kwargs are stored without what its columns say, and read back exactly, on every backend.

The server's kwargs repeat the run's ids and metadata and carry options at their defaults;
storage drops those and puts them back on read (skeino/storage/runkwargs.py). What comes
back must be the very kwargs written, whatever shape they have; on SQLite, key order
included (Postgres's jsonb never kept the order of keys).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from skeino.storage.base import Record, Storage
from test_storage_contract import backend, new_id, run, storage, thread, ts  # noqa: F401  (fixtures)


def server_run(thread_id: str, **options: Any) -> Record:
    """A run record shaped as the server writes it (runtime/runs.py)."""
    run_id, assistant_id = new_id(), new_id()
    metadata = {"created_by": "system", "graph_id": "agent", "assistant_id": assistant_id}
    kwargs = {
        "input": {"messages": [{"role": "user", "content": "hi"}]}, "command": None,
        "config": {"tags": [], "recursion_limit": 25,
                   "configurable": {"model": "m", "run_id": run_id, "thread_id": thread_id, "graph_id": "agent",
                                    "assistant_id": assistant_id},
                   "metadata": {**metadata, "thread_id": thread_id}},
        "context": {"model": "m"}, "stream_mode": ["values"], "interrupt_before": None, "interrupt_after": None,
        "webhook": None, "feedback_keys": None, "temporary": False, "subgraphs": False, "resumable": False,
        "durability": None, "on_disconnect": None, "on_completion": "keep", "protocol": False, **options}
    return run(thread_id, run_id=run_id, assistant_id=assistant_id, metadata=metadata, kwargs=kwargs)


def rewritten(record: Record) -> list[Record]:
    """Kwargs a handler or an older server could have written: each must come back as is."""
    kw = record["kwargs"]
    conf = kw["config"]["configurable"]
    ids_first = {k: conf[k] for k in ("thread_id", "run_id", "graph_id", "assistant_id")} | {"model": "m"}
    return [
        {**kw, "config": {**kw["config"], "configurable": ids_first}},  # the ids in another order
        {**kw, "config": {**kw["config"], "configurable": {**conf, "run_id": "other"}}},  # another run's id
        {**kw, "config": {**kw["config"], "metadata": {"created_by": "user"}}},  # metadata of its own
        {k: v for k, v in kw.items() if k != "protocol"},  # written before an option existed
        {"attempt": 2, **kw},  # a key ahead of the server's own
        {**kw, "webhook": 0, "temporary": 0, "durability": ""},  # falsy, but not the defaults
        {**kw, "~": 1},  # the stored form's marker as a key of its own
        {"input": None},
    ]


def same(read: Record | None, kwargs: Record, backend: Any) -> bool:
    """`read` carries `kwargs`: equal, and on SQLite in the same key order."""
    if read is None or read["kwargs"] != kwargs:
        return False
    return backend.name != "sqlite" or orjson.dumps(read["kwargs"]) == orjson.dumps(kwargs)


async def raw_kwargs(storage: Storage, run_id: str) -> bytes:
    """The kwargs column as the database holds it."""
    if hasattr(storage, "_db"):
        row = await storage._db.run(lambda: storage.conn.execute(  # type: ignore[attr-defined]
            "SELECT kwargs FROM runs WHERE run_id = ?", (run_id,)).fetchone())
        return row[0].encode()
    row = await storage._one("SELECT kwargs::text AS k FROM runs WHERE run_id = %s", (run_id,))  # type: ignore[attr-defined]
    return row["k"].encode()


@pytest.mark.parametrize("options", [{}, {"webhook": "http://h/x", "resumable": True, "durability": "exit"}])
async def test_server_kwargs_come_back_exactly_and_are_stored_smaller(storage: Storage, backend: Any,
                                                                     options: Any) -> None:
    parent = thread()
    assert await storage.thread_create(parent)
    record = server_run(parent["thread_id"], **options)
    written = orjson.dumps(record["kwargs"])
    kwargs = record["kwargs"]
    await storage.run_create(record, reject_if_busy=False)
    for read in (await storage.run_get(record["run_id"]),
                 (await storage.run_list(parent["thread_id"], limit=10, offset=0, status=None))[0],
                 (await storage.runs_by_ids([record["run_id"]]))[0]):
        assert same(read, kwargs, backend)
    stored = await raw_kwargs(storage, record["run_id"])
    assert len(stored) < len(written) - 300, stored
    for gone in (record["run_id"], b'"feedback_keys"', b'"created_by"'):
        assert (gone.encode() if isinstance(gone, str) else gone) not in stored


async def test_kwargs_of_any_other_shape_come_back_as_written(storage: Storage, backend: Any) -> None:
    parent = thread()
    assert await storage.thread_create(parent)
    for i in range(len(rewritten(server_run(parent["thread_id"])))):
        base = server_run(parent["thread_id"])  # the same run's ids: only the shape differs
        kwargs = rewritten(base)[i]
        record = {**base, "kwargs": kwargs}
        await storage.run_create(record, reject_if_busy=False)
        read = await storage.run_get(record["run_id"])
        assert same(read, kwargs, backend), kwargs


async def test_kwargs_updated_later_come_back_as_written(storage: Storage, backend: Any) -> None:
    parent = thread()
    assert await storage.thread_create(parent)
    record = server_run(parent["thread_id"])
    await storage.run_create(record, reject_if_busy=False)
    retried = {**record["kwargs"], "command": None, "attempt": 2}  # what a retry after a crash writes
    updated = await storage.run_update(record["run_id"], {"status": "pending", "kwargs": retried})
    assert same(updated, retried, backend)
    assert same(await storage.run_get(record["run_id"]), retried, backend)
    marked = {"~": 1, **retried}
    assert same(await storage.run_update(record["run_id"], {"kwargs": marked}), marked, backend)
