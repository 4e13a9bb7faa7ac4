"""Redis between replicas: live run events, cancel signals and "runs are waiting" wake-ups.

Each run's events go to a Redis stream (entry id `0-<event id + 1>`, so `Last-Event-ID`
maps straight onto XREAD), closed by an end entry `1-0` carrying the run's status and
result; the stream expires `keep_seconds` after the end. Cancels are a key (so a replica
that claims the run a moment later still sees it) plus a message on the control channel.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson
import redis.asyncio as redis

from skeino import serde
from skeino.runtime.threadlog import ProtocolEvent

logger = logging.getLogger("skeino.bus")

Event = tuple[int, str, bytes]
_END = "1-0"
_BLOCK_MS = 1000
_ORPHAN_TTL = 24 * 3600  # a stream whose replica died before its end entry still goes
_THREAD_KEEP = 10_000  # v2 events kept per thread stream (about; Redis trims whole nodes)


def namespace(database_url: str) -> str:
    """Key prefix shared by exactly the replicas of one database."""
    return "skeino:" + hashlib.sha1(database_url.encode()).hexdigest()[:12] + ":"


class RedisBus:
    """One replica's side of the Redis channel shared by all replicas of a database."""

    def __init__(self, url: str, prefix: str, keep_seconds: float) -> None:
        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix
        self._keep = max(int(keep_seconds), 1)
        self._control = prefix + "control"
        self._listener: asyncio.Task[None] | None = None
        self.on_cancel: Callable[[str, str], None] = lambda run_id, action: None
        self.on_wake: Callable[[], None] = lambda: None

    def _key(self, run_id: str) -> str:
        return f"{self._prefix}run:{run_id}"

    # lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await self._redis.ping()  # a wrong URL fails the start-up, not the first run
        self._listener = asyncio.create_task(self._listen(), name="skeino-bus")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._redis.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._control)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._dispatch(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted or the network blipped: resubscribe
                logger.warning("control channel lost (%s: %s); resubscribing", type(exc).__name__, exc)
                await asyncio.sleep(1)

    def _dispatch(self, message: str) -> None:
        kind, _, rest = message.partition(" ")
        if kind == "wake":
            self.on_wake()
        elif kind == "cancel":
            run_id, _, action = rest.partition(" ")
            self.on_cancel(run_id, action)

    # control --------------------------------------------------------------------------
    async def wake(self) -> None:
        """Tell every replica runs may be waiting for them."""
        await self._redis.publish(self._control, "wake")

    async def cancel(self, run_id: str, action: str) -> None:
        """Ask whichever replica executes (or is about to execute) the run to stop it."""
        await self._redis.set(f"{self._prefix}cancel:{run_id}", action, ex=_ORPHAN_TTL)
        await self._redis.publish(self._control, f"cancel {run_id} {action}")

    async def cancel_requested(self, run_id: str) -> str | None:
        value = await self._redis.get(f"{self._prefix}cancel:{run_id}")
        return value.decode() if value is not None else None

    # events ---------------------------------------------------------------------------
    async def publish(self, run_id: str, events: list[Event]) -> None:
        if not events:
            return
        key = self._key(run_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for seq, name, data in events:
                pipe.xadd(key, {"e": name, "d": data}, id=f"0-{seq + 1}")
            if events[0][0] == 0:
                pipe.expire(key, _ORPHAN_TTL)
            await pipe.execute()

    async def send(self, run_id: str, events: list[Event], thread_id: str, thread_events: list[ProtocolEvent],
                   end: tuple[str, Any] | None = None) -> None:
        """A run's new events, its thread's new v2 events and its end (any may be empty or None)."""
        await self.publish(run_id, events)
        if thread_events:
            await self.publish_thread(thread_id, thread_events)
        if end is not None:
            await self.end(run_id, *end)

    # protocol-v2 thread streams --------------------------------------------------------
    def _thread_key(self, thread_id: str) -> str:
        return f"{self._prefix}thread:{thread_id}"

    async def publish_thread(self, thread_id: str, events: list[ProtocolEvent]) -> None:
        """Append v2 events to the thread's stream (the newest `_THREAD_KEEP` entries are kept)."""
        key = self._thread_key(thread_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for e in events:
                pipe.xadd(key, {"s": e.seq, "r": e.run_id, "m": e.method, "n": orjson.dumps(e.namespace), "f": e.frame},
                          maxlen=_THREAD_KEEP, approximate=True)
            pipe.expire(key, _ORPHAN_TTL)
            await pipe.execute()

    @staticmethod
    def _thread_event(fields: dict[bytes, bytes]) -> ProtocolEvent:
        return ProtocolEvent(int(fields[b"s"]), fields[b"r"].decode(), fields[b"m"].decode(),
                             tuple(orjson.loads(fields[b"n"])), None, bytes(fields[b"f"]))

    async def thread_events(self, thread_id: str) -> list[ProtocolEvent]:
        entries = await self._redis.xrange(self._thread_key(thread_id))
        return [self._thread_event(fields) for _, fields in entries]

    async def follow_thread(self, thread_id: str, since: int) -> AsyncIterator[list[ProtocolEvent]]:
        """The thread's v2 events with seq > since, then live, until the caller stops reading."""
        key, last = self._thread_key(thread_id), "0-0"
        while True:
            reply = await self._redis.xread({key: last}, count=1000, block=_BLOCK_MS)
            if not reply:
                continue
            batch = []
            for entry_id, fields in reply[0][1]:
                last = entry_id.decode()
                event = self._thread_event(fields)
                if event.seq > since:
                    batch.append(event)
            if batch:
                yield batch

    async def exists(self, run_id: str) -> bool:
        return bool(await self._redis.exists(self._key(run_id)))

    async def reset(self, run_id: str) -> None:
        """Forget a run's events (it will run again from its first event)."""
        await self._redis.delete(self._key(run_id), f"{self._prefix}cancel:{run_id}")

    async def end(self, run_id: str, status: str, result: Any) -> None:
        """Close the run's stream: followers stop, waiters get the result."""
        key = self._key(run_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"end": status, "r": serde.dumps(result)}, id=_END)
            pipe.expire(key, self._keep)
            try:
                await pipe.execute()
            except redis.ResponseError:  # already ended (e.g. cancelled twice)
                pass

    async def follow(self, run_id: str, after: int, ended: Callable[[], Awaitable[bool]],
                     stop: asyncio.Event | None = None) -> AsyncIterator[list[Event]]:
        """Events with id > after until the run's end entry (or, failing one, until `ended()` says so).

        Also returns once `stop` is set, checked between reads (a read is never cancelled halfway).
        """
        key, last = self._key(run_id), f"0-{after + 1}" if after >= 0 else "0-0"
        quiet = False
        while stop is None or not stop.is_set():
            reply = await self._redis.xread({key: last}, count=1000, block=None if quiet else _BLOCK_MS)
            entries = reply[0][1] if reply else []
            batch: list[Event] = []
            for entry_id, fields in entries:
                last = entry_id.decode()
                if b"end" in fields:
                    if batch:
                        yield batch
                    return
                batch.append((int(last.split("-")[1]) - 1, fields[b"e"].decode(), bytes(fields[b"d"])))
            if batch:
                yield batch
                quiet = False
            elif quiet:
                return  # one last non-blocking read after the run ended found nothing more
            elif await ended():
                quiet = True

    async def wait(self, run_id: str, ended: Callable[[], Awaitable[bool]],
                   stop: asyncio.Event | None = None) -> tuple[str, Any] | None:
        """(status, result) once the run's end entry is there; None if it ended without one.

        None as well once `stop` is set, checked between reads (a read is never cancelled halfway).
        """
        key = self._key(run_id)
        tail = await self._redis.xrevrange(key, count=1)
        last = tail[0][0].decode() if tail else "0-0"
        entries = tail
        while True:
            for entry_id, fields in entries:
                if b"end" in fields:
                    return fields[b"end"].decode(), orjson.loads(fields[b"r"])
                last = entry_id.decode()
            # Everything that arrived since, in one read: a run's events cost a read per
            # batch, not two per event.
            reply = await self._redis.xread({key: last}, count=1000, block=_BLOCK_MS)
            entries = reply[0][1] if reply else []
            if not entries and await ended():
                return None
            if stop is not None and stop.is_set() and not any(b"end" in fields for _, fields in entries):
                return None
