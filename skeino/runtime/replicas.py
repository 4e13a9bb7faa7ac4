"""The run queue shared by replicas on one database: claims, leases, and recovery of a dead replica's runs.

Every replica claims runs from the database (Storage.runs_claim) whenever it has free
slots and something may be waiting: when a run is created here, when one ends here, when
another replica says so on the bus, and every `_POLL` seconds regardless (delayed runs,
lost messages). A claimed run is leased to this replica, which renews the lease every
lease/3 seconds while it executes. A replica that dies stops renewing; within
lease + lease/3 seconds a survivor's sweep takes the run over and recovers it as a
restart would (SKEINO_RECOVERY: fail it, or run it again from its last checkpoint).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Awaitable, Callable

from skeino.runtime.broker import StreamBroker
from skeino.runtime.bus import RedisBus
from skeino.runtime.pgbus import PostgresBus
from skeino.runtime.executor import RunExecutor
from skeino.runtime.lease import Lease
from skeino.runtime.queue import drain
from skeino.storage.base import Record, Storage

logger = logging.getLogger("skeino.queue")

_POLL = 1.0  # claim at least this often even if nobody said runs are waiting
_CLAIM_BATCH = 32


class SharedRunQueue:
    """The RunQueue interface (submit, request_cancel, cancel_running, shutdown) over leases."""

    def __init__(self, storage: Storage, executor: RunExecutor, broker: StreamBroker, bus: RedisBus | PostgresBus,
                 max_concurrent: int, lease_seconds: float, replica_id: str | None) -> None:
        self._storage = storage
        self._executor = executor
        self._broker = broker
        self._bus = bus
        self._max = max_concurrent
        self._lease = lease_seconds
        self.replica_id = replica_id or f"replica-{uuid.uuid4().hex[:12]}"
        self._running: dict[str, asyncio.Task[str]] = {}
        self._leases: dict[str, Lease] = {}
        self._actions: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._helpers: set[asyncio.Task[None]] = set()  # trackers and wake-ups, awaited at shutdown
        self._closing = False
        # Called for each run whose replica died, once this replica holds its lease (with the
        # lease epoch that fences the recovery's writes).
        self.recover_run: Callable[[Record, int], Awaitable[str]] = self._no_recovery
        bus.on_wake = self._wake.set
        bus.on_cancel = self._cancel_message

    @staticmethod
    async def _no_recovery(run: Record, fence: int) -> str:
        return "running"

    async def start(self) -> None:
        # Runs still leased to this id were left by this replica's previous life (a crash):
        # recover them now rather than once their leases run out.
        if await self._storage.runs_expire_leases(self.replica_id):
            await self._sweep()
        for name, loop in (("claim", self._claim_loop), ("lease", self._renew_loop), ("sweep", self._sweep_loop)):
            self._tasks.append(asyncio.create_task(loop(), name=f"skeino-queue-{name}"))

    # submitting -----------------------------------------------------------------------
    def submit(self, thread_id: str, created: Record | None = None) -> None:
        """A run was written as pending: claim it here if there is room, and tell the others."""
        if self._closing:
            return
        self._wake.set()
        self._spawn(self._announce())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def _announce(self) -> None:
        try:
            await self._bus.wake()
        except Exception as exc:  # the others still find the run on their next poll
            logger.warning("waking other replicas failed: %s", exc)

    async def _claim_loop(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), _POLL)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while not self._closing and len(self._running) < self._max:
                    room = min(self._max - len(self._running), _CLAIM_BATCH)
                    sent = time.monotonic()
                    claimed = await self._storage.runs_claim(self.replica_id, self._lease, room)
                    for run in claimed:
                        self._start(run, sent)
                    if len(claimed) < room:
                        break
            except Exception:
                logger.exception("claiming runs failed; retrying")

    def _start(self, run: Record, claimed_at: float) -> None:
        run_id = run["run_id"]
        lease = self._leases[run_id] = Lease(run_id, run.pop("lease_epoch"), self._lease, claimed_at)
        stream = self._broker.get(run_id) or self._broker.open(run_id, run["thread_id"],
                                                                bool(run["kwargs"].get("resumable")))
        stream.lease = lease
        task = asyncio.create_task(self._executor.execute(run, stream, lambda: self._actions.get(run_id, "interrupt"),
                                                          lease), name=f"skeino-run-{run_id}")
        self._running[run_id] = task
        self._spawn(self._track(run_id, task))

    async def _track(self, run_id: str, task: asyncio.Task[str]) -> None:
        try:
            # A cancel sent before this replica claimed the run waits in a key; by the time
            # it is read the run has started, and stops the way any cancelled run does.
            action = await self._bus.cancel_requested(run_id)
            if action is not None:
                self.request_cancel(run_id, action)
        except Exception as exc:
            logger.warning("run %s: reading its cancel signal failed: %s", run_id, exc)
        await asyncio.wait([task])
        self._running.pop(run_id, None)
        self._actions.pop(run_id, None)
        self._leases.pop(run_id, None)
        self._wake.set()  # the thread's next run may be claimable now
        if not self._closing:
            await self._announce()

    # leases ---------------------------------------------------------------------------
    async def _renew_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._lease / 3)
            asked = list(self._running)
            sent = time.monotonic()
            try:
                held = set(await self._storage.runs_renew(self.replica_id, self._lease, asked))
            except Exception:
                logger.exception("renewing run leases failed")
                continue
            for run_id in asked:
                lease = self._leases.get(run_id)
                if lease is None or lease.settled:
                    continue  # ended meanwhile
                if run_id in held:
                    lease.renewed(sent)
                    continue
                # Taken over (this replica looked dead): stop it; its writes are refused anyway.
                lease.lost = True
                task = self._running.get(run_id)
                if task is not None and lease.in_graph:
                    self._actions[run_id] = "lost"
                    task.cancel()

    async def _sweep_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._sweep()
            except Exception:
                logger.exception("recovering runs of stopped replicas failed")

    async def _sweep(self) -> None:
        for run in await self._storage.runs_lease_expired():
            if run["run_id"] in self._running:
                continue
            epoch = await self._storage.run_take_over(run["run_id"], self.replica_id, self._lease)
            if epoch is not None:
                logger.warning("run %s: its replica stopped renewing the lease; recovering it", run["run_id"])
                outcome = await self.recover_run(run, epoch)
                if outcome == "pending":
                    await self._bus.reset(run["run_id"])  # its next attempt streams afresh
                elif outcome != "lost":
                    await self._broker.end_remote(run["run_id"], "error", None)
                self._wake.set()

    # cancelling -----------------------------------------------------------------------
    def _cancel_message(self, run_id: str, action: str) -> None:
        self.request_cancel(run_id, action)

    def request_cancel(self, run_id: str, action: str) -> asyncio.Task[str] | None:
        """Cancel a run executing here; None if it is not (then ask the others: `cancel_remote`)."""
        task = self._running.get(run_id)
        if task is not None and run_id not in self._actions:
            self._actions[run_id] = action  # the executor reads it once the run has stopped
            self._spawn(self._deliver_cancel(run_id, task))
        return task

    async def _deliver_cancel(self, run_id: str, task: asyncio.Task[str]) -> None:
        """Cancel a run's task while its graph executes, until it stops.

        Only then: a task cancelled before it starts never enters the executor (its run would
        stay running until its lease ran out), and a cancel landing in the executor's
        bookkeeping of the run's end would leave it unrecorded. Again until it stops: a
        cancel that reaches the graph while it opens a database connection can be absorbed.
        """
        lease = self._leases.get(run_id)
        while not task.done() and lease is not None and lease.in_graph is not False:
            if lease.in_graph:
                task.cancel()
            await asyncio.wait([task], timeout=0.2 if lease.in_graph else 0.01)

    async def cancel_remote(self, run_id: str, action: str) -> None:
        await self._bus.cancel(run_id, action)

    async def cancel_running(self, run_id: str, action: str) -> bool:
        task = self.request_cancel(run_id, action)
        if task is None:
            return False
        await asyncio.wait([task])
        return True

    async def shutdown(self, grace: float) -> None:
        """Stop claiming; give running runs `grace` seconds, then interrupt them."""
        self._closing = True
        self._wake.set()
        await drain(list(self._running.values()), grace)
        for task in [*self._tasks, *self._helpers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._helpers, return_exceptions=True)
