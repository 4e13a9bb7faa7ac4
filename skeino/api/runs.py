"""/threads/{id}/runs and stateless /runs routes."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from skeino.api.deps import CURSOR, JSON, Idempotent, idempotent, paged, runtime
from skeino.api.inputs import INT_MAX, JsonRoute
from skeino.api.responses import SSE, accepted_or_done, errors
from skeino.errors import Invalid
from skeino.runtime.broker import Event
from skeino.runtime.core import Runtime
from skeino.schemas import RunCreate, RunField, RunsCancel
from skeino.storage.base import Record
from skeino.streaming.sse import event_stream

router = APIRouter(tags=["runs"], route_class=JsonRoute, responses=errors(400, 404, 409, 501, 503))

# Events a filtered join delivers whatever modes it asked for. The official server drops
# everything not requested, errors included; skeino still tells a client its run failed.
_ALWAYS_RUN = frozenset({"error"})
# A thread stream also keeps `metadata`: it marks where each run ends (`run_done`).
_ALWAYS_THREAD = frozenset({"metadata", "error"})


def _run_headers(run: Record, tail: str) -> dict[str, str]:
    base = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    return {"Location": f"{base}/{tail}", "Content-Location": base}


_LAST_EVENT_ID_MAX = 2**53


def _parse_last_event_id(value: str | None) -> int:
    if value is None or value == "":
        return -1
    try:
        seq = int(value)
    except ValueError:
        raise Invalid(f"Last-Event-ID {value!r} is not an event id of this server") from None
    # Ids count a run's events from 0. One past any id a run can reach means "nothing
    # more" (and keeps a 40-digit id inside the 64-bit range storage compares with).
    return max(-1, min(seq, _LAST_EVENT_ID_MAX))


def _join_modes(values: list[str] | None) -> list[str]:
    """The `stream_mode` query parameter of a join: repeated, a JSON array, or empty.

    The official client sends `stream_mode=` (empty) when the caller gave no mode,
    which means "every mode", not "none".
    """
    modes: list[str] = []
    for value in values or []:
        if value.startswith("["):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                modes += [str(m) for m in parsed if m]
                continue
        if value:
            modes.append(value)
    return modes


async def _filtered(batches: Any, modes: list[str] | None, always: frozenset[str] = _ALWAYS_RUN) -> Any:
    """Only the requested modes (and the `always` events)."""
    modes = _join_modes(modes)
    if not modes:
        async for batch in batches:
            yield batch
        return
    wanted = set(modes) | always
    if "messages-tuple" in wanted:
        wanted.add("messages")
    async for batch in batches:
        kept: list[Event] = [e for e in batch if e[1].split("|", 1)[0].split("/", 1)[0] in wanted]
        if kept:
            yield kept


def _stream_response(rt: Runtime, run: Record, *, after: int = -1, cancel_on_abort: bool,
                     modes: list[str] | None = None, headers: dict[str, str] | None = None) -> Response:
    return event_stream(
        _filtered(rt.runs.events(run, after), modes),
        heartbeat=rt.settings.heartbeat_seconds,
        headers=headers,
        on_abort=(lambda: rt.runs.cancel_on_disconnect(run)) if cancel_on_abort else None,
        closing=rt.runs.closing,
    )


async def _create(rt: Runtime, once: Idempotent, thread_id: str | None, body: RunCreate, *,
                  answered_at_end: bool = False) -> Record:
    """A new run, or with an Idempotency-Key already used for this body, the run that key created."""
    data = body.data()

    async def create() -> Record:
        return (await rt.runs.create(thread_id, data, answered_at_end=answered_at_end))[0]

    return await once(data, create)


async def _create_and_stream(rt: Runtime, once: Idempotent, thread_id: str | None, body: RunCreate) -> Response:
    run = await _create(rt, once, thread_id, body)
    # A resumable stream exists to outlive its connection, so by default it keeps the
    # run going when the client drops; any other stream cancels it.
    default = "continue" if body.stream_resumable else "cancel"
    cancel = (body.on_disconnect or default) == "cancel"
    return _stream_response(rt, run, cancel_on_abort=cancel, headers=_run_headers(run, "stream"))


async def _create_and_wait(rt: Runtime, once: Idempotent, request: Request, thread_id: str | None,
                           body: RunCreate) -> Response:
    run = await _create(rt, once, thread_id, body, answered_at_end=True)
    result = await _wait(rt, request, run, cancel_on_disconnect=body.on_disconnect == "cancel")
    return JSON(result, headers=_run_headers(run, "join"))


async def _wait(rt: Runtime, request: Request, run: Record, *, cancel_on_disconnect: bool) -> Any:
    """The run's final values; with `cancel_on_disconnect`, a client that leaves cancels the run."""
    if not cancel_on_disconnect:
        return await rt.runs.wait_for(run)  # no task of its own: nothing watches it meanwhile
    waiter = asyncio.ensure_future(rt.runs.wait_for(run))
    while not waiter.done():
        await asyncio.wait([waiter], timeout=0.5)
        if not waiter.done() and await request.is_disconnected():
            rt.runs.cancel_on_disconnect(run)
    return await waiter


# thread runs -------------------------------------------------------------------------
@router.post("/threads/{thread_id}/runs")
async def create_run(thread_id: str, body: RunCreate, rt: Runtime = Depends(runtime),
                     once: Idempotent = Depends(idempotent)) -> Response:
    run = await _create(rt, once, thread_id, body)
    return JSON(run, headers=_run_headers(run, "stream"))


@router.post("/threads/{thread_id}/runs/stream", responses=SSE)
async def stream_run(thread_id: str, body: RunCreate, rt: Runtime = Depends(runtime),
                     once: Idempotent = Depends(idempotent)) -> Response:
    return await _create_and_stream(rt, once, thread_id, body)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(thread_id: str, body: RunCreate, request: Request, rt: Runtime = Depends(runtime),
                   once: Idempotent = Depends(idempotent)) -> Response:
    return await _create_and_wait(rt, once, request, thread_id, body)


@router.get("/threads/{thread_id}/runs")
async def list_runs(thread_id: str, response: Response, limit: int = Query(10, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=INT_MAX),
                    status: str | None = None, select: list[RunField] | None = Query(None),
                    cursor: str | None = CURSOR, rt: Runtime = Depends(runtime)) -> Any:
    runs = paged(await rt.runs.list_page(thread_id, limit=limit, offset=offset, status=status, cursor=cursor),
                 response)
    # `select` (sent by both official clients) keeps only those fields, as on the official server.
    return [{k: r.get(k) for k in select} for r in runs] if select else runs


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: str, run_id: str, rt: Runtime = Depends(runtime)) -> Any:
    return await rt.runs.get(thread_id, run_id)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: str, run_id: str, rt: Runtime = Depends(runtime)) -> Response:
    await rt.delete_run(thread_id, run_id)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", status_code=202, responses=accepted_or_done())
async def cancel_run(thread_id: str, run_id: str, wait: bool = False,
                     action: Literal["interrupt", "rollback"] = "interrupt", rt: Runtime = Depends(runtime)) -> Response:
    await rt.runs.cancel(thread_id, run_id, wait=wait, action=action)
    if not wait:
        return Response(status_code=202)
    # As on the official server: 200 with the values the run streamed after the cancel was
    # asked; a cancelled run streams none, so the body is an empty object.
    return JSON({}, headers=_run_headers({"thread_id": thread_id, "run_id": run_id}, "join"))


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(thread_id: str, run_id: str, request: Request, cancel_on_disconnect: bool = False,
                   rt: Runtime = Depends(runtime)) -> Any:
    # The official JS client sends cancel_on_disconnect=0|1 on every join; honoured as on the official server.
    run = await rt.runs.get(thread_id, run_id)
    return await _wait(rt, request, run, cancel_on_disconnect=cancel_on_disconnect)


@router.get("/threads/{thread_id}/runs/{run_id}/stream", responses=SSE)
async def join_run_stream(thread_id: str, run_id: str, cancel_on_disconnect: bool = False,
                          stream_mode: list[str] | None = Query(None),
                          last_event_id: str | None = Header(None, alias="Last-Event-ID"),
                          rt: Runtime = Depends(runtime)) -> Response:
    run = await rt.runs.get(thread_id, run_id)
    return _stream_response(rt, run, after=_parse_last_event_id(last_event_id),
                            cancel_on_abort=cancel_on_disconnect, modes=stream_mode)


@router.get("/threads/{thread_id}/stream", responses=SSE)
async def join_thread_stream(thread_id: str, stream_mode: list[str] | None = Query(None),
                             rt: Runtime = Depends(runtime)) -> Response:
    await rt.threads.get(thread_id)
    modes = None if not stream_mode or stream_mode == ["run_modes"] else stream_mode
    return event_stream(_filtered(rt.runs.thread_events(thread_id), modes, _ALWAYS_THREAD),
                        heartbeat=rt.settings.heartbeat_seconds, closing=rt.runs.closing)


# stateless runs ------------------------------------------------------------------------
@router.post("/runs")
async def create_stateless_run(body: RunCreate, rt: Runtime = Depends(runtime),
                               once: Idempotent = Depends(idempotent)) -> Response:
    run = await _create(rt, once, None, body)
    return JSON(run, headers=_run_headers(run, "stream"))


@router.post("/runs/stream", responses=SSE)
async def stream_stateless_run(body: RunCreate, rt: Runtime = Depends(runtime),
                               once: Idempotent = Depends(idempotent)) -> Response:
    return await _create_and_stream(rt, once, None, body)


@router.post("/runs/wait")
async def wait_stateless_run(body: RunCreate, request: Request, rt: Runtime = Depends(runtime),
                             once: Idempotent = Depends(idempotent)) -> Response:
    return await _create_and_wait(rt, once, request, None, body)


@router.post("/runs/batch")
async def batch_runs(body: list[RunCreate], rt: Runtime = Depends(runtime),
                     once: Idempotent = Depends(idempotent)) -> Any:
    items = [item.data() for item in body]

    async def create() -> list[Record]:
        return [(await rt.runs.create(None, item))[0] for item in items]

    return await once(items, create)


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(body: RunsCancel, action: Literal["interrupt", "rollback"] = "interrupt",
                      rt: Runtime = Depends(runtime)) -> Response:
    await rt.runs.cancel_many({**body.data(), "action": action})
    return Response(status_code=204)
