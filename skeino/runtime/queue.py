"""The run queue: runs of one thread execute one at a time in creation order; threads run in parallel."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from skeino.runtime.broker import StreamBroker
from skeino.runtime.executor import RunExecutor
from skeino.storage.base import Record, Storage

logger = logging.getLogger("skeino.queue")

# How often a worker re-checks a delayed (after_seconds) run, so a cancel is noticed.
_DELAY_POLL = 0.25


async def drain(running: list[asyncio.Task[Any]], grace: float) -> None:
    """Give running runs `grace` seconds to end, then interrupt the rest (shared by both queues)."""
    if not running:
        return
    _, still = await asyncio.wait(running, timeout=grace)
    for task in still:
        task.cancel()
    if still:
        await asyncio.wait(still, timeout=5)


class RunQueue:
    """Owns one worker task per busy thread and the task of every executing run."""

    def __init__(self, storage: Storage, executor: RunExecutor, broker: StreamBroker, max_concurrent: int) -> None:
        self._storage = storage
        self._executor = executor
        self._broker = broker
        self._slots = asyncio.Semaphore(max_concurrent)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._kicked: set[str] = set()
        self._running: dict[str, asyncio.Task[str]] = {}
        self._actions: dict[str, str] = {}
        self._claiming: dict[str, str | None] = {}  # run id -> cancel action asked during the claim
        self._ended: dict[str, asyncio.Future[None]] = {}  # set once the run's execution is over
        self._closing = False

    def submit(self, thread_id: str, created: Record | None = None) -> None:
        """Make sure a worker is draining the thread's pending runs.

        `created` is a run just written as pending. A thread with pending runs always has
        a worker in this process, so when it has none the new run is the only one queued
        and the worker can take it without asking storage first.
        """
        if self._closing:
            return
        if thread_id not in self._workers:
            first = created if created is not None and (created.get("run_at") or 0) <= time.time() else None
            self._workers[thread_id] = asyncio.create_task(self._work(thread_id, first),
                                                           name=f"skeino-thread-{thread_id}")
        else:
            self._kicked.add(thread_id)

    async def _work(self, thread_id: str, first: Record | None = None) -> None:
        try:
            while not self._closing:
                # `first` was the thread's only pending run when this worker started; any run
                # queued since came through submit() and left a kick. So when there is none
                # after it, nothing is pending and storage need not be asked.
                alone = first is not None
                if first is None:
                    self._kicked.discard(thread_id)
                run, first = first or await self._storage.run_next_pending(thread_id), None
                if run is None:
                    if thread_id in self._kicked:
                        continue
                    return
                delay = (run.get("run_at") or 0) - time.time()
                if delay > 0:
                    await asyncio.sleep(min(delay, _DELAY_POLL))
                    continue
                await self._execute(run)
                if alone and thread_id not in self._kicked:
                    return
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("worker for thread %s failed", thread_id)
        finally:
            self._workers.pop(thread_id, None)
            # A submission that raced with the worker's exit must not be lost.
            if thread_id in self._kicked and not self._closing:
                self.submit(thread_id)

    async def _execute(self, run: Record) -> None:
        run_id = run["run_id"]
        async with self._slots:
            conf = run["kwargs"]["config"]["configurable"]
            # While the claim is in flight storage may already say `running`; a cancel
            # arriving then is remembered here and applied once the task exists.
            self._claiming[run_id] = None
            ended = self._ended[run_id] = asyncio.get_running_loop().create_future()
            try:
                claimed = await self._storage.run_start(
                    run_id, run["thread_id"], {"graph_id": conf["graph_id"], "assistant_id": conf["assistant_id"]}
                )
                action = self._claiming.pop(run_id, None)
                if not claimed:
                    return  # cancelled while pending
                stream = self._broker.get(run_id) or self._broker.open(run_id, run["thread_id"], bool(run["kwargs"].get("resumable")))
                task = asyncio.create_task(
                    self._executor.execute(run, stream, lambda: self._actions.get(run_id, "interrupt")),
                    name=f"skeino-run-{run_id}",
                )
                self._running[run_id] = task
                if action is not None:
                    self._cancel_task(run_id, task, action)
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    # The worker itself is being stopped (shutdown): stop the run too and
                    # let it record its status before we go.
                    task.cancel()
                    await asyncio.wait([task])
                    raise
                finally:
                    self._running.pop(run_id, None)
                    self._actions.pop(run_id, None)
            finally:
                self._claiming.pop(run_id, None)
                self._ended.pop(run_id, None)
                ended.set_result(None)

    def _cancel_task(self, run_id: str, task: asyncio.Task[str], action: str) -> None:
        first = run_id not in self._actions
        self._actions[run_id] = action  # the executor reads it once the run has stopped
        if first:
            # Once only: a second cancel would land in the executor's bookkeeping of the
            # first and leave the run unrecorded. And on the next loop turn, after the
            # task's first step: a task cancelled before it starts never enters the executor.
            asyncio.get_running_loop().call_soon(task.cancel)

    async def cancel_running(self, run_id: str, action: str) -> bool:
        """Cancel an executing run and wait until it has recorded its end."""
        ended = self.request_cancel(run_id, action)
        if ended is None:
            return False
        await asyncio.wait([ended])
        return True

    def request_cancel(self, run_id: str, action: str) -> asyncio.Future[Any] | None:
        """Cancel without waiting; returns what to await for the run's end, None if it is not executing here."""
        task = self._running.get(run_id)
        if task is not None:
            self._cancel_task(run_id, task, action)
            return task
        if run_id in self._claiming:
            self._claiming[run_id] = action
            return self._ended[run_id]
        return None

    async def shutdown(self, grace: float) -> None:
        """Stop taking runs; give running ones `grace` seconds, then interrupt them."""
        self._closing = True
        await drain(list(self._running.values()), grace)
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers, timeout=5)
