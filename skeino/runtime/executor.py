"""Execute one run: drive the graph, publish its events, record how it ended."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
import typing
import uuid
from typing import Any, AsyncIterator, Callable

from langgraph.types import Command, Send
from langgraph.version import __version__ as LANGGRAPH_VERSION

from skeino import serde
from skeino import logs
from skeino.auth.user import caller, caller_from_run
from skeino.graphs import GraphRegistry
from skeino.runtime.broker import RunStream, StreamBroker
from skeino.runtime.compat import is_unknown_interrupt
from skeino.runtime.lease import Lease
from skeino.runtime.metrics import Metrics
from skeino.runtime.state import interrupt_dict, thread_interrupts
from skeino.storage.base import CHECKPOINT_FLUSH, LEASE_FENCE, LeaseLost, Record, Storage, now_iso
from skeino.streaming.modes import EVENTS, StreamMapper
from skeino.streaming.protocol import FULL_MODES, ProtocolMapper

logger = logging.getLogger("skeino.runs")

# Called once each executed run has ended: (run, final status, result, started_at).
RunEndHook = Callable[[Record, str, Any, str], None]


def _goto(value: Any) -> Any:
    if isinstance(value, dict) and "node" in value:
        return Send(value["node"], value.get("input"))
    if isinstance(value, list):
        return [_goto(v) for v in value]
    return value


def graph_input(kwargs: Record) -> Any:
    """The first argument to astream: the run's input, or a Command built from `command`."""
    command = kwargs.get("command")
    if command:
        return Command(
            resume=command.get("resume"),
            update=command.get("update"),
            goto=_goto(command.get("goto")) if command.get("goto") is not None else (),
        )
    return kwargs.get("input")


@functools.lru_cache(maxsize=256)
def _context_fields(schema: type) -> frozenset[str] | None:
    """The field names of a context schema (dataclass, pydantic model or TypedDict); None if unknown."""
    if dataclasses.is_dataclass(schema):
        return frozenset(f.name for f in dataclasses.fields(schema))
    fields = getattr(schema, "model_fields", None)
    if isinstance(fields, dict):
        return frozenset(fields)
    try:
        return frozenset(typing.get_type_hints(schema))
    except Exception:
        return None


def run_context(graph: Any, context: Record | None) -> Record:
    """The context a run hands its graph, as the official server builds it.

    Always a dict, so LangGraph builds a dataclass or pydantic context from its defaults
    when the caller sent none; keys the graph's context schema does not name are dropped
    (they would make that constructor fail), as the official server drops them.
    """
    context = dict(context or {})
    schema = getattr(graph, "context_schema", None)
    fields = _context_fields(schema) if isinstance(schema, type) else None
    if fields is None:
        return context
    return {k: v for k, v in context.items() if k in fields}


def _lease_lost(exc: BaseException | None) -> bool:
    """Whether a failure came from a write the run's lease fence refused."""
    while exc is not None:
        if isinstance(exc, LeaseLost):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def error_payload(exc: BaseException) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": str(exc)}


class RunExecutor:
    """Runs graphs for the queue; one call to `execute` per run."""

    def __init__(self, storage: Storage, registry: GraphRegistry, broker: StreamBroker, timeout: float | None,
                 metrics: Metrics | None = None) -> None:
        self._storage = storage
        self._registry = registry
        self._broker = broker
        self._timeout = timeout
        self._metrics = metrics
        self.on_run_end: list[RunEndHook] = []

    async def execute(self, run: Record, stream: RunStream, cancel_action: Callable[[], str],
                      lease: Lease | None = None) -> str:
        """Run to the end; never raises. Returns the run's final status.

        With a `lease` (the shared queue's), every write of the run's outcome is fenced by
        it; a run whose lease another replica took over stops, records nothing and
        returns "lost".
        """
        run_id, thread_id = run["run_id"], run["thread_id"]
        started_at = now_iso()
        kwargs = run["kwargs"]
        config = dict(kwargs["config"])
        config["run_id"] = uuid.UUID(run_id)
        run_caller = caller_from_run(config["configurable"])
        if run_caller is not None:
            # Graphs read the user as an object (user.identity, user["k"]), and LangGraph hands the same
            # object to the runtime (runtime.server_info.user), as on the official server.
            config["configurable"] = {**config["configurable"], "langgraph_auth_user": run_caller.user}
        # The run acts for its own caller, never for whichever request started this worker task.
        caller_token = caller.set(run_caller)
        fence_token = LEASE_FENCE.set((run_id, lease.epoch) if lease is not None else None)
        # Set for this task's context only (the run's own task), so it needs no reset.
        CHECKPOINT_FLUSH.set(kwargs.get("durability") not in (None, "async"))
        graph_id = config["configurable"]["graph_id"]
        modes = kwargs["stream_mode"]
        subgraphs = bool(kwargs.get("subgraphs"))
        mapper = StreamMapper(modes, subgraphs)
        # Every run feeds its thread's v2 log; one started through the v2 protocol asks
        # LangGraph for every channel and for subgraphs, the others for what v1 asked.
        protocol = (ProtocolMapper(stream.protocol, run_id, graph_id, stream.protocol_outbox)
                    if stream.protocol is not None else None)
        full = bool(kwargs.get("protocol"))
        last_values: Any = None
        interrupts: list[Any] = []
        stopped_at_interrupt = False
        failure: BaseException | None = None
        graph = None
        started = time.perf_counter()
        logs.run_id.set(run_id)  # this task's log records name the run
        if self._metrics is not None:
            self._metrics.run_started(run.get("run_at") or 0.0, run.get("created_at"))

        stream.publish("metadata", {"run_id": run_id, "attempt": kwargs.get("attempt", 1)})
        if protocol is not None:
            protocol.start()
        self._broker.run_started(thread_id)
        if lease is not None:
            lease.in_graph = True
        try:
            async with asyncio.timeout(self._timeout):
                graph = await self._registry.get(graph_id, config, ephemeral=bool(kwargs.get("temporary")))
                async for ns, mode, chunk in self._source(graph, kwargs, config, mapper, subgraphs or full, full):
                    if not ns:
                        if mode == "values":
                            # LangGraph may fold `__interrupt__` into a values chunk; it is not
                            # state (the interrupts are collected from `updates`).
                            if isinstance(chunk, dict) and "__interrupt__" in chunk:
                                chunk_state = {k: v for k, v in chunk.items() if k != "__interrupt__"}
                                if chunk_state:
                                    last_values = chunk_state
                            else:
                                last_values = chunk
                        elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
                            stopped_at_interrupt = True
                            interrupts.extend(chunk["__interrupt__"])
                    for event, data in mapper.map(ns, mode, chunk):
                        stream.publish(event, data)
                    if protocol is not None:
                        protocol.feed(ns, mode, chunk)
                    await self._broker.flush(stream)  # to storage (resumable) and other replicas
            status = "success"
        except asyncio.CancelledError:
            status = "interrupted"
        except TimeoutError as exc:
            status, failure = "timeout", exc
            stream.publish("error", {"error": "TimeoutError", "message": f"run exceeded its timeout of {self._timeout}s"})
        except Exception as exc:  # the user's graph failed; the run records it, the server stays up
            status, failure = "error", exc
            if not _lease_lost(exc):
                logger.info("run %s failed: %s: %s", run_id, type(exc).__name__, exc)
                stream.publish("error", error_payload(exc))
        if lease is not None:
            lease.in_graph = False

        action = cancel_action() if status == "interrupted" else None
        if lease is not None and (action == "lost" or lease.lost or _lease_lost(failure)):
            return self._abandon(run, stream, lease, caller_token, fence_token)
        if action == "rollback":
            # Store what is pending now, so it goes with the run's deletion instead of
            # landing after it.
            stream.on_publish = None
            await self._broker.flush(stream, force=True)
        try:
            result = await self._finish(run, graph, config, status, action, last_values, interrupts,
                                        stopped_at_interrupt, failure, lease)
        except LeaseLost:
            return self._abandon(run, stream, lease, caller_token, fence_token)
        except Exception:  # bookkeeping failed; never leave waiters hanging
            logger.exception("finishing run %s failed", run_id)
            result = None
        if protocol is not None:  # after the run's end is recorded, so a follow-up run sees it
            protocol.finish(status, str(failure) if failure is not None else None)
        if kwargs.get("temporary"):
            # Stateless run: its throwaway thread goes with it, before the stream ends, so a
            # client that looks the run up on seeing the end finds it gone, not still running
            # (the result reaches waiters through the stream).
            try:
                self._registry.ephemeral_checkpointer.delete_thread(thread_id)
                await self._storage.thread_delete(thread_id)
            except Exception:
                logger.exception("deleting the thread of stateless run %s failed", run_id)
        await self._broker.finish(stream, status, result)
        if self._metrics is not None:
            self._metrics.run_finished(status, time.perf_counter() - started)
        for hook in self.on_run_end:
            hook(run, status, result, started_at)
        LEASE_FENCE.reset(fence_token)
        caller.reset(caller_token)
        return status

    def _abandon(self, run: Record, stream: RunStream, lease: Lease | None, caller_token: Any, fence_token: Any) -> str:
        """Stop a run another replica took over: record and announce nothing (the holder does)."""
        logger.warning("run %s: another replica took it over (this one stopped renewing its lease in time); "
                       "stopped here without recording anything", run["run_id"])
        if lease is not None:
            lease.lost = True
        self._broker.abandon(stream)
        LEASE_FENCE.reset(fence_token)
        caller.reset(caller_token)
        return "lost"

    async def _source(self, graph: Any, kwargs: Record, config: dict[str, Any], mapper: StreamMapper,
                      subgraphs: bool, full: bool) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
        modes = mapper.langgraph_modes()
        if full:
            modes += [m for m in FULL_MODES if m not in modes]
        options: dict[str, Any] = {
            "stream_mode": modes,
            "subgraphs": subgraphs,
            "interrupt_before": kwargs.get("interrupt_before"),
            "interrupt_after": kwargs.get("interrupt_after"),
        }
        options["context"] = run_context(graph, kwargs.get("context"))
        if kwargs.get("durability"):
            options["durability"] = kwargs["durability"]
        inp = graph_input(kwargs)
        # Every streamed metadata dict (messages, tasks, debug, events) and every
        # checkpoint carries these on the official server.
        config = {**config, "metadata": {**config.get("metadata", {}), "run_attempt": kwargs.get("attempt", 1),
                                         "langgraph_version": LANGGRAPH_VERSION}}
        if mapper.events_mode:
            if "run_name" not in config and getattr(graph, "name", None) == "LangGraph":
                # The root run of `events` is named after the graph id, not LangGraph's default.
                config["run_name"] = config["configurable"]["graph_id"]
            async for ev in graph.astream_events(inp, config, version="v2", **options):
                if ev["event"] == "on_chain_stream" and ev["run_id"] == str(config["run_id"]):
                    chunk = ev["data"]["chunk"]
                    yield chunk if subgraphs else ((), *chunk)
                    continue
                yield (), EVENTS, ev
            return
        async for item in graph.astream(inp, config, **options):
            yield item if subgraphs else ((), *item)

    async def _finish(self, run: Record, graph: Any, config: dict[str, Any], status: str, action: str | None,
                      last_values: Any, interrupts: list[Any], stopped_at_interrupt: bool,
                      failure: BaseException | None, lease: Lease | None = None) -> Any:
        """Record the run's end and its thread's state; LeaseLost if the run's lease was taken over."""
        run_id, thread_id = run["run_id"], run["thread_id"]
        now = now_iso()
        thread_changes: Record = {"state_updated_at": now}
        fence = lease.epoch if lease is not None else None
        if action == "rollback" and not await self._storage.run_delete(run_id, fence=fence) and fence is not None:
            raise LeaseLost(run_id)  # (with its checkpoints)
        snapshot = None
        needs_state = stopped_at_interrupt or status != "success" or action == "rollback"
        if graph is not None and needs_state:
            state_config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
            snapshot = await graph.aget_state(state_config)
        if action == "rollback" and snapshot is not None:
            last_values = snapshot.values if snapshot.created_at else None
        values = serde.to_jsonable(last_values) if last_values is not None else None
        if values is not None or action == "rollback":
            thread_changes["values"] = values
        pending = thread_interrupts(snapshot) if snapshot is not None else {}
        thread_changes["interrupts"] = pending
        if is_unknown_interrupt(failure):
            # A strict resume that answered no pending interrupt ran nothing: the thread
            # keeps its interrupts and status, and only the run records the error.
            thread_changes.update(status="interrupted" if pending else "idle", error=None)
        elif status == "error" and failure is not None:
            thread_changes.update(status="error", error=error_payload(failure))
        elif pending or ((stopped_at_interrupt or status == "interrupted") and snapshot is not None and snapshot.next):
            # A run cancelled mid-way leaves tasks to run: the thread is interrupted, as on
            # the official server, and a run with no input continues it.
            thread_changes.update(status="interrupted", error=None)
        else:
            thread_changes.update(status="idle", error=None)
        if action == "rollback":
            # The run is gone; run_finish only records the thread's state, keeping it busy
            # when the run that superseded this one is already waiting.
            await self._storage.run_finish(run_id, thread_id, status, {**thread_changes, "status": "idle"})
        elif not run["kwargs"].get("temporary"):
            # (A stateless run's thread and run are deleted right after; nothing to record.)
            if not await self._storage.run_finish(run_id, thread_id, status, thread_changes, fence=fence) \
                    and fence is not None:
                raise LeaseLost(run_id)
        if lease is not None:
            lease.settled = True  # recorded: its last events and end go out whatever the lease's age

        if failure is not None:
            return {"__error__": error_payload(failure)}
        result = dict(values) if isinstance(values, dict) else (values if values is not None else {})
        if interrupts and isinstance(result, dict):
            result["__interrupt__"] = [interrupt_dict(i) for i in interrupts]
        return result
