"""Idempotency-Key: a creation retried with the same key and body answers the first one's object."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, Awaitable, Callable

import orjson

from skeino import serde
from skeino.errors import Conflict, Invalid
from skeino.storage.base import Storage

# A claim still pending after this long belongs to a request that died (creating a thread or
# a run takes milliseconds); a retry may then take it over instead of waiting for a day.
STALE_AFTER_SECONDS = 60.0
# How long a request waits for an identical one that is still in progress before a 409.
WAIT_SECONDS = 30.0
# Another replica's request cannot wake this one: look again this often.
_POLL_SECONDS = 0.05
MAX_KEY_LENGTH = 255


def check_key(key: str) -> str:
    """The header's value, or Invalid when it is not a short printable ASCII string."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Invalid(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


def fingerprint(route: str, params: dict[str, Any], body: Any) -> str:
    """What makes two requests 'the same': the route, its path parameters and the parsed body."""
    canonical = orjson.dumps({"route": route, "params": params, "body": serde.to_jsonable(body)},
                             option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class Idempotency:
    """Claims keys in storage before anything is created, so a retry never creates twice."""

    def __init__(self, storage: Storage, ttl_seconds: float) -> None:
        self._storage = storage
        self._ttl = ttl_seconds
        # Requests in this process that hold a claim: identical ones wait on these.
        self._holding: dict[tuple[str, str], asyncio.Event] = {}

    async def once(self, scope: str, key: str, request: str, create: Callable[[], Awaitable[Any]]) -> Any:
        """`create()`'s result, or the result the first request with this key and `request` fingerprint got."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            now = time.time()
            held = await self._storage.idempotency_claim(scope, key, request, now=now, expires_at=now + self._ttl,
                                                         stale_before=now - STALE_AFTER_SECONDS)
            if held is None:
                return await self._create(scope, key, create)
            if held["fingerprint"] != request:
                raise Invalid(f"Idempotency-Key {key!r} was already used with a different request; "
                              "use a new key for a new request")
            if held["response"] is not None:
                return held["response"]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Conflict(f"A request with Idempotency-Key {key!r} is still in progress; retry later")
            holder = self._holding.get((scope, key))
            if holder is not None:
                try:
                    await asyncio.wait_for(holder.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
            else:
                await asyncio.sleep(min(_POLL_SECONDS, remaining))

    async def _create(self, scope: str, key: str, create: Callable[[], Awaitable[Any]]) -> Any:
        done = self._holding[(scope, key)] = asyncio.Event()
        try:
            try:
                result = await create()
            except BaseException:
                # Nothing was created (or the failure is the answer to give again): let a retry run it.
                await asyncio.shield(self._storage.idempotency_release(scope, key))
                raise
            await self._storage.idempotency_complete(scope, key, serde.to_jsonable(result))
            return result
        finally:
            # Waiters look again only now, when the response (or the released claim) is stored.
            self._holding.pop((scope, key), None)
            done.set()
