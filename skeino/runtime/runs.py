"""Runs: creation with multitask strategies, waiting, joining, cancelling, crash recovery."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, AsyncIterator

from skeino import serde
from skeino.auth.custom import Authorizer
from skeino.auth.user import AUTH_CONFIG_KEYS, caller, run_configurable
from skeino.config import Settings
from skeino.errors import Conflict, Invalid, NotFound, NotSupported, SkeinoError, TooManyRequests, Unavailable
from skeino.runtime.assistants import AssistantService, is_uuid
from skeino.runtime.broker import Event, RunStream, StreamBroker
from skeino.runtime.compat import CONFIG_KEY_STRICT_RESUME, STRICT_RESUME
from skeino.runtime.queue import RunQueue
from skeino.runtime.replicas import SharedRunQueue
from skeino.runtime.threads import checkpoint_keys, new_thread_record
from skeino.runtime.webhooks import WebhookSender
from skeino.runtime import paging
from skeino.storage import query
from skeino.storage.base import RUN_FINAL, RUN_INFLIGHT, QueueFull, QueueLimits, Record, Storage, now_iso
from skeino.streaming.modes import normalize_modes

logger = logging.getLogger("skeino.runs")

# What a refused run creation tells the client to wait before trying again.
QUEUE_RETRY_AFTER_SECONDS = 5

BUSY_DETAIL = "Thread is already running a task. Wait for it to finish or choose a different multitask strategy."


def _merge_config(assistant_config: Record, run_config: Record | None) -> Record:
    run_config = run_config or {}
    merged = {**assistant_config, **run_config}
    merged["configurable"] = {**assistant_config.get("configurable", {}), **run_config.get("configurable", {})}
    merged["metadata"] = {**assistant_config.get("metadata", {}), **run_config.get("metadata", {})}
    return merged


def _is_empty_input(value: Any) -> bool:
    """No input, or one that carries nothing (`{}`, `{"messages": []}`): what UIs send beside a command.

    The official server ignores any input given with a command; skeino accepts the empty
    ones UIs send and refuses one that would be ignored.
    """
    if isinstance(value, dict):
        return all(_is_empty_input(v) for v in value.values())
    return value is None or (isinstance(value, (list, str)) and not value)


def _settled_status(thread: Record) -> str:
    """A thread's status once nothing runs on it, from what its last run left."""
    if thread.get("interrupts"):
        return "interrupted"
    if thread.get("error"):
        return "error"
    return "idle"


def _queue_full(full: QueueFull) -> SkeinoError:
    """503 when the server's queue is full (every caller should back off), 429 for one busy thread."""
    headers = {"Retry-After": str(QUEUE_RETRY_AFTER_SECONDS)}
    if full.scope == "thread":
        return TooManyRequests(f"This thread already has {full.limit} queued runs "
                               "(SKEINO_MAX_QUEUED_RUNS_PER_THREAD); retry once some have started", headers=headers)
    return Unavailable(f"The server already has {full.limit} queued runs (SKEINO_MAX_QUEUED_RUNS); retry later",
                       headers=headers)


class RunService:
    def __init__(self, storage: Storage, assistants: AssistantService, broker: StreamBroker,
                 queue: RunQueue | SharedRunQueue, settings: Settings, webhooks: WebhookSender,
                 authz: Authorizer | None = None) -> None:
        self._storage = storage
        self._authz = authz or Authorizer(None)
        self._assistants = assistants
        self._broker = broker
        self._queue = queue
        self._settings = settings
        # 0 means no bound.
        self._limits = QueueLimits(server=settings.max_queued_runs or None,
                                   thread=settings.max_queued_runs_per_thread or None)
        self._webhooks = webhooks
        # Set when the server stops: streams waiting for a run to start, or for the next run
        # of a thread, end instead (no run starts any more).
        self.closing = asyncio.Event()

    # creation -----------------------------------------------------------------------
    async def create(self, thread_id: str | None, body: dict[str, Any], *,
                     protocol: bool = False, answered_at_end: bool = False) -> tuple[Record, RunStream]:
        """Validate, authorize, apply the multitask strategy, persist as pending and queue the run.

        `protocol`: started through the v2 protocol, so it streams every v2 channel.
        `answered_at_end`: the caller tells its client of the run only once the run has
        ended (a `wait`), so the creation need not wait for the disk (Storage.run_create).
        """
        self._refuse_unsupported(body)
        if self.closing.is_set():
            # No run starts any more; a run written now would wait for the next start.
            raise Unavailable("The server is shutting down; retry against the next one",
                              headers={"Retry-After": str(QUEUE_RETRY_AFTER_SECONDS)})
        if body.get("command") is not None and not _is_empty_input(body.get("input")):
            raise Invalid("Cannot specify both 'input' and 'command': send the command with no input, or an empty one")
        assistant = await self._assistants.get_for_run(body["assistant_id"])
        await self._webhooks.check(body.get("webhook"))
        stateless = thread_id is None
        on_completion = body.get("on_completion") or ("delete" if stateless else "keep")
        if stateless:
            thread_id = str(uuid.uuid4())
        elif not is_uuid(thread_id):
            raise NotFound(f"Thread with ID {thread_id} not found")

        strategy = body.get("multitask_strategy") or "enqueue"
        run_id = body.get("run_id") or str(uuid.uuid4())  # a cron names the run of its tick
        graph_id = assistant["graph_id"]
        config = _merge_config(assistant["config"], body.get("config"))
        configurable = config["configurable"]
        # Who the run is for comes from authentication only, never from the request's config.
        for key in AUTH_CONFIG_KEYS:
            configurable.pop(key, None)
        ctx = caller.get()
        if ctx is not None:
            configurable.update(run_configurable(ctx))
        configurable.update(checkpoint_keys(body.get("checkpoint")))
        if body.get("checkpoint_id"):
            configurable["checkpoint_id"] = body["checkpoint_id"]
        if body.get("strict_resume"):
            configurable[CONFIG_KEY_STRICT_RESUME] = True
        durability = body.get("durability")
        if durability is None and body.get("checkpoint_during") is not None:
            durability = "async" if body["checkpoint_during"] else "exit"
        kwargs = {
            "input": body.get("input"),
            "command": body.get("command"),
            "config": config,
            # Without a context the run's configurable stands in for it, as on the official server
            # (never the caller's identity, which comes from authentication only).
            "context": {**(assistant.get("context") or {}),
                        **(body.get("context") or {k: v for k, v in ((body.get("config") or {}).get("configurable")
                                                                     or {}).items() if k not in AUTH_CONFIG_KEYS})},
            "stream_mode": normalize_modes(body.get("stream_mode")),
            "interrupt_before": body.get("interrupt_before"),
            "interrupt_after": body.get("interrupt_after"),
            "webhook": body.get("webhook"),
            "feedback_keys": None,
            "temporary": stateless and on_completion == "delete",
            "subgraphs": bool(body.get("stream_subgraphs")),
            "resumable": bool(body.get("stream_resumable")),
            "durability": durability,
            "on_disconnect": body.get("on_disconnect"),
            "on_completion": on_completion,
            "protocol": protocol,
        }
        # The threads.create_run handler sees the run as the official server shows it, and may change
        # its metadata or kwargs in place; its filter is over the thread's metadata.
        value = {"thread_id": None if stateless else thread_id, "assistant_id": assistant["assistant_id"],
                 "run_id": run_id, "status": "pending", "metadata": dict(body.get("metadata") or {}),
                 "prevent_insert_if_inflight": strategy == "reject", "multitask_strategy": strategy,
                 "if_not_exists": body.get("if_not_exists") or "reject",
                 "after_seconds": body.get("after_seconds") or 0, "kwargs": kwargs}
        access = await self._authz("threads", "create_run", value)
        kwargs = value["kwargs"]
        config = kwargs["config"]
        configurable = config.setdefault("configurable", {})
        # As on the official server: the assistant's metadata (e.g. created_by) under the
        # run's, then the ids; thread_id also reaches every checkpoint's metadata.
        run_metadata = {**assistant["metadata"], **(value["metadata"] or {}),
                        "graph_id": graph_id, "assistant_id": assistant["assistant_id"]}
        config.setdefault("metadata", {}).update({**run_metadata, "thread_id": thread_id})
        configurable.update(run_id=run_id, thread_id=thread_id, graph_id=graph_id, assistant_id=assistant["assistant_id"])

        # A missing thread is made in the run's own transaction when the caller allows it; it
        # carries the run's metadata (so an owner stamped by a handler is the thread's owner too).
        new_thread = None
        if stateless or body.get("if_not_exists") == "create":
            new_thread = new_thread_record(thread_id, {"graph_id": graph_id, "assistant_id": assistant["assistant_id"],
                                                       **(value["metadata"] or {})})
        now = now_iso()
        record = {
            "run_id": run_id, "thread_id": thread_id, "assistant_id": assistant["assistant_id"],
            "created_at": now, "updated_at": now, "status": "pending",
            "metadata": run_metadata, "kwargs": kwargs, "multitask_strategy": strategy,
            "run_at": time.time() + float(body.get("after_seconds") or 0),
        }
        # Open the log before the run is visible to the worker so no subscriber misses an event.
        # (With replicas any of them may execute it; subscribers follow the bus, which keeps
        # every event, and this replica opens its log only if it claims the run.)
        stream = self._broker.open(run_id, thread_id, kwargs["resumable"]) if self._broker.bus is None \
            else RunStream(run_id, thread_id, kwargs["resumable"])
        superseded: list[Record] = []
        try:
            if strategy in ("interrupt", "rollback"):
                # Cancelling the thread's runs and inserting this one is one storage step, so
                # runs arriving together leave exactly one survivor.
                created, superseded = await self._storage.run_create_superseding(
                    record, action=strategy, new_thread=new_thread, limits=self._limits, access=access,
                    flush=not answered_at_end)
            else:
                created = await self._storage.run_create(record, reject_if_busy=strategy == "reject",
                                                         new_thread=new_thread, limits=self._limits, access=access,
                                                         flush=not answered_at_end)
        except LookupError:
            self._broker.drop(run_id)
            raise NotFound(f"Thread with ID {thread_id} not found") from None
        except QueueFull as full:
            self._broker.drop(run_id)
            raise _queue_full(full) from None
        if created is None:
            self._broker.drop(run_id)
            raise Conflict(BUSY_DETAIL)
        await self._stop_superseded(superseded, strategy)
        self._queue.submit(thread_id, created=record)
        return record, stream

    async def _stop_superseded(self, runs: list[Record], action: str) -> None:
        """End the runs a new one replaced: close the logs of pending ones, stop running ones.

        Waits until the running ones have recorded their end, as the old runs are gone
        (rollback) or settled (interrupt) when the new run's creation answers.
        """
        waits = []
        for run in runs:
            if run["status"] == "pending":
                stream = self._broker.get(run["run_id"])
                if stream is not None and not stream.done:
                    await self._broker.finish(stream, "interrupted", None)
                elif stream is None:
                    await self._broker.end_remote(run["run_id"], "interrupted", None)
                continue
            ended = self._queue.request_cancel(run["run_id"], action)
            if ended is not None:
                waits.append(ended)
            else:
                # Executing on another replica (wait for it to stop there), or left over
                # from a crash (record the end).
                await self._cancel(run, wait=isinstance(self._queue, SharedRunQueue), action=action)
        if waits:
            await asyncio.wait(waits)

    @staticmethod
    def _refuse_unsupported(body: dict[str, Any]) -> None:
        for key in ("feedback_keys", "langsmith_tracer"):
            if body.get(key):
                raise NotSupported(f"'{key}' is not supported by this skeino version")
        if body.get("strict_resume") and not STRICT_RESUME:
            raise NotSupported("'strict_resume' needs a newer LangGraph than the one installed")

    # reading ------------------------------------------------------------------------
    async def get(self, thread_id: str, run_id: str, action: str = "read", extra: Record | None = None) -> Record:
        """The run, if the caller's threads `action` handler lets them reach its thread."""
        if not (is_uuid(run_id) and is_uuid(thread_id)):
            raise NotFound(f"Run with ID {run_id} not found")
        access = await self._authz("threads", action, {"thread_id": thread_id, "run_id": run_id, **(extra or {})})
        run = await self._storage.run_get(run_id, thread_id, access=access)
        if run is None:
            raise NotFound(f"Run with ID {run_id} not found")
        return run

    async def list(self, thread_id: str, *, limit: int, offset: int, status: str | None) -> list[Record]:
        return (await self.list_page(thread_id, limit=limit, offset=offset, status=status)).rows

    async def list_page(self, thread_id: str, *, limit: int, offset: int, status: str | None,
                        cursor: str | None = None) -> paging.Page:
        """A page of the thread's runs, newest first, after `cursor` when given (see runtime/paging.py)."""
        access = await self._authz("threads", "read", {"thread_id": thread_id}) if is_uuid(thread_id) else None
        if not is_uuid(thread_id) or await self._storage.thread_get(thread_id, access=access) is None:
            raise NotFound(f"Thread with ID {thread_id} not found")
        return await paging.fetch(
            lambda n, after: self._storage.run_list(thread_id, limit=n, offset=offset, status=status, access=access,
                                                    after=after),
            limit=limit, offset=offset, cursor=cursor, key=query.POS, order="desc")

    async def delete(self, thread_id: str, run_id: str) -> None:
        run = await self.get(thread_id, run_id, "delete")
        if run["status"] not in RUN_FINAL:
            raise Conflict(f"Run {run_id} is {run['status']}; cancel it before deleting it")
        await self._storage.run_delete(run_id)

    # waiting --------------------------------------------------------------------------
    async def wait_for(self, run: Record) -> Any:
        """Block until the run ends; its result (values, `__interrupt__` or `__error__`)."""
        run_id = run["run_id"]
        while True:
            stream = self._broker.get(run_id)
            if stream is not None:
                await stream.wait_done()
                if stream.result is not None:
                    return stream.result
                break
            if self._broker.bus is not None:
                # Until this replica claims the run, if it does: then its end comes from memory.
                opened = self._broker.opened(run_id)
                ended = await self._broker.bus.wait(run_id, lambda: self._ended(run_id), opened)
                if ended is not None and ended[1] is not None:
                    return ended[1]
                if ended is None and opened.is_set() and self._broker.get(run_id) is not None:
                    continue
                break
            if await self._ended(run_id):
                break
            await asyncio.sleep(0.05)
        thread = await self._storage.thread_get(run["thread_id"])
        if thread is None:
            return {}
        if thread.get("error") and thread["status"] == "error":
            return {"__error__": thread["error"]}
        return thread.get("values") or {}

    async def _ended(self, run_id: str) -> bool:
        current = await self._storage.run_get(run_id)
        return current is None or current["status"] in RUN_FINAL

    async def join(self, thread_id: str, run_id: str) -> Any:
        run = await self.get(thread_id, run_id)
        return await self.wait_for(run)

    # cancelling -------------------------------------------------------------------------
    async def cancel(self, thread_id: str, run_id: str, *, wait: bool, action: str) -> None:
        run = await self.get(thread_id, run_id, "update", {"action": action})
        if run["status"] in RUN_FINAL:
            # As on the official server: a finished run is not cancelled (404) and stays as it is.
            raise NotFound(f"Run {run_id} has already finished ({run['status']}); there is nothing to cancel")
        await self._cancel(run, wait=wait, action=action)

    async def _cancel(self, run: Record, *, wait: bool, action: str) -> None:
        run_id = run["run_id"]
        if run["status"] == "pending":
            if action == "rollback":
                cancelled = await self._storage.run_delete(run_id)
            else:
                cancelled = await self._storage.run_transition(run_id, "pending", "interrupted")
            if cancelled:
                await self._settle(run)
                return
            run = await self._storage.run_get(run_id) or run  # it started meanwhile
        if run["status"] == "running":
            task = self._queue.request_cancel(run_id, action)
            if task is None and isinstance(self._queue, SharedRunQueue):
                # Executing on another replica (or about to): it stops the run and records the
                # end; a dead replica's runs end when a survivor takes over its lease.
                await self._queue.cancel_remote(run_id, action)
                if wait:
                    await self._broker.bus.wait(run_id, lambda: self._ended(run_id))
            elif task is None:
                # Not executing in this process (left over from a crash): record the end.
                await self._storage.run_transition(run_id, "running", "interrupted")
                await self._settle(run)
            elif wait:
                await asyncio.wait([task])

    async def _settle(self, run: Record) -> None:
        """Recompute a thread's status after a run was cancelled without executing."""
        thread = await self._storage.thread_get(run["thread_id"])
        if thread is not None:
            await self._storage.run_finish(run["run_id"], run["thread_id"], "interrupted",
                                           {"status": _settled_status(thread)})
        stream = self._broker.get(run["run_id"])
        if stream is not None and not stream.done:
            await self._broker.finish(stream, "interrupted", None)
        elif stream is None:
            await self._broker.end_remote(run["run_id"], "interrupted", None)

    async def cancel_thread_runs(self, thread_id: str, *, action: str) -> None:
        """Stop every pending and running run of a thread and wait until they have ended."""
        for run in await self._storage.runs_inflight(thread_id):
            await self._cancel(run, wait=True, action=action)

    async def cancel_many(self, body: dict[str, Any]) -> None:
        action = body.get("action") or "interrupt"
        access = await self._authz("threads", "update", {"thread_id": body.get("thread_id"), "action": action})
        if body.get("run_ids"):
            runs = await self._storage.runs_by_ids(body["run_ids"], access=access)
            if body.get("thread_id"):
                runs = [r for r in runs if r["thread_id"] == body["thread_id"]]
        elif body.get("thread_id"):
            thread_id = body["thread_id"]
            visible = access is None or (is_uuid(thread_id) and await self._storage.thread_get(thread_id, access=access))
            runs = await self._storage.runs_inflight(thread_id) if visible else []
        elif body.get("status"):
            statuses = ["pending", "running"] if body["status"] == "all" else [body["status"]]
            runs = await self._storage.runs_with_status(statuses, access=access)
        else:
            raise Invalid("give 'run_ids', 'thread_id' or 'status'")
        cancelable = [run for run in runs if run["status"] in RUN_INFLIGHT]
        if not cancelable:
            raise NotFound("No matching runs to cancel: they do not exist, were deleted or have already finished")
        for run in cancelable:
            await self._cancel(run, wait=False, action=action)

    # streams --------------------------------------------------------------------------
    async def events(self, run: Record, after: int) -> AsyncIterator[list[Event]]:
        """The run's events after id `after`: live if it is in memory, else its persisted log."""
        stream = self._broker.get(run["run_id"])
        if stream is not None:
            async for batch in stream.follow(after):
                yield batch
            return
        bus = self._broker.bus
        if bus is not None and (run["status"] in RUN_INFLIGHT or await bus.exists(run["run_id"])):
            # Executing (or to execute) on any replica: its events come through the bus, until
            # this replica claims the run, if it does; then the rest from memory.
            opened = self._broker.opened(run["run_id"])
            async for batch in bus.follow(run["run_id"], after, lambda: self._ended(run["run_id"]), opened):
                after = batch[-1][0]
                yield batch
            stream = self._broker.get(run["run_id"]) if opened.is_set() else None
            if stream is not None:
                async for batch in stream.follow(after):
                    yield batch
            return
        replay = await self._broker.replay(run["run_id"], after)
        if replay:
            yield replay
            return
        if run["status"] in ("pending", "running"):
            # Not in memory yet (e.g. queued before a restart): wait for it to open.
            while self._broker.get(run["run_id"]) is None:
                current = await self._storage.run_get(run["run_id"])
                if current is None or current["status"] in RUN_FINAL or self.closing.is_set():
                    return
                await asyncio.sleep(0.05)
            async for batch in self.events(run, after):
                yield batch

    async def thread_events(self, thread_id: str) -> AsyncIterator[list[Event]]:
        """Follow every run that executes on the thread, one after another, until cancelled.

        Ids are renumbered per connection so they keep increasing across runs, and each
        run's end is marked with a `metadata` event `{"status": "run_done", "run_id"}`,
        as the official server does.
        """
        seen: set[str] = set()
        next_id = 0
        while not self.closing.is_set():
            signal = self._broker.thread_signal(thread_id)
            remote = self._broker.bus is not None
            live = [r for r in await self._storage.runs_inflight(thread_id)
                    if r["run_id"] not in seen and (remote or self._broker.get(r["run_id"]) is not None)
                    and r["status"] == "running"]
            if not live:
                if remote:  # a run may start on another replica: look again shortly
                    try:
                        await asyncio.wait_for(signal.wait(), 0.25)
                    except TimeoutError:
                        pass
                else:
                    closing = asyncio.ensure_future(self.closing.wait())
                    started = asyncio.ensure_future(signal.wait())
                    await asyncio.wait([closing, started], return_when=asyncio.FIRST_COMPLETED)
                    closing.cancel()
                    started.cancel()
                continue
            run = live[0]
            seen.add(run["run_id"])
            async for batch in self.events(run, -1):
                renumbered = [(next_id + i, name, data) for i, (_, name, data) in enumerate(batch)]
                next_id += len(batch)
                yield renumbered
            yield [(next_id, "metadata", serde.dumps({"status": "run_done", "run_id": run["run_id"]}))]
            next_id += 1

    def cancel_on_disconnect(self, run: Record) -> None:
        """Client went away from a run created with on_disconnect=cancel."""
        stream = self._broker.get(run["run_id"])
        if stream is not None and stream.done:
            return
        asyncio.get_running_loop().create_task(self._cancel_quietly(run))

    async def _cancel_quietly(self, run: Record) -> None:
        try:
            current = await self._storage.run_get(run["run_id"])
            if current is not None:
                await self._cancel(current, wait=True, action="interrupt")
        except Exception:
            logger.exception("cancelling run %s after disconnect failed", run["run_id"])

    # crash recovery ---------------------------------------------------------------------
    async def recover(self) -> None:
        """Settle what a previous process left behind, then restart the queue.

        With replicas the runs found running belong to the others, which may be alive:
        their leases say, and the shared queue recovers a run once its lease runs out.
        """
        if isinstance(self._queue, SharedRunQueue):
            self._queue.recover_run = self.recover_run
            return
        for run in await self._storage.runs_with_status(["running"]):
            await self.recover_run(run)
        for thread in await self._storage.thread_search(ids=None, metadata=None, values=None, status="busy",
                                                        limit=1_000_000, offset=0, sort_by="created_at", sort_order="asc"):
            if not await self._storage.runs_inflight(thread["thread_id"]):
                await self._storage.thread_update(thread["thread_id"], {"status": _settled_status(thread)})
        for thread_id in {r["thread_id"] for r in await self._storage.runs_with_status(["pending"])}:
            self._queue.submit(thread_id)

    async def recover_run(self, run: Record, fence: int | None = None) -> str:
        """Settle one run whose process stopped while executing it; what became of it.

        `fence`: the lease epoch this replica took the run over with ("lost" if it lost that too).
        """
        if run["kwargs"].get("temporary"):
            # A stateless run's checkpoints lived in memory: nothing to resume or keep.
            await self._storage.thread_delete(run["thread_id"])
            return "deleted"
        if self._settings.recovery == "retry":
            # Same run id, same input: LangGraph continues a run from the last checkpoint
            # that run wrote and applies the input only when it wrote none (e.g. with
            # `exit` durability). A command is dropped instead: a resume value applied
            # again after the run got past its interrupt would answer a later one.
            kwargs = {**run["kwargs"], "command": None, "attempt": run["kwargs"].get("attempt", 1) + 1}
            if await self._storage.run_update(run["run_id"], {"status": "pending", "kwargs": kwargs},
                                              fence=fence) is None:
                return "lost"
            return "pending"
        logger.warning("run %s was running when its server stopped; marking it error", run["run_id"])
        if not await self._storage.run_finish(run["run_id"], run["thread_id"], "error", {
            "status": "error",
            "error": {"error": "ServerRestart",
                      "message": "the server stopped while this run was executing; it was not resumed"},
        }, fence=fence):
            return "lost"
        return "error"
