"""Protocol-v2 commands of one thread (`POST /threads/{id}/commands` and the WebSocket).

Every command is `{"id": <int>, "method": <str>, "params": {...}}` and gets exactly one
answer: `{"type": "success", "id", "result", "meta"}` or `{"type": "error", "id", "error",
"message"}` with an error code of the protocol (`invalid_argument`, `unknown_command`,
`no_such_interrupt`, …). Subscriptions are the transport's business, so the
WebSocket handles `subscription.*` itself and hands everything else here.
"""

from __future__ import annotations

from typing import Any

from langchain_protocol.protocol import CommandResponse, ErrorCode, ErrorResponse
from pydantic import ValidationError

from skeino.errors import SkeinoError
from skeino.runtime.core import Runtime
from skeino.schemas import RunCreate
from skeino.streaming.protocol import agent_tree, announced_interrupts, segment_name

Reply = CommandResponse | ErrorResponse

# Commands of the protocol skeino does not implement: refused by name, not dropped.
_NOT_SUPPORTED = {
    "input.inject": "input.inject is not supported: start a run with the message instead.",
    "state.fork": "state.fork is not supported: start a run with config.configurable.checkpoint_id instead.",
}

# What `run.start` accepts beside the protocol's own fields: the v1 run options.
_RUN_OPTIONS = ("multitask_strategy", "context", "checkpoint", "checkpoint_id", "interrupt_before",
                "interrupt_after", "durability", "command", "after_seconds", "webhook")

# Domain errors mapped to the protocol's error codes.
_CODES: dict[int, ErrorCode] = {404: "no_such_run", 409: "invalid_argument", 422: "invalid_argument",
                                400: "invalid_argument", 501: "not_supported"}


class CommandError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def success(command_id: Any, result: Any) -> CommandResponse:
    return {"type": "success", "id": command_id, "result": result, "meta": {"applied_through_seq": 0}}


def error(command_id: Any, code: ErrorCode, message: str) -> ErrorResponse:
    return {"type": "error", "id": command_id if isinstance(command_id, int) else None, "error": code,
            "message": message}


def malformed(payload: Any) -> ErrorResponse | None:
    """The refusal for something that is not a command at all, else None."""
    if isinstance(payload, dict) and isinstance(payload.get("id"), int) and not isinstance(payload["id"], bool) \
            and isinstance(payload.get("method"), str):
        if payload.get("params") is None or isinstance(payload.get("params"), dict):
            return None
        return error(payload["id"], "invalid_argument", "params must be a JSON object.")
    cid = payload.get("id") if isinstance(payload, dict) else None
    return error(cid, "invalid_argument", "Protocol commands must include an integer id and string method.")


class Commands:
    """Dispatches the commands that do not depend on a connection."""

    def __init__(self, rt: Runtime, thread_id: str) -> None:
        self._rt = rt
        self._thread_id = thread_id

    async def handle(self, command: dict[str, Any]) -> Reply:
        cid, method, params = command["id"], command["method"], command.get("params") or {}
        handler = {
            "run.start": self._run_start, "input.respond": self._input_respond, "state.get": self._state_get,
            "state.listCheckpoints": self._list_checkpoints, "agent.getTree": self._agent_tree,
        }.get(method)
        try:
            if handler is not None:
                return success(cid, await handler(params))
            if method in _NOT_SUPPORTED:
                return error(cid, "not_supported", _NOT_SUPPORTED[method])
            if method.startswith("subscription."):
                return error(cid, "not_supported", f"{method} needs a WebSocket; over HTTP, open "
                             f"POST /threads/{{thread_id}}/stream/events with the filter instead.")
            return error(cid, "unknown_command", f"Unknown protocol command: {method}")
        except CommandError as exc:
            return error(cid, exc.code, exc.message)
        except SkeinoError as exc:
            return error(cid, _CODES.get(exc.status_code, "unknown_error"), exc.detail)

    # runs -------------------------------------------------------------------------
    async def _start(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            parsed = RunCreate.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CommandError("invalid_argument", f"{where}: {first['msg']}") from None
        data = parsed.data()
        data.setdefault("if_not_exists", "create")  # as on the official server: run.start makes the thread
        run, _ = await self._rt.runs.create(self._thread_id, data, protocol=True)
        return {"run_id": run["run_id"]}

    async def _run_start(self, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("assistant_id"), str) or not params["assistant_id"]:
            raise CommandError("invalid_argument", "run.start requires an assistant_id.")
        unknown = set(params) - {"assistant_id", "input", "config", "metadata", "langsmith_tracer", *_RUN_OPTIONS}
        if unknown:
            raise CommandError("invalid_argument", f"run.start does not take {', '.join(sorted(unknown))}.")
        return await self._start(dict(params))

    async def _input_respond(self, params: dict[str, Any]) -> dict[str, Any]:
        """Resume the thread's pending interrupts with the given responses (a new run)."""
        if isinstance(params.get("responses"), list):
            entries = params["responses"]
        else:
            entries = [params]
        answers: dict[str, Any] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("interrupt_id"), str) or "response" not in entry:
                raise CommandError("invalid_argument", "input.respond needs an interrupt_id and a response.")
            answers[entry["interrupt_id"]] = entry["response"]
        thread = await self._rt.threads.get(self._thread_id)
        pending = {i.get("id") for items in (thread.get("interrupts") or {}).values() for i in items}
        if thread["status"] == "busy":  # the interrupted run announced them but is still wrapping up
            pending |= announced_interrupts(await self._rt.broker.protocol_kept(self._thread_id))
        missing = [i for i in answers if i not in pending]
        if missing:
            raise CommandError("no_such_interrupt", f"No pending interrupt with id {missing[0]} on this thread.")
        assistant_id = thread["metadata"].get("assistant_id") or thread["metadata"].get("graph_id")
        if not assistant_id:
            raise CommandError("no_such_run", "No run has started on this thread.")
        command: dict[str, Any] = {"resume": answers}
        for key in ("update", "goto"):
            if params.get(key) is not None:
                command[key] = params[key]
        body = {"assistant_id": assistant_id, "command": command}
        for key in ("config", "metadata"):
            if params.get(key) is not None:
                body[key] = params[key]
        await self._start(body)
        return {}

    # state ------------------------------------------------------------------------
    async def _state_get(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace = params.get("namespace") or []
        state = await self._rt.threads.state(self._thread_id, subgraphs=bool(namespace))
        for segment in namespace:  # walk down into the subgraph's state
            task = next((t for t in state.get("tasks") or [] if isinstance(t.get("state"), dict)
                         and segment_name(segment) == t.get("name")), None)
            if task is None:
                raise CommandError("no_such_namespace", f"No subgraph {segment!r} is pending in this thread's state.")
            state = task["state"]
        values = state.get("values") or {}
        keys = params.get("keys")
        if isinstance(keys, list) and isinstance(values, dict):
            values = {k: v for k, v in values.items() if k in keys}
        result: dict[str, Any] = {"values": values}
        checkpoint = state.get("checkpoint") or {}
        if checkpoint.get("checkpoint_id"):
            result["checkpoint"] = {"id": checkpoint["checkpoint_id"], "ns": checkpoint.get("checkpoint_ns") or ""}
        return result

    async def _list_checkpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 10
        history = await self._rt.threads.history(self._thread_id, limit=limit, before=params.get("before"))
        summaries = []
        for state in history:
            metadata = state.get("metadata") or {}
            summary = {"id": state["checkpoint"]["checkpoint_id"], "timestamp": state.get("created_at"),
                       "step": metadata.get("step", 0), "metadata": metadata}
            summaries.append(summary)
        return {"checkpoints": summaries}

    # agents -----------------------------------------------------------------------
    async def _agent_tree(self, params: dict[str, Any]) -> dict[str, Any]:
        """The agents (root graph and subgraphs) of a run, from its lifecycle events."""
        await self._rt.threads.get(self._thread_id)  # the caller must be able to read the thread
        run_id = params.get("run_id") if isinstance(params.get("run_id"), str) else None
        tree = agent_tree(await self._rt.broker.protocol_kept(self._thread_id), run_id)
        if tree is None:
            raise CommandError("no_such_run", "No run of this thread is kept in memory.")
        return {"tree": tree}
