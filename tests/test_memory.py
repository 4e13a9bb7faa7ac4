"""Semantic memory: langgraph.json store.index, used by graphs and by /store/items/search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import AsyncIterator, Iterator

import httpx
import pytest
from langgraph_sdk import get_client

import pgdb
import serverproc
from serverproc import Server

GRAPHS = Path(__file__).resolve().parent / "graphs"
INDEX = {"dims": 64, "embed": f"{GRAPHS}/embed.py:embed", "fields": ["text"]}


def write_config(folder: Path, **store: object) -> Path:
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"memory": f"{GRAPHS}/memory.py:graph"}, "store": store}))
    return path


# On Postgres the store's vector index is pgvector's; without the extension there is nothing to test.
needs_vectors = pytest.mark.skipif(
    serverproc.BACKEND == "postgres" and pgdb.BASE_URL is not None and not pgdb.has_pgvector(),
    reason="SKEINO_TEST_BACKEND=postgres and the server has no pgvector extension")
pytestmark = needs_vectors


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("memory")
    srv = Server(db=folder / "skeino.db", config=write_config(folder, index=INDEX)).start()
    yield srv
    srv.stop()


@pytest.fixture
async def mclient(memory_server: Server) -> AsyncIterator[object]:
    c = get_client(url=memory_server.url)
    yield c
    await c.http.client.aclose()


async def test_memories_written_in_one_thread_are_recalled_by_meaning_in_another(mclient) -> None:
    first, second = await mclient.threads.create(), await mclient.threads.create()
    await mclient.runs.wait(first["thread_id"], "memory", input={
        "user": "ada",
        "remember": ["ada loves hiking in the mountains", "ada's favourite food is pizza",
                     "ada works as a software engineer"],
    })
    out = await mclient.runs.wait(second["thread_id"], "memory", input={"user": "ada", "recall": "favourite food"})
    assert out["found"][0] == "ada's favourite food is pizza"
    out = await mclient.runs.wait(second["thread_id"], "memory", input={"user": "ada", "recall": "software job"})
    assert out["found"][0] == "ada works as a software engineer"
    # Memories are per namespace: another user's recall finds none of ada's.
    out = await mclient.runs.wait(second["thread_id"], "memory", input={"user": "bob", "recall": "favourite food"})
    assert out["found"] == []


async def test_search_items_ranks_by_similarity_with_a_score(mclient) -> None:
    docs = {"cats": "cats purr and chase mice", "rust": "rust is a systems programming language",
            "tea": "green tea is brewed with hot water"}
    for key, text in docs.items():
        await mclient.store.put_item(["docs", "search"], key, {"text": text})
    found = (await mclient.store.search_items(["docs", "search"], query="which programming language"))["items"]
    assert [i["key"] for i in found][0] == "rust"
    scores = [i["score"] for i in found]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]
    # Without a query, search lists items unranked, as before.
    plain = (await mclient.store.search_items(["docs", "search"]))["items"]
    assert {i["key"] for i in plain} == set(docs)


async def test_index_false_items_are_stored_but_not_ranked(mclient, memory_server: Server) -> None:
    await mclient.store.put_item(["docs", "noindex"], "kept", {"text": "secret recipe for pizza"}, index=False)
    await mclient.store.put_item(["docs", "noindex"], "indexed", {"text": "weather report"})
    async with httpx.AsyncClient(base_url=memory_server.url) as http:
        res = await http.post("/store/items/search", json={"namespace_prefix": ["docs", "noindex"], "query": "pizza"})
    assert res.status_code == 200
    items = {i["key"]: i for i in res.json()["items"]}
    # The unindexed item has no vector, so it cannot outrank the indexed one on its own words.
    assert "indexed" in items and items["indexed"]["score"] is not None
    assert items.get("kept", {}).get("score") is None
    assert (await mclient.store.get_item(["docs", "noindex"], "kept"))["value"] == {"text": "secret recipe for pizza"}


def test_a_broken_embedding_reference_refuses_to_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    for embed, named in ((f"{GRAPHS}/embed.py:nope", "'nope'"), ("./missing.py:embed", "file not found"),
                         ("nosuchprovider:some-model", "'nosuchprovider:some-model' cannot be loaded")):
        config = write_config(tmp_path, index={**INDEX, "embed": embed})
        proc = subprocess.run([sys.executable, "-m", "skeino.cli", "serve", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "store.index.embed" in proc.stderr and named in proc.stderr and "Traceback" not in proc.stderr


async def test_turning_the_index_on_keeps_an_existing_database(tmp_path: Path) -> None:
    """A database written without store.index opens with it (through an extension-capable SQLite
    where this Python's cannot load sqlite-vec): threads, checkpoints and store items survive."""
    from skeino.storage.index import resolve_index
    from skeino.storage.sqlite import SqliteStorage

    db = tmp_path / "skeino.db"
    plain = SqliteStorage(db)
    await plain.open()
    try:
        thread_id = "6f1d4a59-1f7e-4d8e-9f0a-2b9c5e3d7a10"
        await plain.thread_create({"thread_id": thread_id, "created_at": "t", "updated_at": "t",
                                   "state_updated_at": "t", "metadata": {}, "status": "idle", "config": {},
                                   "values": None, "interrupts": {}, "error": None})
        await plain.store.aput(("notes",), "old", {"text": "written before the index"})
    finally:
        await plain.close()

    index = resolve_index(INDEX, tmp_path, tmp_path / "langgraph.json")
    for _ in range(2):  # and again: the checkpointer's schema step runs on every open
        indexed = SqliteStorage(db, index=index)
        await indexed.open()
        try:
            assert (await indexed.thread_get(thread_id))["thread_id"] == thread_id  # type: ignore[index]
            assert (await indexed.store.aget(("notes",), "old")).value == {"text": "written before the index"}  # type: ignore[union-attr]
            await indexed.store.aput(("notes",), "new", {"text": "semantic memory for agents"})
            hits = await indexed.store.asearch(("notes",), query="agents memory")
            # Only items written since the index exists have vectors to rank.
            assert [h.key for h in hits] == ["new"] and hits[0].score is not None
        finally:
            await indexed.close()
