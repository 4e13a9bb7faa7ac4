"""Idempotency-Key on thread and run creation, through the official client passing the header."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from helpers import raw, tag
from serverproc import Server

pytestmark = pytest.mark.usefixtures("no_server_errors")


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{uuid.uuid4()}"}


async def test_thread_creation_is_idempotent(client: Any) -> None:
    headers, marker = key(), tag()
    first = await client.threads.create(metadata={"m": marker}, headers=headers)
    again = await client.threads.create(metadata={"m": marker}, headers=headers)
    assert again == first
    assert await client.threads.count(metadata={"m": marker}) == 1
    # Another body under the same key is a mistake the caller must hear about.
    with pytest.raises(UnprocessableEntityError, match="Idempotency-Key"):
        await client.threads.create(metadata={"m": "other"}, headers=headers)
    assert await client.threads.count(metadata={"m": marker}) == 1
    # Without a key, or with another key, each request creates.
    assert (await client.threads.create(metadata={"m": marker}))["thread_id"] != first["thread_id"]
    assert (await client.threads.create(metadata={"m": marker}, headers=key()))["thread_id"] != first["thread_id"]


async def test_run_creation_is_idempotent_on_every_route(client: Any) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    headers = key()
    run = await client.runs.create(tid, "counter", input={"count": 0}, headers=headers)
    assert await client.runs.create(tid, "counter", input={"count": 0}, headers=headers) == run
    await client.runs.join(tid, run["run_id"])
    # The same key on another route, or with other input, is another request.
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(tid, "counter", input={"count": 5}, headers=headers)
    with pytest.raises(httpx.HTTPStatusError) as refused:  # the SDK's wait raises httpx's own error
        await client.runs.wait(tid, "counter", input={"count": 0}, headers=headers)
    assert refused.value.response.status_code == 422

    headers = key()
    out = await client.runs.wait(tid, "counter", input={"count": 10}, headers=headers)
    assert await client.runs.wait(tid, "counter", input={"count": 10}, headers=headers) == out == {"count": 13}

    headers = key()
    seen = []
    for _ in range(2):
        async for part in client.runs.stream(tid, "counter", input={"count": 20}, headers=headers):
            if part.event == "metadata":
                seen.append(part.data["run_id"])
    assert len(seen) == 2 and seen[0] == seen[1]
    assert len(await client.runs.list(tid, limit=100)) == 3

    headers = key()
    stateless = await client.runs.create(None, "counter", input={"count": 0}, on_completion="keep", headers=headers)
    assert (await client.runs.create(None, "counter", input={"count": 0}, on_completion="keep",
                                     headers=headers))["run_id"] == stateless["run_id"]
    headers = key()
    batch = [{"assistant_id": "counter", "input": {"count": i}, "on_completion": "keep"} for i in range(3)]
    first = await client.runs.create_batch(batch, headers=headers)
    assert [r["run_id"] for r in await client.runs.create_batch(batch, headers=headers)] == [r["run_id"] for r in first]


async def test_identical_requests_arriving_together_create_once(client: Any) -> None:
    thread = await client.threads.create()
    tid, headers = thread["thread_id"], key()
    runs = await asyncio.gather(*(client.runs.create(tid, "counter", input={"count": 0}, headers=headers)
                                  for _ in range(6)))
    assert len({r["run_id"] for r in runs}) == 1
    assert len(await client.runs.list(tid, limit=100)) == 1
    marker, headers = tag(), key()
    threads = await asyncio.gather(*(client.threads.create(metadata={"m": marker}, headers=headers) for _ in range(6)))
    assert len({t["thread_id"] for t in threads}) == 1
    assert await client.threads.count(metadata={"m": marker}) == 1


async def test_a_failed_creation_can_be_retried_with_its_key(client: Any) -> None:
    tid, headers = str(uuid.uuid4()), key()
    with pytest.raises(NotFoundError):
        await client.runs.create(tid, "counter", input={"count": 0}, headers=headers)
    await client.threads.create(thread_id=tid)
    run = await client.runs.create(tid, "counter", input={"count": 0}, headers=headers)
    assert run["thread_id"] == tid and len(await client.runs.list(tid)) == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9"])
async def test_a_malformed_key_is_422(client: Any, value: str) -> None:
    res = await raw(client, "POST", "/threads", json={}, headers={"Idempotency-Key": value.encode("utf-8")})
    assert res.status_code == 422 and "Idempotency-Key" in res.json()["detail"], res.text


ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef0"


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[Server]:
    server = Server(db=tmp_path / "keys.db", env={"SKEINO_API_KEYS": f"{ALICE};{BOB}"}).start()
    yield server
    server.stop()


async def test_keys_are_scoped_to_the_caller(keyed: Server) -> None:
    alice, bob = (get_client(url=keyed.url, api_key=k) for k in (ALICE, BOB))
    try:
        headers = key()
        a = await alice.threads.create(headers=headers)
        b = await bob.threads.create(headers=headers)
        assert a["thread_id"] != b["thread_id"]
        assert (await alice.threads.create(headers=headers))["thread_id"] == a["thread_id"]
        # Scoped, not shared: another caller's body under the same key is not a conflict either.
        assert (await bob.threads.create(metadata={"x": 1}, headers=key()))["metadata"] == {"x": 1}
    finally:
        for c in (alice, bob):
            await c.http.client.aclose()
