"""Paging through searches while other clients write, on a real server, via the official client.

The official clients page with `limit`/`offset`. Oldest first, new threads sort after
every existing one, so offset pages neither skip nor repeat. Newest first, a new thread
shifts every offset by one; skeino's cursor (`?cursor=` from the X-Skeino-Cursor header,
see docs/http-api.md) continues after the last row served instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from helpers import names, raw, tag

pytestmark = pytest.mark.usefixtures("no_server_errors")

PAGE = 5


def once_each(seen: list[str], original: list[str]) -> None:
    assert len(seen) == len(set(seen)), "a thread came twice"
    assert not set(original) - set(seen), "threads were skipped"


async def inserting(client: Any, metadata: dict[str, Any], count: int, made: list[str]) -> None:
    """Another client creating threads the search matches, while the pages are read."""
    for _ in range(count):
        made.append((await client.threads.create(metadata=metadata))["thread_id"])
        await asyncio.sleep(0)


async def test_offset_pages_oldest_first_while_another_task_inserts(client: Any) -> None:
    mark = tag()
    original = [(await client.threads.create(metadata={"mark": mark}))["thread_id"] for _ in range(12)]
    made: list[str] = []
    writer = asyncio.create_task(inserting(client, {"mark": mark}, 15, made))
    seen: list[str] = []
    offset = 0
    while True:
        page = await client.threads.search(metadata={"mark": mark}, limit=PAGE, offset=offset,
                                           sort_by="created_at", sort_order="asc")
        seen += [t["thread_id"] for t in page]
        if len(page) < PAGE and writer.done():
            break
        offset += len(page)
        await asyncio.sleep(0.01)
    await writer
    once_each(seen, original)
    assert seen == original + made  # every thread, in the order they were created


async def test_cursor_pages_newest_first_while_another_task_inserts(client: Any) -> None:
    mark = tag()
    original = [(await client.threads.create(metadata={"mark": mark}))["thread_id"] for _ in range(12)]
    cursors: list[str | None] = []

    async def remember(response: httpx.Response) -> None:
        if response.request.url.path == "/threads/search":
            cursors.append(response.headers.get("x-skeino-cursor"))

    client.http.client.event_hooks["response"].append(remember)
    made: list[str] = []
    writer = asyncio.create_task(inserting(client, {"mark": mark}, 15, made))
    seen: list[str] = []
    params: dict[str, str] = {}
    while True:
        page = await client.threads.search(metadata={"mark": mark}, limit=PAGE, params=params)
        seen += [t["thread_id"] for t in page]
        if cursors[-1] is None:
            break
        params = {"cursor": cursors[-1]}
        await asyncio.sleep(0.01)
    await writer
    once_each(seen, original)
    assert seen[-len(original):] == original[::-1]  # newest first; the threads made meanwhile come first, if at all


async def test_run_list_cursor_while_runs_are_created(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    original = []
    for _ in range(6):
        run = await client.runs.create(tid, "counter", input={"count": 0}, multitask_strategy="enqueue")
        original.append(run["run_id"])
    seen: list[str] = []
    params: dict[str, str] = {}
    while True:
        response = await raw(client, "GET", f"/threads/{tid}/runs", params={"limit": 4, **params})
        assert response.status_code == 200
        seen += [r["run_id"] for r in response.json()]
        await client.runs.create(tid, "counter", input={"count": 0}, multitask_strategy="enqueue")
        cursor = response.headers.get("x-skeino-cursor")
        if cursor is None:
            break
        params = {"cursor": cursor}
    assert seen == original[::-1]
    await client.runs.join(tid, (await client.runs.list(tid, limit=1))[0]["run_id"])


async def test_thread_search_marks_the_next_page_as_the_official_server_does(client: Any) -> None:
    mark = tag()
    for _ in range(3):
        await client.threads.create(metadata={"mark": mark})
    first = await raw(client, "POST", "/threads/search", json={"metadata": {"mark": mark}, "limit": 2})
    assert first.headers.get("x-pagination-next") == "2" and first.headers.get("x-skeino-cursor")
    # The official server's "total" is the rows up to the page's end, plus one when more follow.
    assert first.headers.get("x-pagination-total") == "3"
    last = await raw(client, "POST", "/threads/search", json={"metadata": {"mark": mark}, "limit": 2, "offset": 2})
    assert len(last.json()) == 1 and "x-pagination-next" not in last.headers and "x-skeino-cursor" not in last.headers
    assert last.headers.get("x-pagination-total") == "3"
    empty = await raw(client, "POST", "/threads/search", json={"metadata": {"mark": mark}, "limit": 2, "offset": 5})
    assert empty.json() == [] and empty.headers.get("x-pagination-total") == "5"


async def test_a_cursor_that_is_not_one_or_fits_another_sort_is_refused(client: Any) -> None:
    mark = tag()
    for _ in range(3):
        await client.threads.create(metadata={"mark": mark})
    bad = await raw(client, "POST", "/threads/search", params={"cursor": "not-a-cursor"}, json={"limit": 2})
    assert names(bad, "cursor")
    first = await raw(client, "POST", "/threads/search", json={"metadata": {"mark": mark}, "limit": 2})
    cursor = first.headers["x-skeino-cursor"]
    other = await raw(client, "POST", "/threads/search", params={"cursor": cursor},
                      json={"metadata": {"mark": mark}, "limit": 2, "sort_by": "updated_at"})
    assert names(other, "cursor") and "created_at desc" in other.json()["detail"]
    ok = await raw(client, "POST", "/threads/search", params={"cursor": cursor},
                   json={"metadata": {"mark": mark}, "limit": 2})
    assert ok.status_code == 200 and len(ok.json()) == 1


@pytest.mark.parametrize("cursor", ["WzEsMiwzXQ", "WyJjcmVhdGVkX2F0IiwiZGVzYyIsMSwxXQ",
                                    "WyJjcmVhdGVkX2F0IiwiZGVzYyIsIngiLDk5OTk5OTk5OTk5OTk5OTk5OTk5XQ", "é"])
async def test_a_forged_cursor_is_a_422_not_a_database_error(client: Any, cursor: str) -> None:
    # [1,2,3]; ["created_at","desc",1,1]; ["created_at","desc","x",99999999999999999999]; not base64
    response = await raw(client, "POST", "/threads/search", params={"cursor": cursor}, json={"limit": 2})
    assert names(response, "cursor")
