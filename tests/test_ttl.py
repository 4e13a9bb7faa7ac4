"""Time-to-live of threads (checkpointer.ttl, ttl on create/update) and of store items, end to end.

TTLs are minutes and may be fractions, so a few seconds of real time make a thread or an
item expire; the tests wait on the condition, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

import serverproc
from serverproc import Server

GRAPHS = Path(__file__).resolve().parent / "graphs"
FAST_SWEEP = 0.005  # minutes: a sweep every 0.3 s
SHORT = 0.02  # minutes: 1.2 s


def write_config(folder: Path, **extra: Any) -> Path:
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"memory": f"{GRAPHS}/memory.py:graph"}, **extra}))
    return path


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


async def gone(client: Any, thread_id: str) -> bool:
    try:
        await client.threads.get(thread_id)
    except NotFoundError:
        return True
    return False


def rows_for(db: Path, thread_id: str) -> dict[str, int]:
    """What the database still holds for a thread, read straight from the file."""
    return {t: int(serverproc.sql(db, f"SELECT COUNT(*) FROM {t} WHERE thread_id = ?", (thread_id,))[0][0])  # type: ignore[call-overload]
            for t in ("threads", "runs", "checkpoints", "thread_ttl")}


@pytest.fixture(scope="module")
def ttl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("ttl")
    config = write_config(folder, checkpointer={"ttl": {"strategy": "delete", "sweep_interval_minutes": FAST_SWEEP}},
                          store={"ttl": {"sweep_interval_minutes": FAST_SWEEP}})
    srv = Server(db=folder / "skeino.db", config=config).start()
    yield srv
    srv.stop()


async def test_a_thread_with_a_ttl_is_deleted_with_its_runs_and_checkpoints(ttl_server: Server) -> None:
    client = get_client(url=ttl_server.url)
    doomed = await client.threads.create(ttl={"strategy": "delete", "ttl": SHORT})
    kept = await client.threads.create()
    await client.runs.wait(doomed["thread_id"], "memory", input={"user": "t"})
    await client.runs.wait(kept["thread_id"], "memory", input={"user": "t"})
    before = rows_for(ttl_server.db, doomed["thread_id"])
    assert before["runs"] == 1 and before["checkpoints"] > 0 and before["thread_ttl"] == 1
    shown = await client.threads.get(doomed["thread_id"], include=["ttl"])
    plain = await client.threads.get(doomed["thread_id"])
    assert shown["ttl"]["strategy"] == "delete" and shown["ttl"]["ttl_minutes"] == SHORT
    assert shown["ttl"]["expires_at"] > shown["created_at"] and "ttl" not in plain

    assert await eventually(lambda: gone(client, doomed["thread_id"]))
    assert rows_for(ttl_server.db, doomed["thread_id"]) == {"threads": 0, "runs": 0, "checkpoints": 0, "thread_ttl": 0}
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]


async def test_update_gives_a_thread_a_ttl_counted_from_now(ttl_server: Server) -> None:
    client = get_client(url=ttl_server.url)
    thread = await client.threads.create(metadata={"who": "later"})
    updated = await client.threads.update(thread["thread_id"], metadata={"step": 2}, ttl=SHORT)
    assert updated["metadata"] == {"who": "later", "step": 2}
    assert await eventually(lambda: gone(client, thread["thread_id"]))


async def test_store_items_written_by_a_graph_with_a_ttl_expire(ttl_server: Server) -> None:
    client = get_client(url=ttl_server.url)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "memory",
                           input={"user": "ttl", "remember": ["fleeting thought"], "ttl": SHORT})
    await client.store.put_item(["memories", "ttl"], "lasting", {"text": "kept"})

    async def only_lasting_left() -> bool:
        items = (await client.store.search_items(["memories", "ttl"], refresh_ttl=False))["items"]
        return [i["key"] for i in items] == ["lasting"]

    assert len((await client.store.search_items(["memories", "ttl"]))["items"]) == 2
    assert await eventually(only_lasting_left)


async def test_reading_an_item_refreshes_its_ttl(ttl_server: Server) -> None:
    client = get_client(url=ttl_server.url)
    ns = ["refresh", "test"]
    await client.store.put_item(ns, "read", {"v": 1}, ttl=0.05)
    await client.store.put_item(ns, "unread", {"v": 2}, ttl=0.05)

    async def unread_gone_while_read_kept() -> bool:
        assert await client.store.get_item(ns, "read") is not None  # refreshes its 3 s
        keys = {i["key"] for i in (await client.store.search_items(ns, refresh_ttl=False))["items"]}
        return keys == {"read"}

    assert await eventually(unread_gone_while_read_kept)


async def test_bad_thread_ttls_are_refused_by_name(ttl_server: Server) -> None:
    async with httpx.AsyncClient(base_url=ttl_server.url) as http:
        for ttl, named in (({"strategy": "keep_latest", "ttl": 5}, "keep_latest"), ({"ttl": -1}, "positive"),
                           ({"strategy": "delete", "ttl": 5, "every": 1}, "'every'"), ("soon", "positive")):
            res = await http.post("/threads", json={"ttl": ttl})
            assert res.status_code == 422 and named in res.json()["detail"], res.text
        thread = (await http.post("/threads", json={})).json()
        res = await http.patch(f"/threads/{thread['thread_id']}", json={"ttl": {"ttl": 0}})
        assert res.status_code == 422 and "positive" in res.json()["detail"]


async def test_default_ttl_applies_to_threads_created_without_one(tmp_path: Path) -> None:
    config = write_config(tmp_path, checkpointer={"ttl": {"strategy": "delete", "default_ttl": SHORT,
                                                          "sweep_interval_minutes": FAST_SWEEP}})
    server = Server(db=tmp_path / "skeino.db", config=config).start()
    try:
        client = get_client(url=server.url)
        implicit = await client.threads.create()
        explicit = await client.threads.create(ttl=60)
        assert await eventually(lambda: gone(client, implicit["thread_id"]))
        assert (await client.threads.get(explicit["thread_id"]))["thread_id"] == explicit["thread_id"]
    finally:
        # The sweeper stops with the server: SIGTERM ends it cleanly, with nothing logged amiss.
        assert server.stop() in (0, -signal.SIGTERM)
        assert server.log is not None and "Traceback" not in server.log.read_text()
