"""What /openapi.json documents about answers, declared once: error bodies, status codes, streams.

The app declares what any route may answer (the security and request layers run before every
route); each router adds the codes its service raises; stream routes declare their media type.
The schema test (tests/test_openapi.py) holds the server to these declarations.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Responses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    """Every 4xx: one readable sentence (the official client puts it in its exception)."""

    model_config = ConfigDict(extra="forbid")

    detail: str


class ServerErrorBody(ErrorBody):
    """A 500: a stable sentence and the id to quote; the traceback is in the server's log only."""

    error_id: str


_WHY = {
    400: "The request cannot be applied (e.g. a state update on a thread with no graph)",
    401: "Missing or unknown API key",
    403: "The API key lacks this route's scope, or a cross-site request was refused",
    404: "No such resource",
    409: "Conflict: the id exists, the thread is busy, or the run is still running",
    413: "The request body is larger than the server's limit",
    421: "The Host header names no host this server answers",
    422: "Invalid input; the sentence names each wrong field",
    429: "Rate limit or queue bound reached; see Retry-After",
    500: "Unexpected server error; quote the error id",
    501: "An option this server does not implement, refused by name",
    503: "Storage is not answering, or the server is full; retry later",
}


def errors(*codes: int) -> Responses:
    """The documented error answers for these status codes."""
    return {code: {"model": ServerErrorBody if code == 500 else ErrorBody, "description": _WHY[code]}
            for code in codes}


# Any route: the security layer (401, 403, 421, 429), the body limit (413), parameter and body
# validation (422), and the request layer's safe 500.
ANY_ROUTE = errors(401, 403, 413, 421, 422, 429, 500)

SSE: Responses = {200: {"description": "Server-sent events", "content": {"text/event-stream": {}}}}


def accepted_or_done() -> Responses:
    """A cancel: 202 when it was asked, 200 with an empty object when `wait=true` and it is done."""
    return {202: {"description": "Cancellation requested"},
            200: {"description": "Cancelled", "content": {"application/json": {"schema": {"type": "object"}}}}}


def json_or_sse(description: str) -> Responses:
    """A route that answers JSON, or a stream when the request asks for one."""
    return {200: {"description": description, "content": {"application/json": {}, "text/event-stream": {}}}}


class _OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error envelope, which the /v1 routes answer so OpenAI clients raise their own errors."""

    error: _OpenAIError


def openai_errors(*codes: int) -> Responses:
    return {code: {"model": OpenAIErrorBody, "description": _WHY[code]} for code in codes}
