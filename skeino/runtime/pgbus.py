"""The bus between replicas on Postgres alone (LISTEN/NOTIFY), for deployments without Redis.

The same interface as bus.RedisBus, over the tables of skeino.storage.postgres.bus: a run's
events are rows any replica reads (so `Last-Event-ID` resumes anywhere), closed by an end
row carrying its status and result; a notification tells followers to read again, and
followers also read every `_POLL` seconds, so a lost notification only delays them. Rows
expire as Redis keys would: `keep_seconds` after the run's end, a day after the last write
when no end came.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson

from skeino import serde
from skeino.runtime.threadlog import ProtocolEvent

logger = logging.getLogger("skeino.bus")

Event = tuple[int, str, bytes]
_POLL = 1.0  # seconds a follower waits for a notification before reading anyway
_ORPHAN_TTL = 24 * 3600  # events of a run whose replica died before its end row still go
_THREAD_KEEP = 10_000  # v2 events kept per thread
_EXPIRE_EVERY = 60.0


class PostgresBus:
    """One replica's side of the bus, on the shared database (a PostgresStorage)."""

    def __init__(self, storage: Any, keep_seconds: float) -> None:
        self._storage = storage
        self._keep = max(float(keep_seconds), 1.0)
        self._id = uuid.uuid4().hex[:12]  # signs this replica's wake-ups, so it skips its own
        self._tasks: list[asyncio.Task[None]] = []
        # Followers waiting for news of a key ("run <id>", "thread <id>"): set on notification.
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self.on_cancel: Callable[[str, str], None] = lambda run_id, action: None
        self.on_wake: Callable[[], None] = lambda: None

    # lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        listening = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._storage.bus_listen(self._dispatch, listening),
                                               name="skeino-bus"))
        self._tasks.append(asyncio.create_task(self._expire_loop(), name="skeino-bus-expiry"))
        await asyncio.wait_for(listening.wait(), 30)  # no cancel is missed once serving

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(_EXPIRE_EVERY)
            try:
                await self._storage.bus_expire(keep_seconds=self._keep, orphan_seconds=_ORPHAN_TTL,
                                               thread_keep=_THREAD_KEEP)
            except Exception as exc:  # tried again next time
                logger.warning("expiring old bus rows did not work this time: %s", exc)

    def _dispatch(self, message: str) -> None:
        kind, _, rest = message.partition(" ")
        if kind == "wake":
            if rest == self._id:
                return  # this replica's own: it woke its queue itself before saying so
            self.on_wake()
            if not rest:
                # Unsigned: the listener (re)connected and whatever was said meanwhile may be
                # missed, so every follower reads again. A replica's wake-up says only that runs
                # may be waiting; followers reading on each one made every run's start and end
                # cost a read per follower.
                for key in list(self._waiters):
                    self._notify(key)
        elif kind == "cancel":
            run_id, _, action = rest.partition(" ")
            self.on_cancel(run_id, action)
        else:
            self._notify(message)

    def _notify(self, key: str) -> None:
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _waiter(self, key: str) -> asyncio.Future[None]:
        """A future set at the next notification for `key` (taken before reading, so none is missed)."""
        waiter = self._waiters.get(key)
        if waiter is None or waiter.done():
            waiter = self._waiters[key] = asyncio.get_running_loop().create_future()
        return waiter

    @staticmethod
    async def _news(waiter: asyncio.Future[None], stop: asyncio.Event | None = None) -> bool:
        """Wait for the notification (or `stop`), at most `_POLL` seconds; whether either came."""
        waits: set[asyncio.Future[Any]] = {waiter}
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopped is not None:
            waits.add(stopped)
        # asyncio.wait leaves the waiter as it is on timeout (other readers share it).
        done, _ = await asyncio.wait(waits, timeout=_POLL, return_when=asyncio.FIRST_COMPLETED)
        if stopped is not None and not stopped.done():
            stopped.cancel()
        return bool(done)

    # control --------------------------------------------------------------------------
    async def wake(self) -> None:
        await self._storage.bus_notify(f"wake {self._id}")

    async def cancel(self, run_id: str, action: str) -> None:
        await self._storage.bus_cancel(run_id, action)

    async def cancel_requested(self, run_id: str) -> str | None:
        return await self._storage.bus_cancel_requested(run_id)

    # run events -----------------------------------------------------------------------
    async def publish(self, run_id: str, events: list[Event]) -> None:
        if events:
            await self._storage.bus_publish(run_id, events)

    async def send(self, run_id: str, events: list[Event], thread_id: str, thread_events: list[ProtocolEvent],
                   end: tuple[str, Any] | None = None) -> None:
        """A run's new events, its thread's new v2 events and its end (any may be empty or None), in one commit."""
        await self._storage.bus_send(
            run_id, events, thread_id, [(e.seq, e.run_id, e.method, list(e.namespace), e.frame) for e in thread_events],
            (end[0], serde.dumps(end[1])) if end is not None else None)

    async def exists(self, run_id: str) -> bool:
        # Rows outlive their expiry until the next sweep; the log is gone for readers at once.
        return await self._storage.bus_exists(run_id, ended_since=time.time() - self._keep)

    async def reset(self, run_id: str) -> None:
        await self._storage.bus_reset(run_id)

    async def end(self, run_id: str, status: str, result: Any) -> None:
        await self._storage.bus_end(run_id, status, serde.dumps(result))

    async def follow(self, run_id: str, after: int, ended: Callable[[], Awaitable[bool]],
                     stop: asyncio.Event | None = None) -> AsyncIterator[list[Event]]:
        """Events with id > after until the run's end row (or, failing one, until `ended()` says so).

        Also returns once `stop` is set, checked between reads: a read is never cancelled
        halfway (that would leave its pooled connection busy until the pool reclaimed it).
        """
        key, last, quiet = f"run {run_id}", after, False
        while stop is None or not stop.is_set():
            waiter = self._waiter(key)
            events, end = await self._storage.bus_read(run_id, last)
            if events:
                last = events[-1][0]
                yield events
            if end is not None or (quiet and not events):
                return
            if events:
                continue
            if not await self._news(waiter, stop) and await ended():
                quiet = True  # one last read finds what the end left behind

    async def wait(self, run_id: str, ended: Callable[[], Awaitable[bool]],
                   stop: asyncio.Event | None = None) -> tuple[str, Any] | None:
        """(status, result) once the run's end row is there; None if it ended without one.

        None as well once `stop` is set, checked between reads (see `follow`).
        """
        key, last = f"run {run_id}", -1
        while stop is None or not stop.is_set():
            waiter = self._waiter(key)
            events, end = await self._storage.bus_read(run_id, last)
            if end is not None:
                return end[0], orjson.loads(end[1])
            last = events[-1][0] if events else last
            if not await self._news(waiter, stop) and await ended():
                _, end = await self._storage.bus_read(run_id, last)
                return (end[0], orjson.loads(end[1])) if end is not None else None
        return None

    # protocol-v2 thread streams --------------------------------------------------------
    async def publish_thread(self, thread_id: str, events: list[ProtocolEvent]) -> None:
        if events:
            await self.send(events[0].run_id, [], thread_id, events)

    @staticmethod
    def _thread_event(row: tuple[int, int, str, str, list[str], bytes]) -> ProtocolEvent:
        _, seq, run_id, method, namespace, frame = row
        return ProtocolEvent(seq, run_id, method, tuple(namespace), None, frame)

    async def thread_events(self, thread_id: str) -> list[ProtocolEvent]:
        return [self._thread_event(r) for r in await self._storage.bus_thread_read(thread_id, 0)]

    async def follow_thread(self, thread_id: str, since: int) -> AsyncIterator[list[ProtocolEvent]]:
        """The thread's v2 events with seq > since, then live, until the caller stops reading."""
        key, last = f"thread {thread_id}", 0
        while True:
            waiter = self._waiter(key)
            rows = await self._storage.bus_thread_read(thread_id, last)
            if rows:
                last = rows[-1][0]
                batch = [e for e in map(self._thread_event, rows) if e.seq > since]
                if batch:
                    yield batch
                continue
            await self._news(waiter)
