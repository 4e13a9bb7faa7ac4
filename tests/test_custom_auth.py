"""Custom auth (langgraph.json `auth.path`): the official SDK against a real server with the fixture Auth object.

The fixture (tests/custom_auth/auth.py) is written as for the official server: bearer tokens
name users, a global handler stamps the caller as `owner` and returns `{"owner": identity}`,
thread creation needs a permission, assistants are shared but only alice changes them, and the
store handler puts each user's items under their own identity.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import AuthenticationError, PermissionDeniedError

from helpers import raw, tag
from serverproc import TESTS, Server

CONFIG = TESTS / "custom_auth" / "langgraph.json"


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("custom_auth")
    srv = Server(db=tmp / "s.db", config=CONFIG,
                 env={"SKEINO_AUDIT": str(tmp / "audit.jsonl"), "LANGGRAPH_API_KEY": "", "LANGSMITH_API_KEY": ""})
    yield srv.start()
    srv.stop()


async def absent(call: Any) -> None:
    """The call fails as if the record did not exist (some SDK calls raise the plain httpx error)."""
    with pytest.raises(httpx.HTTPStatusError) as failed:
        result = await call
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
    assert failed.value.response.status_code == 404, failed.value.response.text


def client_for(srv: Server, who: str | None) -> Any:
    headers = {"Authorization": f"Bearer token-{who}"} if who else {}
    return get_client(url=srv.url, api_key=None, headers=headers)


@pytest.fixture
async def alice(authed: Server) -> AsyncIterator[Any]:
    c = client_for(authed, "alice")
    yield c
    await c.http.client.aclose()


@pytest.fixture
async def bob(authed: Server) -> AsyncIterator[Any]:
    c = client_for(authed, "bob")
    yield c
    await c.http.client.aclose()


async def test_authenticate_refusals_are_401_with_the_handlers_detail(authed: Server) -> None:
    anon = client_for(authed, None)
    with pytest.raises(AuthenticationError):
        await anon.threads.search()
    resp = httpx.post(f"{authed.url}/threads", json={})
    assert resp.status_code == 401 and resp.json() == {"detail": "Bearer token required"}
    resp = httpx.post(f"{authed.url}/threads/search", json={}, headers={"Authorization": "Bearer nobody"})
    assert resp.status_code == 401 and resp.json() == {"detail": "Unknown token"}
    # Liveness and what the server is stay open.
    assert httpx.get(f"{authed.url}/ok").status_code == 200
    assert httpx.get(f"{authed.url}/info").status_code == 200


async def test_a_handler_refusal_is_403(authed: Server, bob: Any) -> None:
    carol = client_for(authed, "carol")
    with pytest.raises(PermissionDeniedError) as refused:
        await carol.threads.create()
    assert refused.value.response.json() == {"detail": "You may not create threads"}
    # A handler returning False: the official server's plain 403.
    with pytest.raises(PermissionDeniedError):
        await bob.assistants.create(graph_id="whoami", name="bob's")
    await carol.http.client.aclose()


async def test_handlers_modify_the_value(alice: Any) -> None:
    thread = await alice.threads.create(metadata={"topic": "x", "owner": "mallory"})
    # The create handler overwrote the owner and added a field the caller never sent.
    assert thread["metadata"] == {"topic": "x", "owner": "alice", "team": "red"}
    assistant = await alice.assistants.create(graph_id="whoami", name="alice's", metadata={"k": "v"})
    assert assistant["metadata"] == {"k": "v", "owner": "alice"}


async def test_two_users_never_see_each_others_threads(alice: Any, bob: Any) -> None:
    marker = tag()
    mine = await alice.threads.create(metadata={"marker": marker})
    theirs = await bob.threads.create(metadata={"marker": marker})
    tid = mine["thread_id"]
    assert (await alice.threads.get(tid))["thread_id"] == tid
    assert [t["thread_id"] for t in await alice.threads.search(metadata={"marker": marker})] == [tid]
    assert [t["thread_id"] for t in await bob.threads.search(metadata={"marker": marker})] == [theirs["thread_id"]]
    assert await alice.threads.count(metadata={"marker": marker}) == 1
    assert await bob.threads.search(ids=[tid]) == []
    for attempt in (bob.threads.get(tid), bob.threads.update(tid, metadata={"owner": "bob"}), bob.threads.delete(tid),
                    bob.threads.get_state(tid), bob.threads.get_history(tid), bob.threads.update_state(tid, {"note": "x"}),
                    bob.threads.copy(tid)):
        await absent(attempt)
    # Pruning names the other's thread in vain; a copy is the copier's own.
    resp = await raw(bob, "POST", "/threads/prune", json={"thread_ids": [tid], "strategy": "delete"})
    assert resp.status_code == 200 and resp.json() == {"pruned_count": 0}
    copied = await alice.threads.copy(tid)
    assert copied["metadata"]["owner"] == "alice" and copied["metadata"]["forked_from"] == tid
    await absent(bob.threads.get(copied["thread_id"]))
    # Creating a thread with the other's id does not reveal theirs either.
    resp = await raw(bob, "POST", "/threads", json={"thread_id": tid, "if_exists": "do_nothing"})
    assert resp.status_code == 409
    assert (await alice.threads.get(tid))["metadata"]["owner"] == "alice"


async def test_two_users_never_see_each_others_runs_streams_and_joins(alice: Any, bob: Any) -> None:
    thread = await alice.threads.create()
    tid = thread["thread_id"]
    result = await alice.runs.wait(tid, "whoami", input={"note": "hi"})
    assert result["user_id"] == "alice"
    run = (await alice.runs.list(tid))[0]
    rid = run["run_id"]
    await absent(bob.runs.create(tid, "whoami", input={}))
    await absent(bob.runs.wait(tid, "whoami", input={}, multitask_strategy="interrupt"))
    for attempt in (bob.runs.get(tid, rid), bob.runs.list(tid), bob.runs.join(tid, rid), bob.runs.cancel(tid, rid),
                    bob.runs.delete(tid, rid)):
        await absent(attempt)
    for stream in (bob.runs.join_stream(tid, rid), await bob.threads.join_stream(tid)):  # (the latter is async)
        with pytest.raises(httpx.HTTPStatusError) as failed:
            async for _ in stream:
                pass
        assert failed.value.response.status_code == 404
    # Bulk cancel by id finds none of the other's runs; alice's run list is untouched.
    await absent(bob.runs.cancel_many(run_ids=[rid]))
    assert [r["run_id"] for r in await alice.runs.list(tid)] == [rid]
    assert (await alice.runs.get(tid, rid))["status"] == "success"
    assert (await alice.runs.join(tid, rid))["user_id"] == "alice"
    events = [part.event async for part in alice.runs.join_stream(tid, rid)]
    assert events  # her own run's stream replays for her


async def test_two_users_never_see_each_others_crons(alice: Any, bob: Any) -> None:
    thread = await alice.threads.create()
    cron = await alice.crons.create_for_thread(thread["thread_id"], "whoami", schedule="0 0 1 1 *", input={})
    cid = cron["cron_id"]
    assert cron["metadata"]["owner"] == "alice" and cron["user_id"] == "alice"
    assert cid in [c["cron_id"] for c in await alice.crons.search(thread_id=thread["thread_id"])]
    assert await bob.crons.search(thread_id=thread["thread_id"]) == []
    assert await bob.crons.count(thread_id=thread["thread_id"]) == 0
    await absent(bob.crons.update(cid, schedule="0 0 2 1 *"))
    await absent(bob.crons.delete(cid))
    resp = await raw(bob, "GET", f"/runs/crons/{cid}")
    assert resp.status_code == 404
    # A cron on the other's thread cannot be made either.
    await absent(bob.crons.create_for_thread(thread["thread_id"], "whoami", schedule="0 0 1 1 *", input={}))
    await alice.crons.delete(cid)


async def test_two_users_never_see_each_others_store_items(alice: Any, bob: Any) -> None:
    ns = ["notes", tag()]
    await alice.store.put_item(ns, "k", {"text": "alice's"})
    await bob.store.put_item(ns, "k", {"text": "bob's"})
    # Each reads their own item under the same namespace they asked for (rewritten under their identity).
    assert (await alice.store.get_item(ns, "k"))["value"] == {"text": "alice's"}
    assert (await bob.store.get_item(ns, "k"))["value"] == {"text": "bob's"}
    found = (await bob.store.search_items(ns))["items"]
    assert [i["value"] for i in found] == [{"text": "bob's"}] and found[0]["namespace"] == ["bob", *ns]
    # Naming the other's full namespace only reaches deeper into one's own.
    resp = await raw(bob, "GET", "/store/items", params={"namespace": ".".join(["alice", *ns]), "key": "k"})
    assert resp.status_code == 200 and resp.json() is None  # no such item (null, as on the official server)
    await bob.store.delete_item(["alice", *ns], "k")
    assert (await alice.store.get_item(ns, "k"))["value"] == {"text": "alice's"}
    namespaces = (await bob.store.list_namespaces(prefix=["notes"]))["namespaces"]
    assert ["bob", *ns] in namespaces and all(n[0] == "bob" for n in namespaces)


async def test_the_graph_sees_the_user_as_the_official_server_shows_it(alice: Any) -> None:
    thread = await alice.threads.create()
    # A caller cannot claim to be someone else through the run's config.
    spoof = {"configurable": {"langgraph_auth_user_id": "bob", "langgraph_auth_user": {"identity": "bob"}}}
    result = await alice.runs.wait(thread["thread_id"], "whoami", input={}, config=spoof)
    assert result["user_id"] == "alice"
    assert result["user_field"] == "red"  # extra fields of the user, read as user["team"]
    assert result["permissions"] == ["threads:write"]
    assert result["runtime_user"] == "alice"  # runtime.server_info.user
    # Stateless runs too: the throwaway thread belongs to the caller.
    assert (await alice.runs.wait(None, "whoami", input={}))["user_id"] == "alice"


async def test_a_crons_runs_run_as_its_owner(tmp_path: Path) -> None:
    # The scheduler's clock starts 20 s before a minute boundary, so an every-minute cron fires soon.
    boundary = math.ceil((time.time() + 86400) / 60) * 60
    srv = Server(db=tmp_path / "s.db", config=CONFIG,
                 env={"SKEINO_CLOCK_OFFSET_SECONDS": str(boundary - 20 - time.time())}).start()
    alice, bob = client_for(srv, "alice"), client_for(srv, "bob")
    try:
        thread = await alice.threads.create()
        tid = thread["thread_id"]
        await alice.crons.create_for_thread(tid, "whoami", schedule="* * * * *", input={})
        async with asyncio.timeout(120):
            while not (runs := await alice.runs.list(tid)):
                await asyncio.sleep(0.2)
        result = await alice.runs.join(tid, runs[0]["run_id"])
        assert result["user_id"] == "alice" and result["runtime_user"] == "alice"
        assert runs[0]["metadata"]["owner"] == "alice"  # through alice's create_run handler
        await absent(bob.runs.list(tid))
    finally:
        await alice.http.client.aclose()
        await bob.http.client.aclose()
        srv.stop()


def test_custom_auth_and_api_keys_together_are_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "skeino.cli", "serve", "--config", str(CONFIG), "--db", str(tmp_path / "x.db"),
         "--port", "1"],
        env={**__import__("os").environ, "SKEINO_API_KEYS": "k" * 20}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be combined" in lines[0] and "Traceback" not in proc.stderr


async def test_audit_names_the_user_and_the_refusal(authed: Server, bob: Any) -> None:
    marker = uuid.uuid4().hex
    await bob.threads.create(metadata={"marker": marker})
    httpx.post(f"{authed.url}/threads", json={}, headers={"Authorization": "Bearer nobody"})
    with pytest.raises(PermissionDeniedError):
        await bob.assistants.delete("whoami")  # the handler says no (only alice changes assistants)
    lines = Path(authed.env["SKEINO_AUDIT"]).read_text().splitlines()
    assert any('"who": "user:bob"' in line and '"POST /threads"' in line for line in lines)
    assert any('"outcome": "denied"' in line and "Unknown token" in line for line in lines)
    denied = [line for line in lines if '"who": "user:bob"' in line and '"DELETE /assistants/{assistant_id}"' in line]
    assert len(denied) == 1 and '"outcome": "denied"' in denied[0] and "auth handler: Forbidden" in denied[0]


async def test_protocol_v2_streams_and_commands_keep_users_apart(authed: Server, alice: Any) -> None:
    """The v2 thread stream, its commands and its WebSocket answer only the thread's owner."""
    import asyncio
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    as_alice = {"Authorization": "Bearer token-alice"}
    as_bob = {"Authorization": "Bearer token-bob"}
    tid = str(uuid.uuid4())
    start = {"id": 1, "method": "run.start", "params": {"assistant_id": "whoami", "input": {}}}
    async with httpx.AsyncClient(base_url=authed.url, timeout=10) as http:
        # A thread nobody made yet has no stream under custom auth (the official clients retry after run.start).
        resp = await http.post(f"/threads/{tid}/stream/events", json={"channels": ["values"]}, headers=as_alice)
        assert resp.status_code == 404
        started = (await http.post(f"/threads/{tid}/commands", json=start, headers=as_alice)).json()
        assert started["type"] == "success", started
        await alice.runs.join(tid, started["result"]["run_id"])
        assert (await alice.threads.get(tid))["metadata"]["owner"] == "alice"
        resp = await http.post(f"/threads/{tid}/stream/events", json={"channels": ["values"]}, headers=as_bob)
        assert resp.status_code == 404
        for method, params in (("state.get", {"namespace": []}), ("agent.getTree", {}),
                               ("run.start", start["params"])):
            reply = (await http.post(f"/threads/{tid}/commands", headers=as_bob,
                                     json={"id": 2, "method": method, "params": params})).json()
            assert reply["type"] == "error", (method, reply)
        mine = (await http.post(f"/threads/{tid}/commands", headers=as_alice,
                                json={"id": 3, "method": "state.get", "params": {"namespace": []}})).json()
        assert mine["type"] == "success"
    url = f"ws://127.0.0.1:{authed.port}/threads/{tid}/stream/events"
    subscribe = json.dumps({"id": 1, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}})
    async with connect(url, additional_headers=as_bob) as ws:
        await ws.send(subscribe)
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                await ws.recv()
        assert closed.value.rcvd.code == 4404
    async with connect(url, additional_headers=as_alice) as ws:
        await ws.send(subscribe)
        frames = [json.loads(await ws.recv()) for _ in range(3)]
        assert frames[0]["type"] == "success"
        assert [f["params"]["data"]["event"] for f in frames[1:]] == ["running", "completed"]
    with pytest.raises(Exception):
        async with connect(url):  # no token at all
            pass


class _Account:
    """A user object of the deployment's own, as an authenticate handler may return."""

    identity = "dave"
    permissions = ["read"]
    org = "acme"


@pytest.mark.parametrize("result, identity, permissions, extra", [
    ("erin", "erin", [], {}),
    ({"identity": "frank", "permissions": ["a"], "org": "x"}, "frank", ["a"], {"org": "x"}),
    ((["p"], {"identity": "gina"}), "gina", ["p"], {}),
    ((["p"], "hal"), "hal", ["p"], {}),
    (_Account(), "dave", ["read"], {}),
])
def test_authenticate_results_become_users_as_on_the_official_server(
        result: Any, identity: str, permissions: list[str], extra: dict[str, Any]) -> None:
    from skeino.auth.custom import _normalize

    ctx = _normalize(result)
    assert ctx.user.identity == identity and ctx.user["identity"] == identity
    assert ctx.user.display_name == identity and ctx.user.is_authenticated is True
    assert list(ctx.permissions) == permissions
    for key, value in extra.items():
        assert ctx.user[key] == value and getattr(ctx.user, key) == value
    if isinstance(result, _Account):
        assert ctx.user.org == "acme"  # attributes of the object read through


@pytest.mark.parametrize("result", [None, 42, {"name": "no identity"}, ("too", "many", "parts")])
def test_authenticate_results_without_an_identity_are_refused(result: Any) -> None:
    from skeino.auth.custom import _normalize

    with pytest.raises(ValueError):
        _normalize(result)


def test_actions_no_handler_covers_are_named_at_start(caplog: pytest.LogCaptureFixture) -> None:
    from langgraph_sdk import Auth

    from skeino.auth.custom import CustomAuth

    partial = Auth()

    @partial.authenticate
    async def authenticate(authorization: str | None) -> str:
        return "x"

    @partial.on.threads
    async def threads(ctx: Any, value: Any) -> None:
        return None

    with caplog.at_level("WARNING", logger="skeino.auth"):
        CustomAuth(partial, "auth.py")
    [warning] = [r.getMessage() for r in caplog.records if r.name == "skeino.auth"]
    assert "store.put" in warning and "crons.delete" in warning and "threads." not in warning
