"""Thread time-to-live: the `ttl` a client sends, and the sweeper that deletes expired threads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from skeino.errors import Invalid, NotFound
from skeino.storage.base import Storage

if TYPE_CHECKING:
    from skeino.runtime.threads import ThreadService

logger = logging.getLogger("skeino")

# How often expired threads are looked for when langgraph.json names no interval.
DEFAULT_SWEEP_MINUTES = 1.0


# The longest TTL accepted (100 years): far beyond any use, and short enough that an expiry
# time stays a valid date (1e300 minutes would overflow every date type).
MAX_TTL_MINUTES = 100 * 365 * 24 * 60


def check_ttl_minutes(value: Any, field: str) -> float:
    """A TTL in minutes: a positive number up to MAX_TTL_MINUTES, else Invalid naming `field`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TTL_MINUTES:
        raise Invalid(f"{field} must be a positive number of minutes up to {MAX_TTL_MINUTES}, got {value!r}")
    return float(value)


def thread_ttl_minutes(value: Any) -> float:
    """Minutes from a request's `ttl`: `{"strategy": "delete", "ttl": minutes}` (what the SDK sends) or a number."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"strategy", "ttl"})
        if unknown:
            raise Invalid(f"unknown field {unknown[0]!r} in thread 'ttl'; expected 'strategy' and 'ttl'")
        strategy = value.get("strategy", "delete")
        if strategy != "delete":
            raise Invalid(f"thread ttl strategy {strategy!r} is not supported; use 'delete'")
        value = value.get("ttl")
    return check_ttl_minutes(value, "thread 'ttl'")


class ThreadSweeper:
    """Deletes threads whose TTL ran out, with their runs and checkpoints, every interval."""

    def __init__(self, storage: Storage, threads: "ThreadService", interval_minutes: float | None) -> None:
        self._storage = storage
        self._threads = threads
        self._interval = (interval_minutes or DEFAULT_SWEEP_MINUTES) * 60
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="skeino-thread-ttl-sweeper")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(self._task, timeout=5)
        except asyncio.TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def sweep(self) -> int:
        """Delete every thread expired by now; returns how many were deleted."""
        deleted = 0
        while not self._stop.is_set():
            batch = 0
            for thread_id in await self._storage.threads_expired(limit=100):
                with contextlib.suppress(NotFound):  # deleted by a client meanwhile
                    await self._threads.delete(thread_id)
                    batch += 1
            deleted += batch
            if batch == 0:  # nothing (more) to delete: never spin on a row that will not go
                break
        return deleted

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self._interval)
                return
            except asyncio.TimeoutError:
                pass
            try:
                deleted = await self.sweep()
                if deleted:
                    logger.info("deleted %d expired thread(s)", deleted)
            except Exception:  # one failed sweep must not end the sweeper
                logger.exception("thread TTL sweep failed")
