"""Safe on a network: API keys and scopes, exposure refusal, Host and cross-site checks, rate limits, audit."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import AuthenticationError, PermissionDeniedError

from serverproc import TEST_CONFIG, Server, free_port

ADMIN = "admin-key-" + "a" * 20
READER = "reader-key-" + "b" * 20
RUNNER = "runner-key-" + "c" * 20
KEYS = f"{ADMIN};{READER}=assistants:read,threads:read,runs:read,store:read,crons:read;" \
       f"{RUNNER}=assistants:read,threads:read,threads:write,runs:read,runs:write"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("keyed")
    srv = Server(db=tmp / "s.db", env={"SKEINO_API_KEYS": KEYS, "SKEINO_AUDIT": str(tmp / "audit.jsonl"),
                                       "LANGGRAPH_API_KEY": "", "LANGSMITH_API_KEY": ""}).start()
    yield srv
    srv.stop()


def _audit(srv: Server) -> list[dict]:
    path = Path(srv.env["SKEINO_AUDIT"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_missing_and_unknown_keys_are_401(keyed: Server) -> None:
    anon = get_client(url=keyed.url, api_key=None)
    with pytest.raises(AuthenticationError):
        await anon.threads.search()
    wrong = get_client(url=keyed.url, api_key="not-a-key-" + "z" * 20)
    with pytest.raises(AuthenticationError):
        await wrong.assistants.search()
    resp = httpx.post(f"{keyed.url}/threads", json={})
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert "x-api-key" in resp.json()["detail"]
    # Liveness and what the server is stay open.
    assert httpx.get(f"{keyed.url}/ok").status_code == 200
    assert httpx.get(f"{keyed.url}/info").status_code == 200


async def test_bearer_and_x_api_key_both_work(keyed: Server) -> None:
    admin = get_client(url=keyed.url, api_key=ADMIN)
    thread = await admin.threads.create()
    resp = httpx.get(f"{keyed.url}/threads/{thread['thread_id']}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 200


async def test_each_scope_family_is_enforced(keyed: Server) -> None:
    admin = get_client(url=keyed.url, api_key=ADMIN)
    reader = get_client(url=keyed.url, api_key=READER)
    runner = get_client(url=keyed.url, api_key=RUNNER)
    thread = await admin.threads.create()
    tid = thread["thread_id"]
    run = await admin.runs.create(tid, "slow", input={"seconds": 30})

    # The reader reads everything...
    assert (await reader.threads.get(tid))["thread_id"] == tid
    assert await reader.assistants.search()
    assert await reader.runs.list(tid)
    assert await reader.store.search_items(["x"]) is not None
    # ...and changes nothing, in every family.
    denied = [
        reader.assistants.create("pipeline"),
        reader.threads.create(),
        reader.threads.update(tid, metadata={"x": 1}),
        reader.runs.create(tid, "pipeline", input={}),
        reader.runs.cancel(tid, run["run_id"]),
        reader.store.put_item(["x"], "k", {"v": 1}),
        reader.crons.create("pipeline", schedule="* * * * *"),
    ]
    for call in denied:
        with pytest.raises(PermissionDeniedError) as info:
            await call
        assert "lacks the scope" in str(info.value)
    # The runner runs but may not cancel, touch assistants, the store or crons.
    await runner.threads.create()
    for call in (runner.runs.cancel(tid, run["run_id"]), runner.assistants.create("pipeline"),
                 runner.store.search_items(["x"]), runner.crons.search()):
        with pytest.raises(PermissionDeniedError):
            await call
    # Metrics are for operators.
    assert httpx.get(f"{keyed.url}/metrics", headers={"x-api-key": READER}).status_code == 403
    assert httpx.get(f"{keyed.url}/metrics", headers={"x-api-key": ADMIN}).status_code == 200
    await admin.runs.cancel(tid, run["run_id"], wait=True)
    assert (await admin.runs.get(tid, run["run_id"]))["status"] == "interrupted"


def test_denials_are_audited(keyed: Server) -> None:
    rid = uuid.uuid4().hex
    httpx.post(f"{keyed.url}/threads", json={}, headers={"x-api-key": READER, "x-request-id": rid})
    httpx.post(f"{keyed.url}/threads/search", json={}, headers={"x-request-id": rid + "-anon"})
    created = httpx.post(f"{keyed.url}/threads", json={}, headers={"x-api-key": ADMIN, "x-request-id": rid + "-ok"})
    events = {e["request_id"]: e for e in _audit(keyed)}
    assert events[rid]["outcome"] == "denied" and events[rid]["who"] == "key:key-2"
    assert "threads:write" in events[rid]["reason"] and events[rid]["action"] == "POST /threads"
    assert events[rid + "-anon"]["outcome"] == "denied" and events[rid + "-anon"]["reason"] == "no API key"
    assert events[rid + "-ok"]["outcome"] == "200" and events[rid + "-ok"]["who"] == "key:key-1"
    assert created.status_code == 200


def test_docs_follow_auth_in_serve(keyed: Server, tmp_path: Path) -> None:
    assert httpx.get(f"{keyed.url}/openapi.json").status_code == 401
    assert httpx.get(f"{keyed.url}/openapi.json", headers={"x-api-key": READER}).status_code == 200
    # The Studio's static files carry no data and load without a key.
    assert httpx.get(f"{keyed.url}/studio/").status_code == 200
    srv = Server(db=tmp_path / "d.db", env={"SKEINO_API_KEYS": ADMIN, "SKEINO_PUBLIC_DOCS": "1"}).start()
    try:
        assert httpx.get(f"{srv.url}/openapi.json").status_code == 200
    finally:
        srv.stop()


def _serve(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skeino.cli", "serve", "--config", str(TEST_CONFIG), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_public_address_without_auth_refuses_to_start(tmp_path: Path) -> None:
    result = _serve("--host", "0.0.0.0", "--port", str(free_port()), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert "refusing to serve 0.0.0.0 with no authentication" in result.stderr
    assert "--insecure" in result.stderr
    # With keys, or with --insecure said out loud, it starts.
    for extra, env in ((["--insecure"], {}), ([], {"SKEINO_API_KEYS": ADMIN})):
        srv = Server(db=tmp_path / f"{len(extra)}.db", env={**env, "SKEINO_HOST": "0.0.0.0"})
        srv.extra_args = extra
        srv.start()
        try:
            assert httpx.get(f"{srv.url}/ok").status_code == 200
        finally:
            srv.stop()


def test_loopback_server_answers_only_loopback_host_names(server: Server, tmp_path: Path) -> None:
    for host in ("localhost", f"127.0.0.1:{server.port}", f"[::1]:{server.port}", "app.localhost"):
        assert httpx.get(f"{server.url}/ok", headers={"host": host}).status_code == 200, host
    resp = httpx.post(f"{server.url}/threads", json={}, headers={"host": f"rebound.example:{server.port}"})
    assert resp.status_code == 421 and "SKEINO_ALLOWED_HOSTS" in resp.json()["detail"]
    srv = Server(db=tmp_path / "h.db", env={"SKEINO_ALLOWED_HOSTS": "agents.internal"}).start()
    try:
        assert httpx.get(f"{srv.url}/ok", headers={"host": "agents.internal:443"}).status_code == 200
        assert httpx.get(f"{srv.url}/ok", headers={"host": "other.internal"}).status_code == 421
    finally:
        srv.stop()


async def test_cross_site_simple_post_never_changes_state(server: Server, client) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"seconds": 30})
    cancel = f"{server.url}/threads/{tid}/runs/{run['run_id']}/cancel"
    resp = httpx.post(cancel, content="{}", headers={"origin": "https://evil.example", "content-type": "text/plain"})
    assert resp.status_code == 403 and "evil.example" in resp.json()["detail"]
    resp = httpx.post(cancel, headers={"origin": "https://evil.example"})  # no body, no content type
    assert resp.status_code == 403
    assert (await client.runs.get(tid, run["run_id"]))["status"] in ("pending", "running")
    # A page of the user's own on loopback is not cross-site.
    resp = httpx.post(cancel, content="{}", headers={"origin": "http://localhost:3000", "content-type": "text/plain"})
    assert resp.status_code == 202
    await client.runs.join(tid, run["run_id"])
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"


def test_rate_limit_headers_and_429(tmp_path: Path) -> None:
    srv = Server(db=tmp_path / "r.db", env={"SKEINO_RATE_LIMIT": "5/minute"}).start()
    try:
        seen = [httpx.post(f"{srv.url}/threads/search", json={}) for _ in range(6)]
        assert [r.status_code for r in seen] == [200] * 5 + [429]
        assert [int(r.headers["x-ratelimit-remaining"]) for r in seen] == [4, 3, 2, 1, 0, 0]
        assert all(r.headers["x-ratelimit-limit"] == "5" for r in seen)
        assert 1 <= int(seen[-1].headers["retry-after"]) <= 60
        assert "Rate limit of 5 requests" in seen[-1].json()["detail"]
        assert httpx.get(f"{srv.url}/ok").status_code == 200  # probes are never limited
    finally:
        srv.stop()


async def test_protocol_websocket_goes_through_the_same_checks(keyed: Server) -> None:
    """Keys, scopes, Host and Origin apply to the v2 WebSocket as to HTTP."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    url = f"ws://127.0.0.1:{keyed.port}/threads/{uuid.uuid4()}/stream/events"
    for headers in ({}, {"x-api-key": "wrong-key-" + "z" * 20}, {"x-api-key": ADMIN, "Host": "evil.example"},
                    {"x-api-key": ADMIN, "Origin": "https://evil.example"}):
        with pytest.raises(InvalidStatus):
            async with connect(url, additional_headers=headers):
                pass
    start = {"id": 2, "method": "run.start", "params": {"assistant_id": "pipeline", "input": {}}}
    async with connect(url, additional_headers={"x-api-key": READER}) as ws:
        await ws.send(json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values"]}}))
        assert json.loads(await ws.recv())["type"] == "success"
        await ws.send(json.dumps(start))
        assert json.loads(await ws.recv())["error"] == "permission_denied"
    async with connect(url, additional_headers={"Authorization": f"Bearer {RUNNER}"}) as ws:
        await ws.send(json.dumps(start))
        assert json.loads(await ws.recv())["type"] == "success"
    # Over HTTP, stream/events is a read and commands a write of the runs family.
    tid = uuid.uuid4()
    refused = httpx.post(f"{keyed.url}/threads/{tid}/commands", json=start, headers={"x-api-key": READER})
    assert refused.status_code == 403
    assert any(e.get("action", "").startswith("WEBSOCKET") and e["outcome"] == "denied" for e in _audit(keyed))
