"""OpenAI-compatible routes: /v1/models and /v1/chat/completions on top of ordinary runs.

Errors on these routes use OpenAI's envelope `{"error": {message, type, param, code}}`
(the route class below), so OpenAI clients raise their usual exception types.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Callable, Coroutine

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from skeino import serde
from skeino.api.deps import JSON, runtime
from skeino.api.inputs import JsonRoute
from skeino.api.responses import json_or_sse, openai_errors
from skeino.errors import NotFound, SkeinoError
from skeino.runtime.assistants import is_uuid
from skeino.runtime.broker import RunStream
from skeino.runtime.core import Runtime
from skeino.storage.base import Record
from skeino.streaming.openai import (ChunkMapper, RequestError, assistant_message, completion, content_text,
                                     error_body, final_reply, interrupt_text, join_text, model_object,
                                     new_messages_start, resume_command, to_langchain_messages)

logger = logging.getLogger("skeino.openai")

THREAD_HEADER = "X-Thread-Id"
# Request fields handed to the graph verbatim as config.configurable.openai.
PASSTHROUGH = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "frequency_penalty",
    "presence_penalty", "logit_bias", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort",
    "verbosity", "service_tier", "prediction", "prompt_cache_key", "safety_identifier", "user",
})
_DONE = b"data: [DONE]\n\n"
_MODEL_PAGE = 1000


# errors ----------------------------------------------------------------------------------
def error_response(status: int, message: str, kind: str, param: str | None = None,
                   code: str | None = None) -> Response:
    """An OpenAI error envelope response."""
    return JSON(error_body(message, kind, param, code), status_code=status)


def _param(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_error(exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [p for p in first.get("loc", ()) if p not in ("body", "header", "query")]
    param = _param(loc) or None
    kind = first.get("type")
    if kind == "json_invalid":
        message, param = "The request body is not valid JSON.", None
    elif kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    elif kind == "missing":
        message = f"Missing required parameter: '{param}'." if param else "The request body is missing."
    elif param is None:
        message = f"The request body must be a JSON object: {first.get('msg')}"
    else:
        message = f"Invalid value for '{param}': {first.get('msg')}"
    return error_response(400, message, "invalid_request_error", param, kind)


class OpenAIRoute(JsonRoute):
    """A route whose every error answers in OpenAI's envelope instead of `{"detail": ...}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _validation_error(exc)
            except RequestError as exc:
                return error_response(exc.status_code, exc.detail, exc.kind, exc.param, exc.code)
            except SkeinoError as exc:
                kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
                return error_response(exc.status_code, exc.detail, kind)
            except Exception:
                # Log the traceback here; the client gets no internals.
                logger.exception("unhandled error on %s %s", request.method, request.url.path)
                return error_response(500, "Internal server error", "server_error")

        return guarded


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute,
                   responses=openai_errors(400, 404, 409, 500, 501, 503))


# request ---------------------------------------------------------------------------------
class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # padding against side channels; nothing to pad here


class ChatCompletionRequest(BaseModel):
    """The chat-completions body; unknown fields are refused (400 naming the field)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Any] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # Passed to the graph (see PASSTHROUGH).
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    service_tier: str | None = None
    prediction: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    user: str | None = None
    # Recorded on the run.
    metadata: dict[str, str] | None = None
    store: bool | None = None  # no effect: runs are kept by skeino's own rules
    # Accepted only with their default value (see _DEFAULT_ONLY).
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[Any] | None = None
    function_call: Any = None


# Fields skeino cannot honour: accepted only when they ask for the default behaviour.
_DEFAULT_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v == 1, "only n=1 is supported"),
    "logprobs": (lambda v: v is False, "log probabilities are not available from graphs"),
    "top_logprobs": (lambda v: v == 0, "log probabilities are not available from graphs"),
    "response_format": (lambda v: v.get("type") == "text", "only response_format type 'text' is supported"),
    "modalities": (lambda v: list(v) == ["text"], "only the 'text' modality is supported"),
    "audio": (lambda v: False, "audio output is not supported"),
    "web_search_options": (lambda v: False, "web search is not supported"),
    "functions": (lambda v: False, "'functions' is deprecated and not supported; use 'tools'"),
    "function_call": (lambda v: False, "'function_call' is deprecated and not supported; use 'tool_choice'"),
}


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """Fail closed on fields that would change the answer in ways skeino cannot honour."""
    for name, (acceptable, why) in _DEFAULT_ONLY.items():
        value = getattr(body, name)
        if value is not None and not acceptable(value):
            raise RequestError(f"Unsupported value for '{name}': {why}.", param=name, code="unsupported_parameter")


def graph_options(body: ChatCompletionRequest) -> dict[str, Any]:
    """The fields the client set that the graph may honour (config.configurable.openai)."""
    return body.model_dump(include=set(PASSTHROUGH), exclude_unset=True, exclude_none=True)


def _run_metadata(body: ChatCompletionRequest) -> dict[str, Any]:
    metadata: dict[str, Any] = {**(body.metadata or {}), "source": "openai"}
    if body.user:
        metadata["user"] = body.user
    return metadata


# models ----------------------------------------------------------------------------------
async def _assistant(rt: Runtime, model: str) -> Record:
    try:
        return await rt.assistants.get(model)
    except NotFound:
        raise RequestError(f"The model '{model}' does not exist.", status_code=404, param="model",
                           code="model_not_found") from None


@router.get("/models")
async def list_models(rt: Runtime = Depends(runtime)) -> Any:
    """Every assistant as a model."""
    models, offset = [], 0
    while True:
        page = await rt.assistants.search({"limit": _MODEL_PAGE, "offset": offset,
                                           "sort_by": "created_at", "sort_order": "asc"})
        models += [model_object(a) for a in page]
        if len(page) < _MODEL_PAGE:
            return {"object": "list", "data": models}
        offset += _MODEL_PAGE


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, rt: Runtime = Depends(runtime)) -> Any:
    """One assistant as a model (by graph id or assistant id)."""
    return model_object(await _assistant(rt, model_id))


# conversations -----------------------------------------------------------------------------
def _pending_interrupts(thread: Record | None) -> list[dict[str, Any]]:
    if not thread:
        return []
    return [item for items in (thread.get("interrupts") or {}).values() for item in items]


async def _thread(rt: Runtime, thread_id: str) -> Record | None:
    try:
        return await rt.threads.get(thread_id)
    except NotFound:
        return None


async def _conversation(rt: Runtime, thread_id: str | None, messages: list[Any]) -> dict[str, Any]:
    """The run's input, or the command resuming a paused thread (see docs/openai.md for the rule)."""
    converted = to_langchain_messages(messages)
    if thread_id is None:
        return {"input": {"messages": converted}}
    if not is_uuid(thread_id):
        raise RequestError(f"{THREAD_HEADER} must be a UUID", param=THREAD_HEADER)
    thread = await _thread(rt, thread_id)
    values = (thread or {}).get("values")
    history = values.get("messages") if isinstance(values, dict) else None
    new = converted[new_messages_start(messages, bool(history)):]
    if not new:
        raise RequestError("No new message for the thread: the request ends with an assistant message "
                           "the thread already has.", param="messages")
    pending = _pending_interrupts(thread)
    if pending:
        if len(new) != 1 or new[0]["type"] != "human":
            raise RequestError("The thread is waiting for an answer to an interrupt: send one new user message.",
                               param="messages")
        return {"command": resume_command(pending, content_text(new[0]["content"]))}
    return {"input": {"messages": new}, "if_not_exists": "create"}


def _run_body(assistant: Record, conversation: dict[str, Any], body: ChatCompletionRequest) -> dict[str, Any]:
    return {
        "assistant_id": assistant["assistant_id"],
        **conversation,
        "config": {"configurable": {"openai": graph_options(body)}},
        "metadata": _run_metadata(body),
        "stream_mode": ["messages-tuple"],
        "on_disconnect": "cancel",
    }


class ChatRun:
    """One chat completion bound to its run: follows the run's tokens and records how it ended."""

    def __init__(self, rt: Runtime, run: Record, stream: RunStream, mapper: ChunkMapper, resumable: bool) -> None:
        self.rt = rt
        self.run = run
        self.stream = stream
        self.mapper = mapper
        self.resumable = resumable
        self.failure: dict[str, Any] | None = None
        self.values: Any = None

    async def tokens(self) -> AsyncIterator[dict[str, Any]]:
        """Chunks for the AI messages the run streams; afterwards `failure` or `values` is set."""
        async for batch in self.rt.runs.events(self.run, -1):
            for _, name, data in batch:
                if name == "messages":
                    for chunk in self.mapper.feed(serde.loads(data)[0]):
                        yield chunk
                elif name == "error":
                    self.failure = serde.loads(data)
        if self.failure is not None:
            return
        result = await self.rt.runs.wait_for(self.run)
        if isinstance(result, dict) and result.get("__error__"):
            self.failure = result["__error__"]
        elif self.stream.status == "interrupted":
            self.failure = {"error": "Cancelled", "message": "the run was cancelled"}
        else:
            self.values = result

    async def drain(self) -> None:
        """Follow the run to its end without emitting chunks."""
        async for _ in self.tokens():
            pass

    def interrupt_text(self) -> str:
        """The message showing a pending interrupt, or '' when the run did not stop at one."""
        pending = self.values.get("__interrupt__") if isinstance(self.values, dict) else None
        return interrupt_text(pending, self.resumable) if pending else ""

    def error(self) -> RequestError:
        """The failure as an OpenAI server error; the exception type only, never its internals."""
        kind = (self.failure or {}).get("error") or "Error"
        code = {"Cancelled": "run_cancelled", "TimeoutError": "run_timeout"}.get(kind, "run_failed")
        return RequestError(f"The assistant failed to answer ({kind}); see run {self.run['run_id']}.",
                            status_code=500, code=code)


def _data(payload: Any) -> bytes:
    return b"data: " + serde.dumps(payload) + b"\n\n"


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")


def _event_stream(call: ChatRun, heartbeat: float, headers: dict[str, str] | None) -> EventSourceResponse:
    """`chat.completion.chunk` SSE: role, deltas, finish (and usage), `[DONE]`; cancels the run if the client leaves."""

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            yield _data(call.mapper.start())
            async for chunk in call.tokens():
                yield _data(chunk)
            if call.failure is not None:
                error = call.error()
                yield _data(error_body(error.detail, error.kind, None, error.code))
            else:
                for chunk in call.mapper.finish(call.interrupt_text()):
                    yield _data(chunk)
            yield _DONE
            finished = True
        except Exception:
            logger.exception("chat completion stream of run %s failed", call.run["run_id"])
            yield _data(error_body("Internal server error", "server_error"))
            yield _DONE
        finally:
            if not finished:
                call.rt.runs.cancel_on_disconnect(call.run)

    return EventSourceResponse(body(), ping=heartbeat, headers=headers, sep="\n", ping_message_factory=_ping)


async def _complete(call: ChatRun, request: Request) -> dict[str, Any]:
    """Wait for the run (cancelling it if the client leaves) and answer a `chat.completion`."""
    drained = asyncio.ensure_future(call.drain())
    cancelled = False
    while not drained.done():
        await asyncio.wait([drained], timeout=0.5)
        if not drained.done() and not cancelled and await request.is_disconnected():
            call.rt.runs.cancel_on_disconnect(call.run)
            cancelled = True
    await drained
    if call.failure is not None:
        raise call.error()
    text, tool_calls, message_usage = final_reply(call.values, call.mapper)
    extra = call.interrupt_text()
    message = assistant_message(join_text(text, extra), [] if extra else tool_calls)
    finish = "stop" if extra else call.mapper.finish_reason()
    return completion(call.mapper.completion_id, call.mapper.model, call.mapper.created, message, finish,
                      call.mapper.usage or message_usage)


def _thread_headers(run: Record) -> dict[str, str]:
    return {THREAD_HEADER: run["thread_id"], "Content-Location": f"/threads/{run['thread_id']}/runs/{run['run_id']}"}


@router.post("/chat/completions", responses=json_or_sse("A chat completion, or its chunks when `stream` is true"))
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           thread_id: str | None = Header(None, alias=THREAD_HEADER),
                           rt: Runtime = Depends(runtime)) -> Response:
    """Run the assistant named by `model` on the messages; SSE chunks when `stream` is true."""
    refuse_unsupported(body)
    assistant = await _assistant(rt, body.model)
    thread_id = thread_id or None
    conversation = await _conversation(rt, thread_id, body.messages)
    run, stream = await rt.runs.create(thread_id, _run_body(assistant, conversation, body))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    mapper = ChunkMapper(f"chatcmpl-{run['run_id']}", body.model, int(time.time()), include_usage)
    call = ChatRun(rt, run, stream, mapper, resumable=thread_id is not None)
    headers = _thread_headers(run) if thread_id is not None else None
    if body.stream:
        return _event_stream(call, rt.settings.heartbeat_seconds, headers)
    return JSON(await _complete(call, request), headers=headers)
