"""langgraph.json options that change what the server exposes: CORS, disable switches, store TTL."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from langgraph_sdk import get_client

from serverproc import Server

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"


def write_config(folder: Path, **extra: object) -> Path:
    config = {"dependencies": [str(GRAPHS)], "graphs": {"counter": f"{GRAPHS}/pipeline.py:counter"}, **extra}
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


async def test_cors_and_disabled_routes(tmp_path: Path) -> None:
    config = write_config(tmp_path, http={"cors": {"allow_origins": ["http://ui.example"], "allow_methods": ["*"]},
                                          "disable_store": True})
    server = Server(db=tmp_path / "skeino.db", config=config).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            res = await http.get("/ok", headers={"Origin": "http://ui.example"})
            assert res.headers["access-control-allow-origin"] == "http://ui.example"
            res = await http.get("/ok", headers={"Origin": "http://other.example"})
            assert "access-control-allow-origin" not in res.headers
            res = await http.post("/store/items/search", json={})
            assert res.status_code == 404
            res = await http.post("/assistants/search", json={})
            assert res.status_code == 200
    finally:
        server.stop()


async def test_info_flags_follow_the_disabled_routes(tmp_path: Path) -> None:
    config = write_config(tmp_path, http={"disable_runs": True, "disable_assistants": True})
    server = Server(db=tmp_path / "skeino.db", config=config).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            flags = (await http.get("/info")).json()["flags"]
            assert flags["assistants"] is False and flags["crons"] is False
            assert (await http.post("/runs/crons/search", json={})).status_code == 404
            assert (await http.post("/assistants/search", json={})).status_code == 404
    finally:
        server.stop()


async def test_store_items_expire(tmp_path: Path) -> None:
    config = write_config(tmp_path, store={"ttl": {"sweep_interval_minutes": 0.005}})
    server = Server(db=tmp_path / "skeino.db", config=config).start()
    try:
        client = get_client(url=server.url)
        await client.store.put_item(["notes"], "short", {"v": 1}, ttl=0.001)
        await client.store.put_item(["notes"], "long", {"v": 2})
        deadline = time.monotonic() + 10
        while True:
            keys = {i["key"] for i in (await client.store.search_items(["notes"], refresh_ttl=False))["items"]}
            if keys == {"long"} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        # The sweeper removed the expired item and only it.
        assert keys == {"long"}
    finally:
        server.stop()


async def test_select_projects_state_and_history(client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input={"count": 0})
    history = await client.threads.get_history(tid, limit=2, select=["values", "next"])
    assert [set(h) for h in history] == [{"values", "next"}] * 2
    checkpoint = history[0]
    state = await client.threads.get_state(tid)
    picked = await client.threads.get_state(tid, checkpoint=state["checkpoint"], select=["values"])
    assert picked == {"values": {"count": 3}}
    assert checkpoint["values"] == {"count": 3}
