"""The Storage contract for Idempotency-Key claims: one holder per key, its response, expiry.

Runs against every backend of tests/test_storage_contract.py, with its fixtures.
"""

from __future__ import annotations

import asyncio
import time

from skeino.storage.base import Storage

from test_storage_contract import backend, new_id, storage  # noqa: F401  (fixtures)

DAY = 86400.0


async def claim(storage: Storage, key: str, fingerprint: str = "f1", *, scope: str = "", now: float | None = None,
                stale_after: float = 60.0) -> object:
    now = time.time() if now is None else now
    return await storage.idempotency_claim(scope, key, fingerprint, now=now, expires_at=now + DAY,
                                           stale_before=now - stale_after)


async def test_first_claim_holds_and_the_response_is_kept(storage: Storage) -> None:
    key = new_id()
    assert await claim(storage, key) is None
    pending = await claim(storage, key, "f2")
    assert pending is not None and pending["fingerprint"] == "f1" and pending["response"] is None  # type: ignore[index]
    await storage.idempotency_complete("", key, {"run_id": "r1", "nested": {"n": [1, 2]}})
    done = await claim(storage, key)
    assert done is not None and done["response"] == {"run_id": "r1", "nested": {"n": [1, 2]}}  # type: ignore[index]


async def test_scopes_keep_callers_keys_apart(storage: Storage) -> None:
    key = new_id()
    assert await claim(storage, key, scope="key:alice") is None
    assert await claim(storage, key, scope="key:bob") is None
    assert await claim(storage, key, scope="key:alice") is not None


async def test_release_lets_a_retry_claim_again_but_never_drops_a_response(storage: Storage) -> None:
    failed, done = new_id(), new_id()
    assert await claim(storage, failed) is None
    await storage.idempotency_release("", failed)
    assert await claim(storage, failed, "f2") is None

    assert await claim(storage, done) is None
    await storage.idempotency_complete("", done, [1])
    await storage.idempotency_release("", done)
    assert (await claim(storage, done))["response"] == [1]  # type: ignore[index]


async def test_expired_and_abandoned_claims_can_be_claimed_again(storage: Storage) -> None:
    now = time.time()
    expired, abandoned = new_id(), new_id()
    assert await storage.idempotency_claim("", expired, "f1", now=now, expires_at=now + 10, stale_before=0) is None
    await storage.idempotency_complete("", expired, {"old": True})
    assert await claim(storage, expired, "f2", now=now + 5) is not None
    assert await claim(storage, expired, "f2", now=now + 11) is None

    # A pending claim whose request died is taken over once older than the stale bound;
    # a completed one is kept until it expires.
    assert await claim(storage, abandoned, now=now) is None
    assert await claim(storage, abandoned, "f2", now=now + 30, stale_after=60) is not None
    assert await claim(storage, abandoned, "f2", now=now + 61, stale_after=60) is None


async def test_simultaneous_claims_have_one_winner(storage: Storage) -> None:
    key = new_id()
    results = await asyncio.gather(*(claim(storage, key, f"f{i}") for i in range(8)))
    assert sum(r is None for r in results) == 1
