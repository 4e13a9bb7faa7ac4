"""Streams across process boundaries: old runs' logs, crashes and shutdowns, on servers of their own."""

from __future__ import annotations

import asyncio
import signal
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


def parse_sse(text: str) -> list[tuple[str, str, str]]:
    """(id, event, data) of each SSE event in a body."""
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            out.append((fields.get("id", ""), fields["event"], fields.get("data", "")))
    return out


# The docs promise that a resumable stream outlives the process. Its events are stored
# (group commit) before any client gets them, so what a client saw before a crash is
# replayed after it.
async def test_resumable_stream_survives_kill(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    server = Server(db=db).start()
    received: list[tuple[str, str, str]] = []
    try:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        body = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "hi"}]},
                "stream_mode": ["messages-tuple"], "stream_resumable": True,
                "config": {"configurable": {"fake_tokens": 200, "fake_token_delay": 0.2}}}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as res:
                run_path = res.headers["content-location"]
                buffer = ""
                async for chunk in res.aiter_text():
                    buffer += chunk
                    *blocks, buffer = buffer.split("\n\n")
                    received += parse_sse("\n\n".join(blocks) + "\n\n")
                    if len(received) >= 10:
                        break
                server.kill()
    finally:
        server.kill()
    assert [e for _, e, _ in received[:2]] == ["metadata", "messages"]

    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        run_id = run_path.rsplit("/", 1)[1]
        assert (await client.runs.get(tid, run_id))["status"] == "error"  # ServerRestart
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            res = await http.get(f"{run_path}/stream", headers={"Last-Event-ID": "-1"})
        replayed = parse_sse(res.text)
        assert replayed[:len(received)] == received
        assert len(replayed) < 200  # it did stop mid-way
        parts = [p async for p in client.runs.join_stream(tid, run_id, last_event_id="4")]
        assert [p.event for p in parts[:5]] == ["messages"] * 5
    finally:
        server.stop()


# SIGTERM: the official server cuts streams; skeino gives running runs the grace period and
# their open streams the rest of their events, then ends each with a complete body.
async def test_sigterm_lets_open_streams_finish(tmp_path: Path) -> None:
    server = Server(db=tmp_path / "skeino.db", env={"SKEINO_SHUTDOWN_GRACE": "4"}).start()
    bodies: dict[str, str] = {}
    try:
        client = get_client(url=server.url)
        short_tid = (await client.threads.create())["thread_id"]
        long_tid = (await client.threads.create())["thread_id"]
        follow_tid = (await client.threads.create())["thread_id"]
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            async def read(name: str, method: str, path: str, **kwargs: Any) -> None:
                text = ""
                async with http.stream(method, path, **kwargs) as res:
                    async for chunk in res.aiter_text():  # raises on an incomplete chunked body
                        text += chunk
                bodies[name] = text

            readers = [
                asyncio.create_task(read("short", "POST", f"/threads/{short_tid}/runs/stream",
                                         json={"assistant_id": "slow", "input": {"seconds": 1}})),
                asyncio.create_task(read("long", "POST", f"/threads/{long_tid}/runs/stream",
                                         json={"assistant_id": "slow", "input": {"seconds": 60}})),
                asyncio.create_task(read("thread", "GET", f"/threads/{follow_tid}/stream")),
            ]

            async def started() -> bool:
                runs = [await client.runs.list(t) for t in (short_tid, long_tid)]
                return all(r and r[0]["status"] == "running" for r in runs)

            deadline = asyncio.get_running_loop().time() + 30
            while not await started():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.gather(*readers)  # none raised: every body was complete
        assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught
    finally:
        server.stop()
    # The short run finished in the grace period and its stream got every event.
    assert bodies["short"].count("event: values") == 4
    assert '"after"' in bodies["short"]
    # The long one was interrupted at the end of the grace period; its stream ended with it.
    assert '"nap"' not in bodies["long"] and "event: metadata" in bodies["long"]
    # The thread stream (no run on its thread) ended cleanly too, once no run could start.
    assert "thread" in bodies
