"""/a2a/{assistant_id}: each assistant as an Agent2Agent (A2A v0.3) agent, JSON-RPC 2.0 over HTTP.

`message/send`, `message/stream` (SSE), `tasks/get` and `tasks/cancel` on graphs whose input has `messages`.
A task is a run (its id `<context_id>:<run_id>`), a context is a thread, so a second message
with the same contextId continues the conversation. Every failure is a JSON-RPC error object
(HTTP 200), never a 500. The agent card is at /.well-known/agent-card.json?assistant_id=...
Shapes are built with the official a2a-sdk's v0.3 types (skeino/streaming/a2a.py).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

import orjson
from a2a.compat.v0_3 import types as a2a
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from skeino import __version__, serde
from skeino.api.deps import JSON, runtime
from skeino.api.responses import errors, json_or_sse
from skeino.errors import BadRequest, NotFound, SkeinoError
from skeino.runtime.assistants import is_uuid
from skeino.runtime.core import Runtime
from skeino.storage.base import Record
from skeino.streaming import a2a as shapes

logger = logging.getLogger("skeino.a2a")

router = APIRouter(tags=["a2a"], responses=errors(400, 404))

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
TASK_NOT_FOUND, TASK_NOT_CANCELABLE, UNSUPPORTED_OPERATION, CONTENT_TYPE_NOT_SUPPORTED = -32001, -32002, -32004, -32005
_RUN_SCAN = 1000  # runs of a context scanned to find a task's latest run


class RpcError(Exception):
    """A JSON-RPC error object to answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error_body(rpc_id: Any, code: int, message: str) -> dict[str, Any]:
    body = shapes.dump(a2a.JSONRPCErrorResponse(id=rpc_id, error=a2a.JSONRPCError(code=code, message=message)))
    return {**body, "id": rpc_id}  # JSON-RPC answers "id": null when the request's id is unknown


def _as_rpc_error(exc: Exception) -> RpcError:
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, shapes.PartsError):
        return RpcError(CONTENT_TYPE_NOT_SUPPORTED, str(exc))
    if isinstance(exc, SkeinoError) and exc.status_code < 500:
        return RpcError(INVALID_PARAMS, exc.detail)
    logger.exception("A2A request failed")
    return RpcError(INTERNAL_ERROR, "Internal server error")


def _params(model: type[Any], params: Any) -> Any:
    try:
        return model.model_validate(params if params is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise RpcError(INVALID_PARAMS, f"Invalid params: {where + ': ' if where else ''}{first.get('msg')}") from None


# tasks ------------------------------------------------------------------------------------
async def _assistant(rt: Runtime, assistant_id: str) -> Record:
    try:
        return await rt.assistants.get(assistant_id)
    except NotFound:
        raise RpcError(INVALID_PARAMS, f"Assistant '{assistant_id}' not found") from None


async def _check_messages(rt: Runtime, assistant: Record, parts: list[a2a.Part]) -> None:
    if not any(isinstance(p.root, a2a.TextPart) for p in parts):
        return
    if not shapes.input_schema_has_messages(await rt.assistants.schemas(assistant["assistant_id"])):
        raise RpcError(INVALID_PARAMS,
                       f"Assistant '{assistant['assistant_id']}' (graph '{assistant['graph_id']}') does not support "
                       "A2A conversational messages: its input schema has no 'messages' field")


@dataclass(frozen=True)
class FoundTask:
    run: Record  # the task's latest run
    thread: Record
    state: a2a.TaskState


async def _find_task(rt: Runtime, task_id: str, assistant: Record) -> FoundTask | None:
    """The task of this assistant with that id, or None."""
    parsed = shapes.parse_task_id(task_id)
    if parsed is None or not all(is_uuid(p) for p in parsed):
        return None
    context_id, run_id = parsed
    try:
        anchor = await rt.runs.get(context_id, run_id)
        thread = await rt.threads.get(context_id)
    except NotFound:
        return None
    if anchor["assistant_id"] != assistant["assistant_id"] or shapes.run_task_id(anchor) != task_id:
        return None
    runs = await rt.runs.list(context_id, limit=_RUN_SCAN, offset=0, status=None)  # newest first
    latest = next((r for r in runs if shapes.run_task_id(r) == task_id), anchor)
    # The thread's interrupt is this task's question only if no later run came after it.
    asking = thread.get("status") == "interrupted" and bool(runs) and runs[0]["run_id"] == latest["run_id"]
    return FoundTask(latest, thread, shapes.task_state(latest["status"], asking))


class Turn:
    """One message sent to an agent: its run, created with the task and context it belongs to."""

    def __init__(self, rt: Runtime, assistant: Record, params: a2a.MessageSendParams) -> None:
        self.rt = rt
        self.assistant = assistant
        self.message = params.message
        self.context_id = ""
        self.task_id = ""
        self.run: Record = {}

    async def start(self, stream_mode: list[str] | None = None) -> None:
        message, rt = self.message, self.rt
        await _check_messages(rt, self.assistant, message.parts)
        run_id = str(uuid.uuid4())
        command = None
        if message.task_id:
            found = await _find_task(rt, message.task_id, self.assistant)
            if found is None:
                raise RpcError(TASK_NOT_FOUND, f"Task not found: {message.task_id}")
            if found.state in shapes.TERMINAL:
                raise RpcError(UNSUPPORTED_OPERATION, "A terminal task cannot accept another message")
            self.context_id, self.task_id = found.thread["thread_id"], message.task_id
            if found.state is a2a.TaskState.input_required:
                # The answer to the question the graph asked: resume it with the text.
                texts = [p.root.text for p in message.parts if isinstance(p.root, a2a.TextPart)]
                command = {"resume": "\n".join(texts)}
        else:
            if message.context_id is not None and not is_uuid(message.context_id):
                raise RpcError(INVALID_PARAMS, "contextId must be a UUID: it names the thread of the conversation")
            self.context_id = message.context_id or str(uuid.uuid4())
            self.task_id = shapes.make_task_id(self.context_id, run_id)
        body: dict[str, Any] = {
            "assistant_id": self.assistant["assistant_id"], "run_id": run_id, "if_not_exists": "create",
            "metadata": {"a2a": {"task_id": self.task_id}}, "stream_mode": stream_mode or ["values"],
        }
        if command is not None:
            body["command"] = command
        else:
            body["input"] = shapes.graph_input(message.parts, message.message_id, self.task_id,
                                               "human" if message.role is a2a.Role.user else "ai")
        self.run, _ = await rt.runs.create(self.context_id, body)

    async def finish(self) -> tuple[a2a.TaskStatus, list[a2a.Artifact], list[Any]]:
        """Wait for the run: the task's status and artifacts, and the context's messages after it."""
        values = serde.to_jsonable(await self.rt.runs.wait_for(self.run))
        final = await self.rt.runs.get(self.context_id, self.run["run_id"])
        status, artifacts = shapes.outcome(values, final["status"], self.task_id, self.context_id,
                                           self.assistant["assistant_id"])
        messages = values.get("messages") if isinstance(values, dict) else None
        if not isinstance(messages, list):
            thread_values = (await self.rt.threads.get(self.context_id)).get("values")
            messages = (thread_values or {}).get("messages") if isinstance(thread_values, dict) else None
        return status, artifacts, serde.to_jsonable(messages) if isinstance(messages, list) else []


def _history_length(length: int | None) -> int | None:
    if length is not None and length < 0:
        raise RpcError(INVALID_PARAMS, "historyLength must be a non-negative integer")
    return length


async def _send(rt: Runtime, assistant_id: str, params: Any) -> a2a.Task:
    send = _params(a2a.MessageSendParams, params)
    length = _history_length(send.configuration.history_length if send.configuration else None)
    turn = Turn(rt, await _assistant(rt, assistant_id), send)
    await turn.start()
    status, artifacts, messages = await turn.finish()
    return a2a.Task(id=turn.task_id, context_id=turn.context_id, status=status, artifacts=artifacts or None,
                    history=shapes.history(messages, turn.context_id, turn.task_id, length=length)
                    if length != 0 else None)


async def _get(rt: Runtime, assistant_id: str, params: Any) -> a2a.Task:
    query = _params(a2a.TaskQueryParams, params)
    _history_length(query.history_length)
    found = await _find_task(rt, query.id, await _assistant(rt, assistant_id))
    if found is None:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {query.id}")
    run, thread, state = found.run, found.thread, found.state
    context_id = thread["thread_id"]
    status = a2a.TaskStatus(state=state, timestamp=str(run.get("updated_at") or run.get("created_at")))
    if state is a2a.TaskState.completed:
        status.message = shapes.agent_message("Task completed successfully", query.id)
    elif state is a2a.TaskState.failed:
        status.message = shapes.agent_message(f"Task failed with status: {run['status']}", query.id)
    elif state is a2a.TaskState.canceled:
        status.message = shapes.agent_message("Task was canceled", query.id)
    values = thread.get("values")
    messages = (values or {}).get("messages") if isinstance(values, dict) else None
    task = a2a.Task(id=query.id, context_id=context_id, status=status)
    if query.history_length != 0:
        task.history = shapes.history(serde.to_jsonable(messages or []), context_id, query.id, until_task=True,
                                      length=query.history_length)
    return task


async def _stream_events(rt: Runtime, assistant_id: str, params: Any) -> AsyncIterator[Any]:
    """Task (submitted), working updates with the reply so far, the answer as an artifact, the final status."""
    send = _params(a2a.MessageSendParams, params)
    turn = Turn(rt, await _assistant(rt, assistant_id), send)
    await turn.start(["messages-tuple", "values"])
    task_id, context_id = turn.task_id, turn.context_id
    sent = send.message.model_copy(update={"task_id": task_id, "context_id": context_id})
    yield a2a.Task(id=task_id, context_id=context_id, history=[sent],
                   status=a2a.TaskStatus(state=a2a.TaskState.submitted, timestamp=shapes.now()))
    so_far: dict[str, str] = {}
    async for batch in rt.runs.events(turn.run, -1):
        for _, name, data in batch:
            if name.split("|", 1)[0] != "messages":
                continue
            chunk = serde.loads(data)[0]
            if shapes.role_of(chunk) is not a2a.Role.agent:
                continue
            key = str(chunk.get("id"))
            so_far[key] = so_far.get(key, "") + shapes.text_of(chunk.get("content"))
            if so_far[key]:
                yield a2a.TaskStatusUpdateEvent(
                    task_id=task_id, context_id=context_id, final=False,
                    status=a2a.TaskStatus(state=a2a.TaskState.working, timestamp=shapes.now(),
                                          message=shapes.agent_message(so_far[key], task_id, context_id)))
    status, artifacts, _ = await turn.finish()
    for artifact in artifacts:
        yield a2a.TaskArtifactUpdateEvent(task_id=task_id, context_id=context_id, artifact=artifact,
                                          append=False, last_chunk=True)
    yield a2a.TaskStatusUpdateEvent(task_id=task_id, context_id=context_id, status=status, final=True)


def _stream(rt: Runtime, assistant_id: str, rpc_id: Any, params: Any) -> EventSourceResponse:
    """SSE whose every event is a JSON-RPC response; a failure is the last event, an error object."""

    async def body() -> AsyncIterator[ServerSentEvent]:
        try:
            async for result in _stream_events(rt, assistant_id, params):
                payload = shapes.dump(a2a.SendStreamingMessageSuccessResponse(id=rpc_id, result=result))
                yield ServerSentEvent(data=orjson.dumps(payload).decode(), event="message")
        except Exception as exc:
            error = _as_rpc_error(exc)
            yield ServerSentEvent(data=orjson.dumps(_error_body(rpc_id, error.code, error.message)).decode(),
                                  event="message")

    return EventSourceResponse(body(), ping=rt.settings.heartbeat_seconds)


async def _cancel(rt: Runtime, assistant_id: str, params: Any) -> a2a.Task:
    """Cancel the task's run and answer the task, now canceled."""
    query = _params(a2a.TaskIdParams, params)
    found = await _find_task(rt, query.id, await _assistant(rt, assistant_id))
    if found is None:
        raise RpcError(TASK_NOT_FOUND, f"Task not found: {query.id}")
    if found.state in shapes.TERMINAL or found.state is a2a.TaskState.input_required:
        raise RpcError(TASK_NOT_CANCELABLE, f"Task is not cancelable in its current state ({found.state.value})")
    try:
        await rt.runs.cancel(found.run["thread_id"], found.run["run_id"], wait=True, action="interrupt")
    except NotFound:
        pass  # it finished meanwhile: the task below says how
    return await _get(rt, assistant_id, {"id": query.id})


# routes -----------------------------------------------------------------------------------
_METHODS = {"message/send": _send, "tasks/get": _get, "tasks/cancel": _cancel}


@router.post("/a2a/{assistant_id}", responses={**json_or_sse("A JSON-RPC answer, or events for message/stream"),
                                                 202: {"description": "A notification: no answer"}})
@router.post("/a2a/{assistant_id}/", include_in_schema=False)
async def a2a_endpoint(assistant_id: str, request: Request, rt: Runtime = Depends(runtime)) -> Response:
    """One JSON-RPC 2.0 request: message/send, message/stream (answered as SSE), tasks/get or tasks/cancel."""
    try:
        message = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return JSON(_error_body(None, PARSE_ERROR, "Invalid JSON payload"))
    if not isinstance(message, dict):
        return JSON(_error_body(None, INVALID_REQUEST, "Invalid message format: expected a JSON object"))
    rpc_id = message.get("id")
    if rpc_id is not None and (not isinstance(rpc_id, (str, int)) or isinstance(rpc_id, bool)):
        return JSON(_error_body(None, INVALID_REQUEST, "Invalid JSON-RPC request: 'id' must be a string or a number"))
    if message.get("jsonrpc") != "2.0":
        return JSON(_error_body(rpc_id, INVALID_REQUEST, "Invalid JSON-RPC message: 'jsonrpc' must be \"2.0\""))
    method = message.get("method")
    if not isinstance(method, str):
        return JSON(_error_body(rpc_id, INVALID_REQUEST, "Invalid JSON-RPC request: missing 'method'"))
    if rpc_id is None:
        return Response(status_code=202)  # a notification: no answer
    if method == "message/stream":
        return _stream(rt, assistant_id, rpc_id, message.get("params"))
    handler = _METHODS.get(method)
    if handler is None:
        return JSON(_error_body(rpc_id, METHOD_NOT_FOUND, f"Method not found: {method}"))
    try:
        task = await handler(rt, assistant_id, message.get("params"))
    except Exception as exc:
        error = _as_rpc_error(exc)
        return JSON(_error_body(rpc_id, error.code, error.message))
    return JSON({"jsonrpc": "2.0", "id": rpc_id, "result": shapes.dump(task)})


async def _card(rt: Runtime, request: Request, assistant_id: str) -> Response:
    assistant = await rt.assistants.get(assistant_id)
    schemas = await rt.assistants.schemas(assistant["assistant_id"])
    return JSON(shapes.dump(shapes.agent_card(assistant, schemas, str(request.base_url), __version__)))


@router.get("/.well-known/agent-card.json")
async def agent_card(request: Request, assistant_id: str | None = Query(None),
                     rt: Runtime = Depends(runtime)) -> Response:
    """The A2A agent card of the assistant named by `assistant_id`."""
    if not assistant_id:
        raise BadRequest("Missing required query parameter: assistant_id")
    return await _card(rt, request, assistant_id)


@router.get("/a2a/{assistant_id}/.well-known/agent-card.json")
async def assistant_agent_card(assistant_id: str, request: Request, rt: Runtime = Depends(runtime)) -> Response:
    """The same card, under the agent's own URL."""
    return await _card(rt, request, assistant_id)
