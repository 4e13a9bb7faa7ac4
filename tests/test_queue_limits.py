"""Bounds on queued runs: per thread (429) and per server (503), each with Retry-After."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import APIStatusError, RateLimitError

from serverproc import Server

LATER = 3600  # after_seconds: the run stays queued (pending) for the whole test


@pytest.fixture
async def bounded(tmp_path: Path) -> AsyncIterator[tuple[Server, Any]]:
    server = Server(db=tmp_path / "q.db", env={"SKEINO_MAX_QUEUED_RUNS": "3",
                                               "SKEINO_MAX_QUEUED_RUNS_PER_THREAD": "2"}).start()
    client = get_client(url=server.url)
    yield server, client
    await client.http.client.aclose()
    server.stop()


async def queue(client: Any, thread_id: str) -> dict[str, Any]:
    return await client.runs.create(thread_id, "counter", input={"count": 0}, after_seconds=LATER,
                                    multitask_strategy="enqueue")


async def test_queued_runs_are_bounded_per_thread_and_per_server(bounded: tuple[Server, Any]) -> None:
    server, client = bounded
    a, b, c = [(await client.threads.create())["thread_id"] for _ in range(3)]
    first = await queue(client, a)
    await queue(client, a)

    with pytest.raises(RateLimitError) as thread_full:
        await queue(client, a)
    assert thread_full.value.response.headers["retry-after"] == "5"
    assert "queued runs" in thread_full.value.response.json()["detail"]
    assert len(await client.runs.list(a)) == 2  # nothing was written

    await queue(client, b)  # three queued on the server now
    with pytest.raises(APIStatusError) as server_full:
        await queue(client, c)
    assert server_full.value.response.status_code == 503
    assert server_full.value.response.headers["retry-after"] == "5"
    # A stateless run (whose thread would be made with it) is refused the same way, and leaves no thread.
    async with httpx.AsyncClient(base_url=server.url) as http:
        res = await http.post("/runs", json={"assistant_id": "counter", "input": {"count": 0}, "after_seconds": LATER})
        assert res.status_code == 503 and res.headers["retry-after"] == "5"
    assert await client.threads.count() == 3

    # Room again once a queued run leaves the queue.
    await client.runs.cancel(a, first["run_id"])
    assert (await queue(client, c))["status"] == "pending"


def test_the_bounds_refuse_nonsense_settings(tmp_path: Path) -> None:
    server = Server(db=tmp_path / "bad.db", env={"SKEINO_MAX_QUEUED_RUNS_PER_THREAD": "-1"})
    with pytest.raises(RuntimeError, match="SKEINO_MAX_QUEUED_RUNS_PER_THREAD"):
        server.start(timeout=15)
