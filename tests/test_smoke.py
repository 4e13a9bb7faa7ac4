"""The server starts on the test graphs and answers the official client."""

import httpx

from serverproc import Server
from skeino import __version__


async def test_ok_and_default_assistants(client, server: Server) -> None:
    assistants = await client.assistants.search(limit=100)
    graph_ids = {a["graph_id"] for a in assistants if a["metadata"].get("created_by") == "system"}
    assert {"agent", "hitl", "pipeline", "counter", "slow", "failing"} <= graph_ids
    counter = await client.assistants.get("counter")
    # The official server's id for the `counter` graph: clients and saved configs rely on it.
    assert counter["assistant_id"] == "09d6caf4-2ef3-5a8b-b1a7-114690ed5d45"


async def test_health_info_and_initial_message(client, server: Server) -> None:
    assert await client.http.get("/ok") == {"ok": True}
    assert await client.http.get("/api/health") == {"status": "ok", "version": __version__}
    info = await client.http.get("/info")
    assert info["status"] == "ok" and info["version"] == __version__
    assert {"counter", "agent"} <= set(info["graphs"])
    greeting = await client.http.get("/api/initial-message")
    assert greeting["version"] == __version__ and greeting["message"].startswith("Welcome")


def test_initial_message_comes_from_the_environment(fresh_db) -> None:
    srv = Server(db=fresh_db, env={"SKEINO_WELCOME_MESSAGE": "Hi! Ask me about the weather."}).start()
    try:
        res = httpx.get(f"{srv.url}/api/initial-message")
        assert res.status_code == 200 and res.json()["message"] == "Hi! Ask me about the weather."
    finally:
        srv.stop()
