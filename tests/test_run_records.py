"""Run objects read back from storage are the ones the server answered at creation.

Storage keeps a run's kwargs without what its columns repeat (skeino/storage/runkwargs.py);
a client must not be able to tell: the run a create answers (built in memory, never read
back) and the same run from get and list are equal, kwargs key order included on SQLite
(Postgres's jsonb never kept the order of keys).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers import raw, tag
from serverproc import BACKEND

pytestmark = pytest.mark.usefixtures("no_server_errors")

CHANGING = {"status", "updated_at"}  # the run moved on from pending since it was created


def ordered(value: Any) -> str:
    return json.dumps(value)  # keeps key order, unlike ==


@pytest.mark.parametrize("options", [
    {},
    {"config": {"configurable": {"model": "m", "thread_id": "spoofed"}, "tags": ["t"]},
     "metadata": {"mark": "x", "n": 1}, "stream_resumable": True, "durability": "exit",
     "interrupt_before": ["b"], "context": {"k": "v"}},
])
async def test_a_run_read_back_is_the_run_created(client: Any, options: dict[str, Any]) -> None:
    thread = await client.threads.create(metadata={"mark": tag()})
    tid = thread["thread_id"]
    response = await raw(client, "POST", f"/threads/{tid}/runs",
                         json={"assistant_id": "counter", "input": {"count": 0}, **options})
    assert response.status_code == 200, response.text
    created = response.json()
    await client.runs.join(tid, created["run_id"])
    got = (await raw(client, "GET", f"/threads/{tid}/runs/{created['run_id']}")).json()
    listed = (await raw(client, "GET", f"/threads/{tid}/runs")).json()
    assert len(listed) == 1
    for read in (got, listed[0]):
        assert {k: v for k, v in read.items() if k not in CHANGING} == \
            {k: v for k, v in created.items() if k not in CHANGING}
        if BACKEND == "sqlite":
            assert ordered(read["kwargs"]) == ordered(created["kwargs"])
    assert created["kwargs"]["config"]["configurable"]["run_id"] == created["run_id"]
    assert created["kwargs"]["webhook"] is None and created["kwargs"]["feedback_keys"] is None
