"""Streams across process boundaries: old runs' logs, crashes and shutdowns, on servers of their own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
from langgraph_sdk import get_client

from serverproc import Server


@pytest.fixture
async def forgetful(tmp_path: Path) -> AsyncIterator[tuple[Server, Any]]:
    """A server that drops a finished run's in-memory log at once, so joins read storage."""
    srv = Server(db=tmp_path / "skeino.db", env={"SKEINO_STREAM_KEEP_SECONDS": "0"}).start()
    client = get_client(url=srv.url)
    try:
        yield srv, client
    finally:
        await client.http.client.aclose()
        srv.stop()


# skeino's own event ids (the official server's are Redis stream ids): an id past any a
# run reached answers an empty, complete stream instead of dropping the connection.
async def test_last_event_id_beyond_any_stored_id(forgetful: tuple[Server, Any]) -> None:
    srv, client = forgetful
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "counter", input={"count": 0}, stream_resumable=True)
    await client.runs.join(tid, run["run_id"])
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        for huge in (str(2**63), "9" * 40, str(2**53)):
            res = await http.get(f"/threads/{tid}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": huge})
            assert res.status_code == 200 and "event:" not in res.text, huge
        res = await http.get(f"/threads/{tid}/runs/{run['run_id']}/stream", headers={"Last-Event-ID": "-" + "9" * 40})
        assert res.status_code == 200 and res.text.count("event: values") == 4
    tail = [p.event async for p in client.runs.join_stream(tid, run["run_id"], last_event_id=str(2**63))]
    assert tail == []
