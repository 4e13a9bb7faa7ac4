"""Per-thread logs of protocol-v2 events, fed by the runs of the thread.

The v2 protocol is thread-centric: one connection sees every run of a thread, and a
client that reconnects names the last `seq` it saw. So each event gets a `seq` when it
is published, from one counter for the whole server that starts at the current time
in microseconds: seqs only grow, also across restarts, and a cursor from before a
restart never hides newer events. A thread's log holds the events of the runs the
broker still keeps (their lifetime plus `stream_keep_seconds`); a run's events leave
the log when the broker drops the run.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterator

# One published event; `frame` is the complete JSON frame as sent on the wire.
@dataclass(frozen=True, slots=True)
class ProtocolEvent:
    seq: int
    run_id: str
    method: str
    namespace: tuple[str, ...]
    name: str | None  # a custom event's name, for `custom:<name>` subscriptions
    frame: bytes


_counter: Iterator[int] = itertools.count(time.time_ns() // 1000)


def next_seq() -> int:
    return next(_counter)


@dataclass
class ThreadLog:
    """Events of one thread's kept runs in seq order; readers follow it at their own pace."""

    thread_id: str
    events: list[ProtocolEvent] = field(default_factory=list)
    _seqs: list[int] = field(default_factory=list)
    _waiter: asyncio.Future[None] | None = None
    _per_run: dict[str, int] = field(default_factory=dict)  # events each run has in the log

    def append(self, event: ProtocolEvent) -> None:
        self.events.append(event)
        self._seqs.append(event.seq)
        self._per_run[event.run_id] = self._per_run.get(event.run_id, 0) + 1
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def after(self, seq: int) -> list[ProtocolEvent]:
        return self.events[bisect.bisect_right(self._seqs, seq):]

    def last_seq(self) -> int:
        return self._seqs[-1] if self._seqs else 0

    def forget_run(self, run_id: str) -> None:
        count = self._per_run.pop(run_id, 0)
        if not count:
            return
        # Runs leave in about the order they ran, so the run's events are usually the
        # oldest: cutting that prefix costs no scan of every kept run's events.
        events = self.events
        if len(events) >= count and all(e.run_id == run_id for e in itertools.islice(events, count)):
            del events[:count]
            del self._seqs[:count]
            return
        self.events = [e for e in events if e.run_id != run_id]
        self._seqs = [e.seq for e in self.events]

    async def follow(self, since: int = -1) -> AsyncIterator[list[ProtocolEvent]]:
        """Yield batches of events with seq > since, forever (the caller stops reading)."""
        last = since
        while True:
            batch = self.after(last)
            if batch:
                last = batch[-1].seq
                yield batch
                continue
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)
