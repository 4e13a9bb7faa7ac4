"""The Storage contract for time-to-live: thread TTLs and the sweeps that find what expired.

Runs against every backend of tests/test_storage_contract.py, with its fixtures.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from skeino.storage.base import Storage

from test_storage_contract import backend, new_id, run, storage, thread  # noqa: F401  (fixtures)


async def test_thread_ttl_set_get_and_expiry(storage: Storage) -> None:
    now = time.time()
    a, b, c = thread(), thread(), thread()
    for t in (a, b, c):
        await storage.thread_create(t)
    assert await storage.thread_ttl_set(a["thread_id"], strategy="delete", ttl_minutes=1, now=now)
    assert await storage.thread_ttl_set(b["thread_id"], strategy="delete", ttl_minutes=0.5, now=now)

    got = await storage.thread_ttl_get(a["thread_id"])
    assert got is not None and got["strategy"] == "delete" and got["ttl_minutes"] == 1
    assert abs(datetime.fromisoformat(got["expires_at"]).timestamp() - (now + 60)) < 0.01
    assert await storage.thread_ttl_get(c["thread_id"]) is None

    mine = {a["thread_id"], b["thread_id"], c["thread_id"]}

    async def expired_at(when: float) -> list[str]:
        return [t for t in await storage.threads_expired(now=when, limit=1000) if t in mine]

    assert await expired_at(now + 29) == []
    assert await expired_at(now + 30) == [b["thread_id"]]
    # Soonest-expired first; a thread without a TTL never expires.
    assert await expired_at(now + 3600) == [b["thread_id"], a["thread_id"]]
    assert len(await storage.threads_expired(now=now + 3600, limit=1)) == 1


async def test_a_new_ttl_replaces_the_old_one(storage: Storage) -> None:
    now = time.time()
    t = thread()
    await storage.thread_create(t)
    await storage.thread_ttl_set(t["thread_id"], strategy="delete", ttl_minutes=1, now=now)
    await storage.thread_ttl_set(t["thread_id"], strategy="delete", ttl_minutes=10, now=now + 30)
    got = await storage.thread_ttl_get(t["thread_id"])
    assert got is not None and got["ttl_minutes"] == 10
    assert t["thread_id"] not in await storage.threads_expired(now=now + 120, limit=1000)
    assert t["thread_id"] in await storage.threads_expired(now=now + 630, limit=1000)


async def test_ttl_of_a_missing_thread_writes_nothing(storage: Storage) -> None:
    missing = new_id()
    assert await storage.thread_ttl_set(missing, strategy="delete", ttl_minutes=1) is False
    assert await storage.thread_ttl_get(missing) is None
    assert missing not in await storage.threads_expired(now=time.time() + 3600, limit=1000)


async def test_thread_delete_takes_its_ttl(storage: Storage) -> None:
    now = time.time()
    t = thread()
    await storage.thread_create(t)
    await storage.run_create(run(t["thread_id"]), reject_if_busy=False)
    await storage.thread_ttl_set(t["thread_id"], strategy="delete", ttl_minutes=1, now=now)
    assert await storage.thread_delete(t["thread_id"])
    assert await storage.thread_ttl_get(t["thread_id"]) is None
    assert t["thread_id"] not in await storage.threads_expired(now=now + 3600, limit=1000)
    # A thread created again with the same id starts without the old TTL.
    await storage.thread_create(t)
    assert await storage.thread_ttl_get(t["thread_id"]) is None


async def test_store_sweep_deletes_only_expired_items(storage: Storage) -> None:
    ns = ("contract-ttl", new_id())
    await storage.store.aput(ns, "short", {"v": 1}, ttl=0.001)
    await storage.store.aput(ns, "long", {"v": 2}, ttl=60)
    await storage.store.aput(ns, "forever", {"v": 3})
    # The store keeps expiry to the second: sweep until the short item goes, or give up. Reads
    # must not refresh the TTL they are waiting on.
    deadline = time.monotonic() + 10
    while await storage.store.aget(ns, "short", refresh_ttl=False) is not None and time.monotonic() < deadline:
        await storage.store_sweep_expired()
        await asyncio.sleep(0.2)
    assert await storage.store.aget(ns, "short", refresh_ttl=False) is None
    assert {i.key for i in await storage.store.asearch(ns, refresh_ttl=False)} == {"long", "forever"}

