"""Keyset pages (`after`) of thread, run, assistant and cron searches, run against every backend.

A page that starts after the last row served must neither skip nor repeat the rows that
were there, however many rows are inserted (with the same timestamps, too) or deleted
between two pages. Offset pages in ascending order must too: new rows sort after every
existing one (equal timestamps fall back to insertion order).
"""

from __future__ import annotations

from typing import Awaitable, Callable

from skeino.storage import query
from skeino.storage.base import Record, Storage
from test_storage_contract import assistant, backend, new_id, run, storage, thread, ts  # noqa: F401  (fixtures)
from test_storage_contract_crons import cron

PAGE = 4


async def keyset_pages(search: Callable[[query.Position | None], Awaitable[list[Record]]], key: str,
                       between: Callable[[int], Awaitable[None]]) -> list[Record]:
    """Every row of a search, page after page, each started after the previous page's last row."""
    seen: list[Record] = []
    after: query.Position | None = None
    for n in range(100):
        rows = await search(after)
        seen += rows
        if len(rows) < PAGE:
            return seen
        last = rows[-1]
        after = (last[key] if key != query.POS else None, last[query.POS])
        await between(n)
    raise AssertionError("the search never ended")


def once_each(seen: list[Record], original: list[str], key: str) -> None:
    got = [r[key] for r in seen]
    assert len(got) == len(set(got)), "a row came twice"
    missing = set(original) - set(got)
    assert not missing, f"{len(missing)} rows were skipped"


async def test_thread_pages_after_a_position_while_threads_are_inserted(storage: Storage) -> None:
    tag = new_id()
    # Equal timestamps throughout: the tie-break alone orders them.
    made = [thread(metadata={"tag": tag, "graph_id": f"g.{tag}"}, created_at=ts(i // 3)) for i in range(15)]
    for record in made:
        assert await storage.thread_create(record)
    original = [t["thread_id"] for t in made]

    for metadata in ({"tag": tag}, {"graph_id": f"g.{tag}"}):  # unindexed and indexed paths
        for order in ("desc", "asc"):
            async def search(after: query.Position | None) -> list[Record]:
                return await storage.thread_search(ids=None, metadata=metadata, values=None, status=None,
                                                   limit=PAGE, offset=0, sort_by="created_at", sort_order=order,
                                                   after=after)

            async def between(n: int) -> None:
                # Newer, equal and older timestamps than the pages so far, before and after the
                # boundary (on the first pages only, so that the search ends).
                for seconds in (99, n // 2, 2, -1) if n < 3 else ():
                    assert await storage.thread_create(
                        thread(metadata={"tag": tag, "graph_id": f"g.{tag}", "late": True}, created_at=ts(seconds)))

            seen = await keyset_pages(search, "created_at", between)
            once_each(seen, original, "thread_id")
            # The order is total and the pages follow it.
            keys = [(r["created_at"], r[query.POS]) for r in seen]
            assert keys == sorted(keys, reverse=order == "desc")


async def test_thread_pages_after_a_position_when_rows_are_deleted(storage: Storage) -> None:
    tag = new_id()
    made = [thread(metadata={"tag": tag}, created_at=ts(i // 2)) for i in range(12)]
    for record in made:
        assert await storage.thread_create(record)
    served: list[str] = []

    async def search(after: query.Position | None) -> list[Record]:
        rows = await storage.thread_search(ids=None, metadata={"tag": tag}, values=None, status=None, limit=PAGE,
                                           offset=0, sort_by="created_at", sort_order="desc", after=after)
        served.extend(r["thread_id"] for r in rows)
        return rows

    async def between(n: int) -> None:
        # The last row served (the page's boundary) goes, and so does one still to come.
        await storage.thread_delete(served[-1])
        remaining = [t["thread_id"] for t in made if t["thread_id"] not in served]
        await storage.thread_delete(remaining[-1])
        made.remove(next(t for t in made if t["thread_id"] == remaining[-1]))

    seen = await keyset_pages(search, "created_at", between)
    once_each(seen, [t["thread_id"] for t in made], "thread_id")


async def test_ascending_offset_pages_while_threads_are_inserted(storage: Storage) -> None:
    """What the official clients do (limit/offset), oldest first: new threads go to the end."""
    tag = new_id()
    made = [thread(metadata={"tag": tag}, created_at=ts(0)) for _ in range(10)]
    for record in made:
        assert await storage.thread_create(record)
    seen: list[Record] = []
    for offset in range(0, 1000, PAGE):
        rows = await storage.thread_search(ids=None, metadata={"tag": tag}, values=None, status=None, limit=PAGE,
                                           offset=offset, sort_by="created_at", sort_order="asc")
        seen += rows
        if len(rows) < PAGE:
            break
        assert await storage.thread_create(thread(metadata={"tag": tag}, created_at=ts(0)))  # an equal timestamp
    once_each(seen, [t["thread_id"] for t in made], "thread_id")


async def test_run_pages_after_a_position_while_runs_are_created(storage: Storage) -> None:
    parent = thread()
    assert await storage.thread_create(parent)
    tid = parent["thread_id"]
    original = []
    for _ in range(10):
        record = run(tid, created_at=ts(0))
        await storage.run_create(record, reject_if_busy=False)
        original.append(record["run_id"])

    async def search(after: query.Position | None) -> list[Record]:
        return await storage.run_list(tid, limit=PAGE, offset=0, status=None, after=after)

    async def between(n: int) -> None:
        await storage.run_create(run(tid, created_at=ts(0)), reject_if_busy=False)

    seen = await keyset_pages(search, query.POS, between)
    once_each(seen, original, "run_id")
    assert [r["run_id"] for r in seen] == original[::-1]  # newest first, the runs created since not among them


async def test_assistant_and_cron_pages_after_a_position(storage: Storage) -> None:
    tag = new_id()
    made = [assistant(metadata={"tag": tag}, created_at=ts(0), updated_at=ts(0)) for _ in range(9)]
    for record in made:
        assert await storage.assistant_create(record)

    async def assistants(after: query.Position | None) -> list[Record]:
        return await storage.assistant_search(graph_id=None, name=None, metadata={"tag": tag}, limit=PAGE, offset=0,
                                              sort_by="created_at", sort_order="desc", after=after)

    async def new_assistant(n: int) -> None:
        assert await storage.assistant_create(assistant(metadata={"tag": tag}, created_at=ts(0), updated_at=ts(0)))

    once_each(await keyset_pages(assistants, "created_at", new_assistant), [a["assistant_id"] for a in made],
              "assistant_id")

    owner = made[0]["assistant_id"]
    crons = []
    for i in range(9):
        crons.append(await storage.cron_create(cron(assistant_id=owner, next_run_date=ts(i))))

    async def cron_page(after: query.Position | None) -> list[Record]:
        return await storage.cron_search(assistant_id=owner, thread_id=None, enabled=None, metadata=None,
                                         limit=PAGE, offset=0, sort_by="cron_id", sort_order="asc", after=after)

    async def new_cron(n: int) -> None:
        await storage.cron_create(cron(assistant_id=owner, next_run_date=ts(100 + n)))

    once_each(await keyset_pages(cron_page, "cron_id", new_cron), [c["cron_id"] for c in crons], "cron_id")

