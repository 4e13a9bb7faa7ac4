"""The server starts on the test graphs and answers the official client."""

from serverproc import Server


async def test_ok_and_default_assistants(client, server: Server) -> None:
    assistants = await client.assistants.search(limit=100)
    graph_ids = {a["graph_id"] for a in assistants if a["metadata"].get("created_by") == "system"}
    assert {"agent", "hitl", "pipeline", "counter", "slow", "failing"} <= graph_ids
    counter = await client.assistants.get("counter")
    # The official server's id for the `counter` graph: clients and saved configs rely on it.
    assert counter["assistant_id"] == "09d6caf4-2ef3-5a8b-b1a7-114690ed5d45"
