"""Crash safety, graceful shutdown and run timeouts, each on its own server process."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

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
        await wait_values(client, tid, lambda v: v.get("steps") == ["before"])
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
        # What was committed before the crash is all there.
        assert (await client.threads.get_state(other["thread_id"]))["values"] == {"count": 8}
        assert await client.threads.count(status="busy") == 0
    finally:
        server.stop()


async def test_kill_with_retry_policy_resumes_from_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        run = await client.runs.create(tid, "slow", input={"seconds": 0.5})
        await wait_values(client, tid, lambda v: v.get("steps") == ["before"])
    finally:
        server.kill()
    server = Server(db=db, env={"SKEINO_RECOVERY": "retry"}).start()
    try:
        client = get_client(url=server.url)
        await client.runs.join(tid, run["run_id"])
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
        # Continued from the checkpoint after `before`: no step runs twice.
        assert (await client.threads.get_state(tid))["values"]["steps"] == ["before", "nap", "after"]
    finally:
        server.stop()


async def _sigterm_during_slow_run(db: Path, grace: str, seconds: float) -> tuple[str, str]:
    """Start a `slow` run, SIGTERM the server while it runs; answer (thread id, run id)."""
    server = Server(db=db, env={"SKEINO_SHUTDOWN_GRACE": grace}).start()
    client = get_client(url=server.url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"seconds": seconds})
    await wait_status(client, tid, run["run_id"], {"running"})
    await asyncio.to_thread(server.stop, signal.SIGTERM)
    return tid, run["run_id"]


async def test_sigterm_lets_running_runs_finish(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    tid, run_id = await _sigterm_during_slow_run(db, grace="10", seconds=1)
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        assert (await client.runs.get(tid, run_id))["status"] == "success"
        assert (await client.threads.get(tid))["status"] == "idle"
    finally:
        server.stop()


async def test_sigterm_interrupts_runs_past_the_grace_period(tmp_path: Path) -> None:
    db = tmp_path / "skeino.db"
    tid, run_id = await _sigterm_during_slow_run(db, grace="0.5", seconds=60)
    server = Server(db=db).start()
    try:
        client = get_client(url=server.url)
        assert (await client.runs.get(tid, run_id))["status"] == "interrupted"
        assert (await client.threads.get(tid))["status"] != "busy"
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
