"""Per-run append-only event logs that any number of subscribers read at their own pace.

Policy: a run's events are kept in memory for the run's lifetime and
`stream_keep_seconds` after it ends, so late joiners and reconnecting clients can
replay them; the run only appends and never waits for a reader, so a slow subscriber
can never block it. Runs created with `stream_resumable=true` also write their log to
storage, which serves replays after the in-memory copy is gone (also after a restart):
by group commit (one write at a time per run, carrying every event published while the
previous one was under way), and readers get an event only once it is stored, so a
client never saw an event a crash could lose.
"""

from __future__ import annotations

import asyncio
import weakref
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from skeino import serde
from skeino.runtime.threadlog import ProtocolEvent, ThreadLog

Event = tuple[int, str, bytes]  # (id, event name, JSON data)

logger = logging.getLogger("skeino.broker")

# Shortest gap between two writes to one subscriber while events pour in.
_COALESCE = 0.002


@dataclass
class RunStream:
    run_id: str
    thread_id: str
    resumable: bool
    events: list[Event] = field(default_factory=list)
    done: bool = False
    result: Any = None
    status: str | None = None
    flushed: int = 0
    # The thread's protocol-v2 log, which this run's executor also feeds.
    protocol: ThreadLog | None = None
    # With replicas: the run's v2 events not yet sent to the others.
    protocol_outbox: list[ProtocolEvent] | None = None
    mirrored: int = 0  # events already sent to the other replicas (see bus.RedisBus)
    # With replicas: the run's lease (runtime.lease.Lease). Events wait while this replica
    # cannot trust it, so a replica that lost the run sends the others nothing more.
    lease: Any = None
    # Called after each append of a resumable run (the broker schedules its group commit).
    on_publish: Callable[[], None] | None = None
    # Resumable runs: how many events are stored. Readers see no further while the run is
    # live, so every event a client got can be replayed after a crash.
    durable: int = 0
    persist_failed: bool = False  # then readers stop waiting for storage
    # Created only while a subscriber waits, so a publish with nobody waiting is cheap.
    _waiter: asyncio.Future[None] | None = None
    _finished: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, event: str, data: Any) -> int:
        """Append one event (data is encoded once here) and wake the readers."""
        seq = len(self.events)
        if not isinstance(data, bytes):
            # orjson hands back its whole working buffer (8 KiB for a 1 KiB token event);
            # the log keeps events for a while, so it keeps a right-sized copy.
            data = bytes(memoryview(serde.dumps(data)))
        self.events.append((seq, event, data))
        self._wake()
        if self.on_publish is not None:
            self.on_publish()
        return seq

    def readable(self) -> int:
        """How many events readers may have: all of them, except those of a live resumable run not stored yet."""
        if self.resumable and not self.done and not self.persist_failed:
            return self.durable
        return len(self.events)

    def stored(self, count: int) -> None:
        """The first `count` events are in storage: hand them to the readers."""
        self.durable = max(self.durable, count)
        self._wake()

    def finish(self, status: str, result: Any) -> None:
        self.done = True
        self.status = status
        self.result = result
        self._wake()
        self._finished.set()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_done(self) -> None:
        await self._finished.wait()

    async def follow(self, after: int = -1) -> AsyncIterator[list[Event]]:
        """Yield batches of events with id > after until the run ends.

        An event after a quiet spell goes out at once; during a burst (token streaming)
        batches are at least `_COALESCE` seconds apart, so one network write carries many
        events instead of one each.
        """
        loop = asyncio.get_running_loop()
        i = max(after + 1, 0)
        last = -_COALESCE
        while True:
            if i < self.readable():
                pause = last + _COALESCE - loop.time()
                if pause > 0 and not self.done:
                    await asyncio.sleep(pause)
                batch = self.events[i:self.readable()]
                i += len(batch)
                last = loop.time()
                yield batch
                continue
            if self.done:
                return
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)


class StreamBroker:
    """Owns every live run's log; knows which run a thread is executing now."""

    def __init__(self, storage: Any, keep_seconds: float, bus: Any = None) -> None:
        self._storage = storage
        # With replicas, every event also goes to the bus, where the others follow it.
        self.bus = bus
        self._keep_seconds = keep_seconds
        self._streams: dict[str, RunStream] = {}
        self._thread_runs: dict[str, asyncio.Event] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        # Group commits of resumable runs: the task storing a run's events, while one does.
        self._flush_tasks: dict[str, asyncio.Task[None]] = {}
        # The same for the bus: the task sending a run's events to the other replicas, while one does.
        self._send_tasks: dict[str, asyncio.Task[None]] = {}
        # Held by the runs that feed a log and the connections that read it.
        self._thread_logs: weakref.WeakValueDictionary[str, ThreadLog] = weakref.WeakValueDictionary()
        # Set when a run's stream opens here; held by the readers of the bus waiting for it.
        self._opening: weakref.WeakValueDictionary[str, asyncio.Event] = weakref.WeakValueDictionary()

    def open(self, run_id: str, thread_id: str, resumable: bool) -> RunStream:
        stream = RunStream(run_id, thread_id, resumable, protocol=self.thread_log(thread_id),
                           protocol_outbox=[] if self.bus is not None else None)
        if resumable:
            stream.on_publish = lambda: self._schedule_persist(stream)
        self._streams[run_id] = stream
        opening = self._opening.pop(run_id, None)
        if opening is not None:
            opening.set()
        return stream

    def opened(self, run_id: str) -> asyncio.Event:
        """An event set once the run's stream is open here.

        A reader following a run through the bus stops there and reads memory instead: this
        replica executes the run, and reading the bus at every flush cost a transaction each.
        """
        event = self._opening.get(run_id)
        if event is None:
            event = self._opening[run_id] = asyncio.Event()
        if run_id in self._streams:
            event.set()
        return event

    def get(self, run_id: str) -> RunStream | None:
        return self._streams.get(run_id)

    def thread_log(self, thread_id: str) -> ThreadLog:
        """The thread's protocol-v2 log (created on first use)."""
        log = self._thread_logs.get(thread_id)
        if log is None:
            log = self._thread_logs[thread_id] = ThreadLog(thread_id)
        return log

    def protocol_events(self, thread_id: str, since: int) -> AsyncIterator[list[ProtocolEvent]]:
        """The thread's v2 events after `since`, then live: from every replica when there are several."""
        if self.bus is not None:
            return self.bus.follow_thread(thread_id, since)
        return self.thread_log(thread_id).follow(since)

    async def protocol_kept(self, thread_id: str) -> list[ProtocolEvent]:
        """The thread's v2 events kept now (all replicas')."""
        if self.bus is not None:
            return await self.bus.thread_events(thread_id)
        return list(self.thread_log(thread_id).events)

    def thread_runs(self, thread_id: str) -> list[RunStream]:
        """The thread's runs still kept in memory, oldest first."""
        return [s for s in self._streams.values() if s.thread_id == thread_id]

    def thread_signal(self, thread_id: str) -> asyncio.Event:
        """An event set whenever a run starts on the thread (for thread-level followers)."""
        signal = self._thread_runs.get(thread_id)
        if signal is None:
            signal = self._thread_runs[thread_id] = asyncio.Event()
        return signal

    def run_started(self, thread_id: str) -> None:
        signal = self._thread_runs.pop(thread_id, None)
        if signal is not None:
            signal.set()

    async def flush(self, stream: RunStream, force: bool = False) -> None:
        """Send new events to the other replicas, and store those of a resumable run.

        Both by group commit (each starts its write now, or right after the one under way,
        which carries everything published meanwhile); with `force`, both are done on return.
        """
        if self.bus is not None:
            if force:
                await self._send_rest(stream)
            elif stream.run_id not in self._send_tasks:
                self._send_tasks[stream.run_id] = asyncio.get_running_loop().create_task(
                    self._send_in_background(stream), name=f"skeino-send-{stream.run_id}")
        if force:
            await self._store_rest(stream)
        # (else the publish already started or queued its group commit: see _schedule_persist)

    async def _send_in_background(self, stream: RunStream) -> None:
        try:
            while await self._send(stream):
                pass  # events published meanwhile go next
        finally:
            self._send_tasks.pop(stream.run_id, None)

    async def _send_rest(self, stream: RunStream, end: tuple[str, Any] | None = None) -> None:
        """Send what is not sent yet (and the end), after the write under way."""
        task = self._send_tasks.get(stream.run_id)
        if task is not None:
            await asyncio.wait([task])
        await self._send(stream, end)

    async def _store_rest(self, stream: RunStream) -> None:
        """Store a resumable run's events not stored yet, after any write under way."""
        if not stream.resumable:
            return
        task = self._flush_tasks.get(stream.run_id)
        if task is not None:
            await asyncio.wait([task])
        try:
            await self._persist_pending(stream)
        except Exception as exc:  # the run's end is still recorded; only its replay is short
            logger.warning("run %s: persisting events failed: %s", stream.run_id, exc)

    def _schedule_persist(self, stream: RunStream) -> None:
        """Group commit: store new events now, or right after the write under way, which batches them."""
        if stream.run_id in self._flush_tasks or stream.on_publish is None:
            return
        self._flush_tasks[stream.run_id] = asyncio.get_running_loop().create_task(
            self._persist_in_background(stream), name=f"skeino-persist-{stream.run_id}")

    async def _persist_in_background(self, stream: RunStream) -> None:
        try:
            while len(stream.events) > stream.flushed and not stream.persist_failed:
                await self._persist_pending(stream)  # events published meanwhile go next
        except Exception as exc:
            # Readers stop waiting for storage; the events stay in memory and the run's
            # end tries to store them again.
            logger.warning("run %s: persisting events failed: %s", stream.run_id, exc)
            stream.persist_failed = True
            stream.stored(0)
        finally:
            self._flush_tasks.pop(stream.run_id, None)

    async def _persist_pending(self, stream: RunStream) -> None:
        """Append the events not stored yet; one writer at a time per run."""
        start = stream.flushed
        pending = stream.events[start:]
        if not pending:
            return
        stream.flushed = start + len(pending)
        try:
            await self._storage.stream_append(stream.run_id, pending)
        except BaseException:
            stream.flushed = start
            raise
        stream.stored(stream.flushed)

    async def _send(self, stream: RunStream, end: tuple[str, Any] | None = None) -> bool:
        """Send the other replicas the run's new events and v2 events (and its end) in one write; whether it wrote."""
        events: list[Event] = []
        protocol: list[ProtocolEvent] = []
        # Until the next renewal (or the run's recorded end) says the run is still ours, its
        # events wait: a replica that lost the run sends the others nothing more.
        if stream.lease is None or stream.lease.trusted():
            events = stream.events[stream.mirrored:]
            stream.mirrored += len(events)
            if stream.protocol_outbox:
                protocol, stream.protocol_outbox[:] = list(stream.protocol_outbox), []
        if not (events or protocol or end):
            return False
        try:
            await self.bus.send(stream.run_id, events, stream.thread_id, protocol, end)
        except Exception as exc:  # the run goes on; followers elsewhere miss these events
            if end is not None or stream.lease is None or stream.lease.trusted():  # (else the run is no longer ours)
                logger.warning("run %s: sending %s to other replicas failed: %s", stream.run_id,
                               "its end" if end is not None else "events", exc)
        return True

    async def finish(self, stream: RunStream, status: str, result: Any) -> None:
        """Mark the run's log complete, persist it if resumable, tell the other replicas, expire it later."""
        stream.on_publish = None  # no more group commits: the forced flush stores the rest
        await self._store_rest(stream)  # every event is stored before the run ends
        # Readers here have every event: the run's last events and its end reach the other
        # replicas in one write after them (followers there wait for the end).
        stream.finish(status, result)
        if self.bus is not None:
            await self._send_rest(stream, (status, result))
        loop = asyncio.get_running_loop()
        self._expiry[stream.run_id] = loop.call_later(self._keep_seconds, self.drop, stream.run_id)

    def abandon(self, stream: RunStream) -> None:
        """End a run's log here only: another replica took the run over and speaks for it.

        Readers here stop (and look the run up again); nothing is stored or sent.
        """
        stream.on_publish = None
        stream.finish("lost", None)
        self.drop(stream.run_id)

    async def end_remote(self, run_id: str, status: str, result: Any) -> None:
        """Tell followers on other replicas the run has ended."""
        if self.bus is None:
            return
        try:
            await self.bus.end(run_id, status, result)
        except Exception as exc:  # followers fall back to the database once the run is final
            logger.warning("run %s: announcing its end to other replicas failed: %s", run_id, exc)

    def drop(self, run_id: str) -> None:
        stream = self._streams.pop(run_id, None)
        if stream is not None and stream.protocol is not None:
            stream.protocol.forget_run(run_id)
        handle = self._expiry.pop(run_id, None)
        if handle is not None:
            handle.cancel()

    async def replay(self, run_id: str, after: int) -> list[Event]:
        """Persisted events of a run that is no longer in memory."""
        return await self._storage.stream_read(run_id, after)

    def close(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        for task in [*self._flush_tasks.values(), *self._send_tasks.values()]:
            task.cancel()
