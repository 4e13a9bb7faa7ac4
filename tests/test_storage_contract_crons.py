"""The Storage contract for crons (skeino/storage/base.py), run against every backend of the main suite."""

from __future__ import annotations

from typing import Any

from skeino.storage.base import Record, Storage
from test_storage_contract import assistant, backend, new_id, storage, thread, ts  # noqa: F401  (fixtures)


def cron(**over: Any) -> Record:
    return {"cron_id": new_id(), "assistant_id": new_id(), "thread_id": None, "user_id": None,
            "schedule": "* * * * *", "timezone": None, "end_time": None,
            "payload": {"input": {"n": 1}, "config": {"configurable": {}}}, "metadata": {}, "on_run_completed": "delete",
            "enabled": True, "next_run_date": ts(60), "created_at": ts(0), "updated_at": ts(0), **over}


async def search(storage: Storage, **filters: Any) -> list[Record]:
    args: dict[str, Any] = {"assistant_id": None, "thread_id": None, "enabled": None, "metadata": None,
                            "limit": 100, "offset": 0, "sort_by": "created_at", "sort_order": "asc"}
    return await storage.cron_search(**{**args, **filters})


def cron_ids(rows: list[Record]) -> list[str]:
    return [r["cron_id"] for r in rows]


async def test_cron_create_get_update_delete(storage: Storage) -> None:
    record = cron(metadata={"k": "v"}, timezone="Europe/Paris", end_time=ts(3600))
    assert await storage.cron_create(record) == record
    got = await storage.cron_get(record["cron_id"])
    assert got == record and got["enabled"] is True
    updated = await storage.cron_update(record["cron_id"], {"enabled": False, "metadata": {"k": "w"}})
    assert updated is not None and updated["enabled"] is False and updated["metadata"] == {"k": "w"}
    assert updated["updated_at"] != record["updated_at"] and updated["payload"] == record["payload"]
    assert await storage.cron_update(new_id(), {"enabled": True}) is None
    assert await storage.cron_delete(record["cron_id"]) is True
    assert await storage.cron_delete(record["cron_id"]) is False
    assert await storage.cron_get(record["cron_id"]) is None


async def test_cron_search_count_sort_and_pages(storage: Storage) -> None:
    tag, assistant_id, thread_id = new_id(), new_id(), new_id()
    first = cron(metadata={"tag": tag}, assistant_id=assistant_id, next_run_date=ts(300), created_at=ts(1))
    second = cron(metadata={"tag": tag}, thread_id=thread_id, next_run_date=ts(100), created_at=ts(2))
    third = cron(metadata={"tag": tag, "x": 1}, enabled=False, next_run_date=ts(200), created_at=ts(3))
    for record in (first, second, third):
        await storage.cron_create(record)
    mine = {"tag": tag}
    assert cron_ids(await search(storage, metadata=mine)) == cron_ids([first, second, third])
    assert cron_ids(await search(storage, metadata=mine, sort_order="desc")) == cron_ids([third, second, first])
    assert cron_ids(await search(storage, metadata=mine, sort_by="next_run_date")) == cron_ids([second, third, first])
    assert cron_ids(await search(storage, metadata=mine, limit=1, offset=1)) == [second["cron_id"]]
    assert cron_ids(await search(storage, metadata=mine, enabled=False)) == [third["cron_id"]]
    assert cron_ids(await search(storage, metadata={"tag": tag, "x": 1})) == [third["cron_id"]]
    assert cron_ids(await search(storage, assistant_id=assistant_id)) == [first["cron_id"]]
    assert cron_ids(await search(storage, thread_id=thread_id)) == [second["cron_id"]]
    assert await storage.cron_count(assistant_id=None, thread_id=None, metadata=mine) == 3
    assert await storage.cron_count(assistant_id=None, thread_id=thread_id, metadata=None) == 1


async def test_crons_due_claim_and_release(storage: Storage) -> None:
    now = ts(1000)
    due = cron(next_run_date=ts(900))
    later = cron(next_run_date=ts(2000))
    disabled = cron(next_run_date=ts(900), enabled=False)
    ended = cron(next_run_date=ts(900), end_time=ts(800))
    for record in (due, later, disabled, ended):
        await storage.cron_create(record)
    mine = {r["cron_id"] for r in (due, later, disabled, ended)}

    async def due_ids() -> list[str]:
        return [c["cron_id"] for c in await storage.crons_due(now, 1000) if c["cron_id"] in mine]

    assert await due_ids() == [due["cron_id"]]
    next_due = await storage.cron_next_due()
    assert next_due is not None and next_due <= ts(900)

    run_id = new_id()
    assert await storage.cron_claim(due["cron_id"], ts(900), ts(1060), run_id) is True
    # The same tick cannot be taken twice, nor a tick the cron is no longer due at.
    assert await storage.cron_claim(due["cron_id"], ts(900), ts(1060), new_id()) is False
    assert await storage.cron_claim(due["cron_id"], ts(1060), ts(1120), new_id()) is False
    assert await storage.cron_claim(disabled["cron_id"], ts(900), ts(1060), new_id()) is False
    assert await due_ids() == []
    claimed = {c["cron_id"]: rid for c, rid in await storage.crons_claimed()}
    assert claimed.get(due["cron_id"]) == run_id
    assert (await storage.cron_get(due["cron_id"]) or {})["next_run_date"] == ts(1060)

    assert await storage.cron_release(due["cron_id"], new_id()) is False  # someone else's claim: no effect
    assert due["cron_id"] in {c["cron_id"] for c, _ in await storage.crons_claimed()}
    assert await storage.cron_release(due["cron_id"], run_id) is True
    assert due["cron_id"] not in {c["cron_id"] for c, _ in await storage.crons_claimed()}
    assert [c["cron_id"] for c in await storage.crons_due(ts(1060), 1000) if c["cron_id"] in mine] == [due["cron_id"]]


async def test_deleting_a_thread_or_assistant_deletes_its_crons(storage: Storage) -> None:
    owner = thread()
    await storage.thread_create(owner)
    on_thread = cron(thread_id=owner["thread_id"])
    assistant_id = new_id()
    await storage.assistant_create(assistant(assistant_id=assistant_id))
    of_assistant = cron(assistant_id=assistant_id)
    survivor = cron()
    for record in (on_thread, of_assistant, survivor):
        await storage.cron_create(record)
    await storage.thread_delete(owner["thread_id"])
    await storage.assistant_delete(assistant_id)
    assert await storage.cron_get(on_thread["cron_id"]) is None
    assert await storage.cron_get(of_assistant["cron_id"]) is None
    assert await storage.cron_get(survivor["cron_id"]) is not None
