"""The HTTP edge against a real server: body parsing, error bodies, ids in paths, hostile JSON.

Compared with the official development server (`langgraph dev`): it parses every body as
JSON whatever its Content-Type, answers every 4xx as `{"detail": "<sentence>"}`, and refuses
a thread, run or cron id that is not a UUID with a 422.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import UnprocessableEntityError

from helpers import names, raw, tag

ZERO = "00000000-0000-0000-0000-000000000000"
pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.mark.parametrize("content_type",
                         ["text/plain", "text/plain;charset=UTF-8", None, "application/x-www-form-urlencoded"])
async def test_bodies_are_json_whatever_their_content_type(client: Any, content_type: str | None) -> None:
    marker = tag()
    headers = {"content-type": content_type} if content_type else {}
    body = f'{{"metadata": {{"marker": "{marker}"}}}}'.encode()
    # httpx adds no Content-Type to raw bytes, so None really sends none.
    r = await raw(client, "POST", "/threads", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["marker"] == marker
    found = await raw(client, "POST", "/threads/search", content=f'{{"metadata": {{"marker": "{marker}"}}}}',
                      headers=headers)
    assert [t["thread_id"] for t in found.json()] == [r.json()["thread_id"]]


async def test_text_plain_from_a_foreign_origin_still_changes_nothing(client: Any) -> None:
    marker = tag()
    body = f'{{"metadata": {{"marker": "{marker}"}}}}'
    r = await raw(client, "POST", "/threads", content=body,
                  headers={"content-type": "text/plain", "origin": "https://evil.example"})
    assert r.status_code == 403
    assert await client.threads.count(metadata={"marker": marker}) == 0
    # From the server's own origin the same request is parsed as JSON.
    origin = str(client.http.client.base_url).rstrip("/")
    r = await raw(client, "POST", "/threads", content=body, headers={"content-type": "text/plain", "origin": origin})
    assert r.status_code == 200 and r.json()["metadata"] == {"marker": marker}


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe{}", b"[1, 2"])
async def test_a_body_that_is_not_json_is_a_422_sentence(client: Any, body: bytes) -> None:
    r = await raw(client, "POST", "/threads/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and ("Invalid JSON" in detail or "missing" in detail), detail


async def test_validation_errors_are_one_sentence_naming_the_field(client: Any) -> None:
    r = await raw(client, "POST", "/threads/search", json={"limit": "many", "status": "sleeping"})
    detail = r.json()["detail"]
    assert r.status_code == 422 and isinstance(detail, str)
    assert "'limit'" in detail and "'status'" in detail and "integer" in detail
    r = await raw(client, "POST", "/threads", json={"colour": "blue"})
    assert r.json() == {"detail": "'colour' is not a field of the request body"}
    r = await raw(client, "POST", f"/threads/{ZERO}/runs", json={"input": {}})
    assert r.json() == {"detail": "'assistant_id' is required in the request body"}
    # A field that takes one of several types is named as itself, not by pydantic's union tags.
    r = await raw(client, "POST", f"/threads/{ZERO}/history", json={"before": 5})
    assert r.status_code == 422 and r.json()["detail"].startswith("Invalid 'before' in the request body: "), r.text
    r = await raw(client, "GET", f"/threads/{ZERO}/runs", params={"limit": "x"})
    assert r.status_code == 422 and r.json()["detail"].startswith("Invalid 'limit' in the query string")
    # The official client puts `detail` in its exception's message: that is what users read.
    with pytest.raises(UnprocessableEntityError) as err:
        await client.threads.search(limit=0)
    assert "'limit'" in str(err.value)


async def test_every_4xx_body_is_a_detail_sentence(client: Any) -> None:
    responses = [
        await raw(client, "GET", f"/threads/{ZERO}"),                       # 404
        await raw(client, "GET", "/no/such/route"),                         # 404 from the router
        await raw(client, "PUT", "/threads"),                               # 405
        await raw(client, "POST", "/assistants", json={"graph_id": 3}),      # 422
        await raw(client, "POST", "/threads", json={"thread_id": "x"}),     # 422 from the runtime
    ]
    for r in responses:
        assert 400 <= r.status_code < 500, r.text
        body = r.json()
        assert list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"], body


@pytest.mark.parametrize("method,path", [
    ("GET", "/threads/{bad}"), ("PATCH", "/threads/{bad}"), ("DELETE", "/threads/{bad}"),
    ("GET", "/threads/{bad}/state"), ("POST", "/threads/{bad}/history"), ("POST", "/threads/{bad}/copy"),
    ("GET", "/threads/{bad}/runs"), ("POST", "/threads/{bad}/runs"), ("GET", "/threads/{bad}/stream"),
    ("GET", "/threads/{zero}/runs/{bad}"), ("POST", "/threads/{zero}/runs/{bad}/cancel"),
    ("GET", "/threads/{zero}/runs/{bad}/join"), ("GET", "/threads/{zero}/runs/{bad}/stream"),
    ("DELETE", "/threads/{zero}/runs/{bad}"),
    ("GET", "/runs/crons/{bad}"), ("PATCH", "/runs/crons/{bad}"), ("DELETE", "/runs/crons/{bad}"),
])
async def test_ids_in_paths_that_are_not_uuids_are_422(client: Any, method: str, path: str) -> None:
    kind = "run" if "runs/{bad}" in path and "crons" not in path else "cron" if "crons" in path else "thread"
    body = {"assistant_id": "counter"} if path.endswith("/runs") and method == "POST" else {}
    r = await raw(client, method, path.format(bad="not-a-uuid", zero=ZERO),
                  json=body if method in ("POST", "PATCH") else None)
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": f"Invalid {kind} ID: must be a UUID"}


async def test_the_sdk_raises_unprocessable_for_a_bad_thread_id(client: Any) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get("not-a-uuid")
    with pytest.raises(UnprocessableEntityError):
        await client.runs.get(ZERO, "not-a-uuid")


# hostile JSON: 422 naming the field, never a 500 ---------------------------------------------
HUGE = 2**63


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/assistants/search", {}), ("POST", "/threads/search", {}), ("POST", "/runs/crons/search", {}),
    ("POST", "/store/items/search", {"namespace_prefix": []}), ("POST", "/store/namespaces", {}),
    ("POST", "/assistants/{assistant}/versions", {}),
])
async def test_offsets_beyond_64_bits_are_refused(client: Any, method: str, path: str, body: dict[str, Any]) -> None:
    assistant = (await client.assistants.search(graph_id="counter", limit=1))[0]["assistant_id"]
    url = path.format(assistant=assistant)
    r = await raw(client, method, url, json={**body, "offset": HUGE})
    assert names(r, "offset"), r.text
    # The largest offset that fits is an ordinary, empty page.
    r = await raw(client, method, url, json={**body, "offset": HUGE - 1})
    assert r.status_code == 200, r.text


async def test_offset_beyond_64_bits_in_a_query_string_is_refused(client: Any) -> None:
    thread = await client.threads.create()
    r = await raw(client, "GET", f"/threads/{thread['thread_id']}/runs", params={"offset": str(HUGE)})
    assert r.status_code == 422 and "'offset'" in r.json()["detail"]
    r = await raw(client, "GET", f"/threads/{thread['thread_id']}/runs", params={"offset": str(HUGE - 1)})
    assert r.status_code == 200 and r.json() == []


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("value,reason", [
    (2**64 + 1, "64 bits"), (-(2**63) - 1, "64 bits"), (10**40, "64 bits"),
    ("\ud800", "surrogate"), ({"\udfff": 1}, "surrogate"), (_nested(300), "nested"),
])
async def test_metadata_that_storage_cannot_keep_is_refused(client: Any, value: Any, reason: str) -> None:
    thread = await client.threads.create()
    for method, path, body in (
        ("POST", "/threads", {"metadata": {"x": value}}),
        ("PATCH", f"/threads/{thread['thread_id']}", {"metadata": {"x": value}}),
        ("POST", "/threads/search", {"metadata": {"x": value}}),
        ("POST", "/threads/count", {"metadata": {"x": value}}),
        ("POST", "/assistants", {"graph_id": "counter", "metadata": {"x": value}}),
        ("POST", "/assistants/search", {"metadata": {"x": value}}),
        ("POST", f"/threads/{thread['thread_id']}/runs/wait", {"assistant_id": "counter", "input": {"x": value}}),
        ("POST", "/runs/wait", {"assistant_id": "counter", "metadata": {"x": value}}),
        ("PUT", "/store/items", {"namespace": ["n"], "key": "k", "value": {"x": value}}),
        ("POST", "/store/items/search", {"namespace_prefix": ["n"], "filter": {"x": value}}),
    ):
        # Escaped JSON ("\\ud800"), as a client in another language would send it.
        r = await raw(client, method, path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 422, (path, r.text)
        detail = r.json()["detail"]
        field = next(iter(body.keys() - {"graph_id", "assistant_id", "namespace", "key", "namespace_prefix"}))
        assert f"'{field}." in detail and reason in detail, (path, detail)
    # Nothing was written on the way.
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == {}


async def test_a_value_just_inside_the_limits_is_kept(client: Any) -> None:
    value = {"big": 2**63 - 1, "small": -(2**63), "text": "snow \u2603 \U0001f600", "deep": _nested(90)}
    thread = await client.threads.create(metadata=value)
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == value
    assert [t["thread_id"] for t in await client.threads.search(metadata={"big": 2**63 - 1, "text": value["text"]},
                                                                  limit=100)] == [thread["thread_id"]]


async def test_ids_and_bodies_are_checked_before_anything_is_written(client: Any) -> None:
    marker = tag()
    r = await raw(client, "POST", "/threads", json={"metadata": {"marker": marker, "n": 2**70}})
    assert r.status_code == 422
    assert await client.threads.count(metadata={"marker": marker}) == 0


async def test_info_flags_say_what_this_server_supports(client: Any) -> None:
    info = await client.http.get("/info")
    # The official server also sends langsmith_tracing_*: true; skeino sends no LangSmith traces.
    assert info["flags"] == {"assistants": True, "crons": True, "langsmith": False, "strict_resume": True}


# accepted-but-ignored: none ------------------------------------------------------------------
async def test_a_query_parameter_a_route_does_not_read_is_refused_by_name(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    r = await raw(client, "GET", f"/threads/{tid}", params={"colour": "blue"})
    assert r.status_code == 422 and r.json() == {"detail": "'colour' is not a query parameter of this route"}
    # The official JS client's stream namespaces are not supported: refused, not silently dropped.
    r = await raw(client, "POST", f"/threads/{tid}/runs/stream", params={"namespace": "child"},
                  json={"assistant_id": "counter", "input": {"count": 0}})
    assert r.status_code == 422 and "'namespace'" in r.json()["detail"]
    assert await client.runs.list(tid) == []
    # Parameters the routes do read still pass.
    r = await raw(client, "GET", f"/threads/{tid}/state", params={"subgraphs": "true"})
    assert r.status_code == 200


async def test_runs_list_select_keeps_only_those_fields(client: Any) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "counter", input={"count": 0})
    runs = await client.runs.list(thread["thread_id"], select=["run_id", "status"])
    assert len(runs) == 1 and set(runs[0]) == {"run_id", "status"} and runs[0]["status"] == "success"
    r = await raw(client, "GET", f"/threads/{thread['thread_id']}/runs", params={"select": "colour"})
    assert r.status_code == 422 and "'select" in r.json()["detail"]


async def _status(client: Any, thread_id: str, run_id: str) -> str:
    return (await client.runs.get(thread_id, run_id))["status"]


async def _eventually(check: Any, timeout: float = 20) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.parametrize("flag,seconds,final", [("1", 30, "interrupted"), ("0", 1.5, "success")])
async def test_join_honours_cancel_on_disconnect(client: Any, flag: str, seconds: float, final: str) -> None:
    """The official JS client sends cancel_on_disconnect=0|1 on every join, as the official server reads it."""
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "slow", input={"seconds": seconds})
    url = f"/threads/{thread['thread_id']}/runs/{run['run_id']}/join"
    with pytest.raises(httpx.ReadTimeout):  # the client leaves while the run is still going
        await raw(client, "GET", url, params={"cancel_on_disconnect": flag}, timeout=0.5)

    async def ended() -> bool:
        return await _status(client, thread["thread_id"], run["run_id"]) == final

    assert await _eventually(ended), await _status(client, thread["thread_id"], run["run_id"])
