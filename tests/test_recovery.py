"""Crash safety, graceful shutdown and run timeouts, each on its own server process."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from serverproc import Server
from test_runs import wait_status, wait_values


async def test_kill_during_run_leaves_no_thread_busy(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        running = await client.runs.create(tid, "slow", input={"seconds": 60})
        queued = await client.runs.create(tid, "counter", input={"count": 0})
        # A second thread whose run is the last one on it, so the crash is what it ends with.
        lone = (await client.threads.create())["thread_id"]
        lone_run = await client.runs.create(lone, "slow", input={"seconds": 60})
        await wait_values(client, tid, lambda v: v.get("steps") == ["before"])
        await wait_values(client, lone, lambda v: v.get("steps") == ["before"])
        assert (await client.runs.get(lone, lone_run["run_id"]))["status"] == "running"
        other = await client.threads.create()
        done = await client.runs.wait(other["thread_id"], "counter", input={"count": 5})
        assert done == {"count": 8}
    finally:
        server.kill()

    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        crashed = await client.runs.get(tid, running["run_id"])
        assert crashed["status"] == "error"
        # The run queued behind it was never started, so it runs now.
        assert await client.runs.join(tid, queued["run_id"]) == {"count": 3}
        t = await client.threads.get(tid)
        assert t["status"] == "idle"
        # The reason is recorded where clients look for it: on the thread and in the join.
        assert (await client.runs.get(lone, lone_run["run_id"]))["status"] == "error"
        lone_thread = await client.threads.get(lone)
        assert lone_thread["status"] == "error"
        assert (lone_thread["error"] or {}).get("error") == "ServerRestart"
        assert (await client.runs.join(lone, lone_run["run_id"]))["__error__"]["error"] == "ServerRestart"
        # What was committed before the crash is all there.
        assert (await client.threads.get_state(other["thread_id"]))["values"] == {"count": 8}
        assert (await client.threads.get_state(lone))["values"]["steps"] == ["before"]
        assert await client.threads.count(status="busy") == 0
    finally:
        server.stop()


@pytest.mark.parametrize("durability", [None, "exit"])
async def test_retry_continues_a_run_killed_mid_node_with_its_input_applied_once(
        tmp_path: Path, durability: str | None) -> None:
    """With `exit` durability nothing was checkpointed before the kill: the retry needs the input."""
    db = tmp_path / "skeino.db"
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        tid = (await client.threads.create())["thread_id"]
        # `work` blocks on the first attempt only, so the run is surely running at the kill.
        run = await client.runs.create(tid, "retry_probe", input={"token": "t-1", "log": ["input"]},
                                       stream_mode="updates", durability=durability)

        async def received() -> bool:
            # Seen on the run's stream, since with `exit` durability the state shows nothing yet.
            async for part in client.runs.join_stream(tid, run["run_id"], last_event_id="-1"):
                if part.event == "updates" and "receive" in part.data:
                    return True
            return False

        await asyncio.wait_for(received(), timeout=15)
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "running"
    finally:
        server.kill()
    server = Server(db=db, env={"SKEINO_RECOVERY": "retry"}).start()
    try:
        client = get_client(url=server.url)
        await client.runs.join(tid, run["run_id"])
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
        # The second attempt saw the original input's state and did not apply the input again.
        values = (await client.threads.get_state(tid))["values"]
        assert values == {"token": "t-1", "log": ["input", "receive:t-1", "work:attempt2:t-1"]}
        parts = [p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id="-1")]
        assert parts[0].event == "metadata" and parts[0].data == {"run_id": run["run_id"], "attempt": 2}
        assert len(await client.runs.list(tid)) == 1
    finally:
        server.stop()


async def _sigterm_during_slow_run(db: Path, grace: str, seconds: float) -> tuple[str, str, str]:
    """Start a `slow` run and queue one behind it, SIGTERM the server while the first runs.

    Answers (thread id, running run id, pending run id).
    """
    server = Server(db=db, env={"SKEINO_SHUTDOWN_GRACE": grace}).start()
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"seconds": seconds})
    queued = await client.runs.create(tid, "counter", input={"count": 0})
    await wait_status(client, tid, run["run_id"], {"running"})
    await asyncio.to_thread(server.stop, signal.SIGTERM)
    return tid, run["run_id"], queued["run_id"]


async def _queued_run_survived(client: Any, tid: str, run_id: str) -> None:
    """The run that was pending at SIGTERM stayed queued, so the next start runs it."""
    assert await client.runs.join(tid, run_id) == {"count": 3}
    assert (await client.runs.get(tid, run_id))["status"] == "success"
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_sigterm_lets_running_runs_finish(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    tid, run_id, queued = await _sigterm_during_slow_run(db, grace="10", seconds=1)
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        assert (await client.runs.get(tid, run_id))["status"] == "success"
        await _queued_run_survived(client, tid, queued)
    finally:
        server.stop()


async def test_sigterm_interrupts_runs_past_the_grace_period(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    tid, run_id, queued = await _sigterm_during_slow_run(db, grace="0.5", seconds=60)
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        assert (await client.runs.get(tid, run_id))["status"] == "interrupted"
        await _queued_run_survived(client, tid, queued)
    finally:
        server.stop()


async def test_run_timeout(tmp_path: Path) -> None:
    server = Server(db=tmp_path / "skeino.db", env={"SKEINO_RUN_TIMEOUT": "0.3"}).start()
    try:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        run = await client.runs.create(tid, "slow", input={"seconds": 30})
        await client.runs.join(tid, run["run_id"])
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "timeout"
        assert (await client.threads.get(tid))["status"] != "busy"
    finally:
        server.stop()


async def test_kill_during_stateless_run_leaves_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        before = await client.threads.count()
        run = await client.runs.create(None, "slow", input={"seconds": 60})
        await wait_status(client, run["thread_id"], run["run_id"], {"running"})
    finally:
        server.kill()
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        # The throwaway thread and its run are gone, not left busy or errored.
        assert await client.threads.count() == before
        assert await client.threads.count(status="busy") == 0
    finally:
        server.stop()
