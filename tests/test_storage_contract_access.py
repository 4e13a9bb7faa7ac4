"""The Storage contract for access filters (custom auth), run against every backend of the main suite.

Each backend must apply an `access=` filter in the query itself: records outside it are
not returned, counted, or run on, and records inside it are, with the official server's
semantics for plain values, `$eq`, `$contains`, `$or` and `$and`.
"""

from __future__ import annotations

from typing import Any

import pytest

from skeino.storage.access import AccessFilter, AccessFilterError
from skeino.storage.base import Record, Storage
from test_storage_contract import assistant, backend, new_id, run, storage, thread  # noqa: F401  (fixtures)
from test_storage_contract_crons import cron


def only(where: dict[str, Any]) -> AccessFilter:
    return AccessFilter.of(where)


def ids(rows: list[Record], key: str) -> set[str]:
    return {r[key] for r in rows}


async def two_owners(storage: Storage) -> tuple[Record, Record, str]:
    tag = new_id()
    alice = thread(metadata={"owner": "alice", "tag": tag, "teams": ["red", "blue"]})
    bob = thread(metadata={"owner": "bob", "tag": tag, "teams": ["blue"]})
    await storage.thread_create(alice)
    await storage.thread_create(bob)
    return alice, bob, tag


async def test_threads_get_search_count_see_only_what_the_filter_allows(storage: Storage) -> None:
    alice, bob, tag = await two_owners(storage)
    mine = only({"owner": "alice"})
    assert (await storage.thread_get(alice["thread_id"], access=mine))["thread_id"] == alice["thread_id"]
    assert await storage.thread_get(bob["thread_id"], access=mine) is None
    assert await storage.thread_get(bob["thread_id"]) is not None  # no filter: unrestricted
    args: dict[str, Any] = {"ids": None, "metadata": {"tag": tag}, "values": None, "status": None}
    found = await storage.thread_search(**args, limit=10, offset=0, sort_by="created_at", sort_order="asc",
                                        access=mine)
    assert ids(found, "thread_id") == {alice["thread_id"]}
    assert await storage.thread_count(**args, access=mine) == 1
    assert await storage.thread_count(**args) == 2
    # The same filter by id: asking for the other's id finds nothing.
    by_id = {**args, "ids": [bob["thread_id"]]}
    assert await storage.thread_search(**by_id, limit=10, offset=0, sort_by="created_at", sort_order="asc",
                                       access=mine) == []


@pytest.mark.parametrize("where, visible", [
    ({"owner": {"$eq": "bob"}}, {"bob"}),
    ({"teams": {"$contains": "red"}}, {"alice"}),
    ({"teams": {"$contains": ["red", "blue"]}}, {"alice"}),
    ({"teams": {"$contains": "blue"}}, {"alice", "bob"}),
    ({"$or": [{"owner": "alice"}, {"owner": "bob"}]}, {"alice", "bob"}),
    ({"$and": [{"teams": {"$contains": "blue"}}, {"owner": "bob"}]}, {"bob"}),
    ({"missing": "x"}, set()),
    ({"owner": {"$contains": "alice"}}, set()),  # $contains needs a list value
])
async def test_filter_operators(storage: Storage, where: dict[str, Any], visible: set[str]) -> None:
    alice, bob, tag = await two_owners(storage)
    found = await storage.thread_search(ids=None, metadata={"tag": tag}, values=None, status=None, limit=10,
                                        offset=0, sort_by="created_at", sort_order="asc", access=only(where))
    assert {r["metadata"]["owner"] for r in found} == visible
    assert only(where).matches(alice["metadata"]) == ("alice" in visible)


async def test_runs_follow_their_threads_filter(storage: Storage) -> None:
    alice, bob, _ = await two_owners(storage)
    mine = only({"owner": "alice"})
    mine_run, other_run = run(alice["thread_id"]), run(bob["thread_id"])
    assert await storage.run_create(mine_run, reject_if_busy=False, access=mine) is not None
    # Running on the other's thread is as if the thread did not exist, and writes nothing.
    with pytest.raises(LookupError):
        await storage.run_create(other_run, reject_if_busy=False, access=mine)
    assert await storage.run_get(other_run["run_id"]) is None
    await storage.run_create(other_run, reject_if_busy=False)
    assert await storage.run_get(mine_run["run_id"], alice["thread_id"], access=mine) is not None
    assert await storage.run_get(other_run["run_id"], access=mine) is None
    assert await storage.run_get(other_run["run_id"], bob["thread_id"], access=mine) is None
    assert await storage.run_list(bob["thread_id"], limit=10, offset=0, status=None, access=mine) == []
    assert len(await storage.run_list(alice["thread_id"], limit=10, offset=0, status=None, access=mine)) == 1
    both = [mine_run["run_id"], other_run["run_id"]]
    assert ids(await storage.runs_by_ids(both, access=mine), "run_id") == {mine_run["run_id"]}
    assert ids(await storage.runs_by_ids(both), "run_id") == set(both)
    pending = ids(await storage.runs_with_status(["pending"], access=mine), "run_id")
    assert mine_run["run_id"] in pending and other_run["run_id"] not in pending
    # A missing thread created by the run itself is not subject to the filter (it is the caller's own).
    fresh = thread(metadata={"owner": "alice"})
    assert await storage.run_create(run(fresh["thread_id"]), reject_if_busy=False, new_thread=fresh,
                                    access=mine) is not None


async def test_assistants_and_crons_are_filtered_by_their_own_metadata(storage: Storage) -> None:
    tag = new_id()
    mine_a, other_a = assistant(metadata={"owner": "alice", "tag": tag}), assistant(metadata={"owner": "bob", "tag": tag})
    await storage.assistant_create(mine_a)
    await storage.assistant_create(other_a)
    mine = only({"owner": "alice"})
    assert await storage.assistant_get(other_a["assistant_id"], access=mine) is None
    assert await storage.assistant_get(mine_a["assistant_id"], access=mine) is not None
    found = await storage.assistant_search(graph_id=None, name=None, metadata={"tag": tag}, limit=10, offset=0,
                                           sort_by="created_at", sort_order="asc", access=mine)
    assert ids(found, "assistant_id") == {mine_a["assistant_id"]}
    assert await storage.assistant_count(graph_id=None, name=None, metadata={"tag": tag}, access=mine) == 1

    mine_c, other_c = cron(metadata={"owner": "alice", "tag": tag}), cron(metadata={"owner": "bob", "tag": tag})
    await storage.cron_create(mine_c)
    await storage.cron_create(other_c)
    assert await storage.cron_get(other_c["cron_id"], access=mine) is None
    assert await storage.cron_get(mine_c["cron_id"], access=mine) is not None
    crons = await storage.cron_search(assistant_id=None, thread_id=None, enabled=None, metadata={"tag": tag},
                                      limit=10, offset=0, sort_by="created_at", sort_order="asc", access=mine)
    assert ids(crons, "cron_id") == {mine_c["cron_id"]}
    assert await storage.cron_count(assistant_id=None, thread_id=None, metadata={"tag": tag}, access=mine) == 1


@pytest.mark.parametrize("where", [
    {"owner": {"$ne": "x"}},
    {"$or": [{"owner": "x"}]},
    {"$nor": [{"a": 1}, {"b": 2}]},
    {"$or": [{"$or": [{"$or": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"d": 1}]},
])
def test_filters_skeino_cannot_apply_are_refused(where: dict[str, Any]) -> None:
    with pytest.raises(AccessFilterError):
        AccessFilter.of(where)
