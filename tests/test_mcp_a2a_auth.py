"""Custom auth (tests/custom_auth) applies to /mcp and /a2a as to every route: who calls is who runs."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from serverproc import TESTS, Server
from test_mcp import mcp_session

CONFIG = TESTS / "custom_auth" / "langgraph.json"


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("protocol_auth")
    srv = Server(db=tmp / "s.db", config=CONFIG, env={"LANGGRAPH_API_KEY": "", "LANGSMITH_API_KEY": ""})
    yield srv.start()
    srv.stop()


def _bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{who}"}


async def test_mcp_tool_calls_run_as_the_caller(authed: Server) -> None:
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    res = httpx.post(f"{authed.url}/mcp", json=listing, headers=accept)
    assert res.status_code == 401
    # The SDK handles the call in a task of its own; the caller must still reach the run.
    async with mcp_session(authed.url, _bearer("alice")) as session:
        assert "whoami" in {t.name for t in (await session.list_tools()).tools}
        result = await session.call_tool("whoami", {})
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.isError and "'user_id': 'alice'" in text and "'runtime_user': 'alice'" in text


async def test_a2a_tasks_belong_to_their_caller(authed: Server) -> None:
    async with httpx.AsyncClient(base_url=authed.url, timeout=60) as http:
        found = await http.post("/assistants/search", json={"graph_id": "whoami"}, headers=_bearer("alice"))
        url = f"/a2a/{found.json()[0]['assistant_id']}"
        msg = {"role": "user", "parts": [{"kind": "data", "data": {"note": "hi"}}], "messageId": "m1"}
        send = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}}
        assert (await http.post(url, json=send)).status_code == 401
        task = (await http.post(url, json=send, headers=_bearer("alice"))).json()["result"]
        assert task["status"]["state"] == "completed"
        assert "'user_id': 'alice'" in task["artifacts"][0]["parts"][0]["text"]
        get = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}}
        assert (await http.post(url, json=get, headers=_bearer("alice"))).json()["result"]["id"] == task["id"]
        # Bob cannot see alice's thread, so her task does not exist for him, nor can he continue it.
        assert (await http.post(url, json=get, headers=_bearer("bob"))).json()["error"]["code"] == -32001
        bobs = {**msg, "messageId": "m2", "contextId": task["contextId"]}
        denied = (await http.post(url, headers=_bearer("bob"),
                                  json={**send, "params": {"message": bobs}})).json()
        assert "error" in denied, denied
