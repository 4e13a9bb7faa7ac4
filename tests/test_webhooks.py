"""Webhooks on runs, end to end: the official client creates runs on a real server, and a small
HTTP server started here receives what the server POSTs when each run ends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import UnprocessableEntityError

from receiver import Receiver
from serverproc import Server


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that may call the test's receiver on 127.0.0.1 (loopback is refused by default)."""
    srv = Server(db=tmp_path_factory.mktemp("hooks") / "skeino.db",
                 env={"SKEINO_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}).start()
    yield srv
    srv.stop()


@pytest.fixture
async def hooked_client(hooked: Server) -> AsyncIterator[Any]:
    c = get_client(url=hooked.url)
    yield c
    await c.http.client.aclose()


async def test_webhook_delivers_the_final_run_after_a_failed_attempt(
        hooked: Server, hooked_client: Any, receiver: Receiver) -> None:
    thread = await hooked_client.threads.create()
    run = await hooked_client.runs.create(thread["thread_id"], "counter", input={"count": 1},
                                          webhook=f"{receiver.url}/done", metadata={"who": "test"})
    assert run["kwargs"]["webhook"] == f"{receiver.url}/done"
    calls = await receiver.wait_for("/done", 2)
    # The receiver failed the first delivery (500): the server retried and the second got through.
    assert [status for status, _ in calls] == [500, 200]
    payload = calls[1][1]
    assert payload == calls[0][1] | {"webhook_sent_at": payload["webhook_sent_at"]}
    assert payload["run_id"] == run["run_id"] and payload["thread_id"] == thread["thread_id"]
    assert payload["status"] == "success" and "error" not in payload
    assert payload["metadata"]["who"] == "test" and payload["kwargs"]["webhook"] == f"{receiver.url}/done"
    state = await hooked_client.threads.get_state(thread["thread_id"])
    assert payload["values"] == state["values"]
    for key in ("run_started_at", "run_ended_at", "webhook_sent_at"):
        assert payload[key]
    stored = await hooked_client.runs.get(thread["thread_id"], run["run_id"])
    assert stored["status"] == "success"
    assert hooked.log is not None and "attempt 1/5: HTTP 500" in hooked.log.read_text()


async def test_webhook_of_a_failed_run_carries_the_error(hooked_client: Any, receiver: Receiver) -> None:
    result = await hooked_client.runs.wait(None, "failing", input={}, webhook=f"{receiver.url}/errored",
                                          raise_error=False)
    assert "__error__" in result
    calls = await receiver.wait_for("/errored", 2)
    payload = calls[-1][1]
    assert calls[-1][0] == 200
    assert payload["status"] == "error"
    assert payload["error"]["error"] == result["__error__"]["error"]
    assert payload["error"]["message"] == result["__error__"]["message"]


async def test_only_allowed_hosts_when_a_list_is_set(hooked_client: Any) -> None:
    thread = await hooked_client.threads.create()
    with pytest.raises(UnprocessableEntityError) as err:
        await hooked_client.runs.create(thread["thread_id"], "counter", input={"count": 0},
                                        webhook="http://example.com/hook")
    assert "not in the allowed hosts" in err.value.response.json()["detail"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook", "http://10.1.2.3/hook",
    "http://192.168.0.7/hook", "http://169.254.169.254/latest/meta-data", "ftp://example.com/x", "/relative",
])
async def test_refused_webhook_is_a_422_at_creation(client: Any, url: str, no_server_errors: None) -> None:
    thread = await client.threads.create()
    with pytest.raises(UnprocessableEntityError) as err:
        await client.runs.create(thread["thread_id"], "counter", input={"count": 0}, webhook=url)
    assert "ebhook" in err.value.response.json()["detail"]
    # Nothing was created: the thread has no run.
    assert await client.runs.list(thread["thread_id"]) == []
    with pytest.raises(UnprocessableEntityError):
        await client.crons.create("counter", schedule="* * * * *", webhook=url)


async def test_webhooks_config_in_langgraph_json(tmp_path: Path, receiver: Receiver) -> None:
    """The `webhooks` block of langgraph.json, as the official server reads it: loopback opened up,
    headers filled from the environment, the payload cut to `allowed_fields`."""
    graphs = Path(__file__).parent.parent / "graphs"
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({
        "dependencies": [str(graphs)], "graphs": {"counter": f"{graphs}/pipeline.py:counter"},
        "webhooks": {"url": {"disable_loopback": False}, "allowed_fields": ["run_id", "status", "values"],
                     "headers": {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"}},
    }))
    srv = Server(db=tmp_path / "skeino.db", config=config, env={"LG_WEBHOOK_TOKEN": "s3cret"}).start()
    c = get_client(url=srv.url)
    try:
        await c.runs.wait(None, "counter", input={"count": 0}, webhook=f"{receiver.url}/configured")
        [(status, payload)] = await receiver.wait_for("/configured", 1)
        assert status == 500  # the receiver fails each path once; the retry follows
        [_, (_, payload)] = await receiver.wait_for("/configured", 2)
        assert set(payload) == {"run_id", "status", "values"} and payload["values"] == {"count": 3}
        index = next(i for i, (path, _, _) in enumerate(receiver.calls) if path == "/configured")
        assert receiver.headers[index]["authorization"] == "Bearer s3cret"
        with pytest.raises(UnprocessableEntityError) as err:  # private addresses stay refused
            await c.runs.create(None, "counter", input={"count": 0}, webhook="http://10.0.0.1/hook")
        assert "private" in err.value.response.json()["detail"]
    finally:
        await c.http.client.aclose()
        srv.stop()
