"""Protocol v2, thread-centric: one event stream per thread, commands beside it.

- `POST /threads/{id}/stream/events`: SSE; the body is the filter (`channels`,
  `namespaces`, `depth`) and `since`, the last `seq` the client saw. The stream replays
  the kept events after `since`, then follows every run of the thread until the client leaves.
- `POST /threads/{id}/commands`: one command, one JSON answer.
- WebSocket `/threads/{id}/stream/events`: commands in, answers and events out; each
  `subscription.subscribe` adds a filter, and every event goes out once per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any, AsyncIterator

import orjson
from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

from skeino.api.commands import Commands, error, malformed, success
from skeino.api.deps import JSON, runtime
from skeino.api.responses import SSE, errors
from skeino.errors import BadRequest
from skeino.runtime.broker import Event
from skeino.runtime.core import Runtime
from skeino.runtime.threadlog import ProtocolEvent
from skeino.streaming.protocol import matches, parse_filter
from skeino.streaming.sse import event_stream, until

logger = logging.getLogger("skeino.protocol")
router = APIRouter(tags=["threads"], responses=errors(400, 404))

Filter = tuple[frozenset[str], list[list[str]] | None, int | None]
# How many sent seqs a socket remembers; clients also drop repeats by event_id.
_SENT_WINDOW = 10_000
# Commands a WebSocket sends that change the thread, so they need the runs:write scope.
_WRITES = {"run.start", "input.respond"}
# A command that is not one is refused in the protocol's own error shape, not as {"detail"}.
PROTOCOL_REFUSAL = {400: {"description": "Not a protocol command", "content": {"application/json": {}}}}


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON") from None


def _since(value: Any) -> int:
    if value is None:
        return -1
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest("since must be a non-negative integer: the seq of the last event received")
    return value


async def _filtered(events: AsyncIterator[list[ProtocolEvent]], wanted: Filter) -> AsyncIterator[list[Event]]:
    async for batch in events:
        out = [(e.seq, e.method, e.frame) for e in batch if matches(e, *wanted)]
        if out:
            yield out


@router.post("/threads/{thread_id}/stream/events", responses=SSE)
async def thread_events(thread_id: str, request: Request, rt: Runtime = Depends(runtime)) -> Response:
    body = await _json_body(request)
    wanted = parse_filter(body)
    if isinstance(wanted, str):
        raise BadRequest(wanted)
    since = _since(body.get("since"))
    if request.app.state.guard.custom is not None:
        await rt.threads.get(thread_id)  # with custom auth, only a thread the caller may read (else 404)
    # It follows the thread for good: it ends (cleanly) once the server stopped its runs.
    return event_stream(until(_filtered(rt.broker.protocol_events(thread_id, since), wanted), rt.drained),
                        heartbeat=rt.settings.heartbeat_seconds)


@router.post("/threads/{thread_id}/commands", responses=PROTOCOL_REFUSAL)
async def thread_command(thread_id: str, request: Request, rt: Runtime = Depends(runtime)) -> Response:
    payload = await _json_body(request)
    refusal = malformed(payload)
    if refusal is not None:
        return JSON(refusal, status_code=400)
    return JSON(await Commands(rt, thread_id).handle(payload))


class _Socket:
    """One WebSocket: its subscriptions, each a task that forwards matching events."""

    def __init__(self, websocket: WebSocket, rt: Runtime, thread_id: str) -> None:
        self.ws = websocket
        self.rt = rt
        self.commands = Commands(rt, thread_id)
        self.subscriptions: dict[str, tuple[Filter, asyncio.Task[None]]] = {}
        # Seqs sent lately (bounded, oldest forgotten first): an event goes out once per socket.
        self.sent: dict[int, None] = {}
        self.lock = asyncio.Lock()
        self.key = websocket.scope.get("state", {}).get("api_key")
        # With custom auth, events go only to a caller who may read the thread.
        self.guarded = websocket.app.state.guard.custom is not None
        self.thread_id = thread_id

    async def send(self, message: Any) -> None:
        data = message if isinstance(message, bytes) else orjson.dumps(message)
        async with self.lock:
            await self.ws.send_text(data.decode())

    def answer(self, reply: dict[str, Any]) -> dict[str, Any]:
        """An answer's meta names the last event this socket sent before it, as the official server's does."""
        if "meta" in reply and self.sent:
            reply["meta"] = {"applied_through_seq": next(reversed(self.sent))}
        return reply

    async def allowed(self) -> bool | None:
        """Whether this socket may see the thread's events (None: the thread does not exist yet)."""
        return True if not self.guarded else await self.rt.threads.visible(self.thread_id)

    async def forward(self, wanted: Filter, since: int) -> None:
        try:
            await self._forward(wanted, since)
        except Exception as exc:  # e.g. Redis went away: close, so the client reconnects and replays
            logger.warning("v2 WebSocket on thread %s stopped: %s: %s", self.thread_id, type(exc).__name__, exc)
            with contextlib.suppress(Exception):
                await self.ws.close(code=1011, reason="event stream interrupted")

    async def _forward(self, wanted: Filter, since: int) -> None:
        checked = False
        async for batch in self.rt.broker.protocol_events(self.thread_id, since):
            if not checked:  # a thread created after the subscription must be the caller's too
                if not await self.allowed():
                    await self.ws.close(code=4404, reason="Thread not found")
                    return
                checked = True
            for event in batch:
                if event.seq not in self.sent and matches(event, *wanted):
                    self.sent[event.seq] = None
                    if len(self.sent) > _SENT_WINDOW:
                        del self.sent[next(iter(self.sent))]
                    await self.send(event.frame)

    async def replayable(self, wanted: Filter, since: int) -> int:
        kept = await self.rt.broker.protocol_kept(self.thread_id)
        return sum(1 for e in kept if e.seq > since and matches(e, *wanted))

    def subscribe(self, wanted: Filter, since: int) -> str:
        sub_id = str(uuid.uuid4())
        task = asyncio.get_running_loop().create_task(self.forward(wanted, since))
        self.subscriptions[sub_id] = (wanted, task)
        return sub_id

    async def handle(self, command: dict[str, Any]) -> Any:
        cid, method, params = command["id"], command["method"], command.get("params") or {}
        if method in _WRITES and self.key is not None and not self.key.allows("runs:write"):
            return error(cid, "permission_denied", f"API key '{self.key.name}' lacks the scope 'runs:write'.")
        if method == "subscription.subscribe":
            wanted = parse_filter(params)
            if isinstance(wanted, str):
                return error(cid, "invalid_argument", wanted)
            if await self.allowed() is False:
                await self.ws.close(code=4404, reason="Thread not found")
                return None
            since = params.get("since") if isinstance(params.get("since"), int) else -1
            replayed = await self.replayable(wanted, since)
            return success(cid, {"subscription_id": self.subscribe(wanted, since), "replayed_events": replayed})
        if method == "subscription.unsubscribe":
            entry = self.subscriptions.pop(params.get("subscription_id"), None)
            if entry is None:
                return error(cid, "no_such_subscription", f"Unknown subscription: {params.get('subscription_id')}")
            entry[1].cancel()
            return success(cid, {})
        if method == "subscription.reconnect":
            return await self.reconnect(cid, params)
        return await self.commands.handle(command)

    async def reconnect(self, cid: int, params: dict[str, Any]) -> Any:
        """Resend, for the named (default: all) subscriptions, what came after `last_event_id`."""
        try:
            since = int(params.get("last_event_id") or -1)
        except (TypeError, ValueError):
            return error(cid, "invalid_argument", "last_event_id must be an event_id this server sent.")
        names = params.get("subscriptions") or list(self.subscriptions)
        unknown = [n for n in names if n not in self.subscriptions]
        if unknown:
            return error(cid, "no_such_subscription", f"Unknown subscription: {unknown[0]}")
        missed = 0
        for name in names:
            wanted, task = self.subscriptions[name]
            task.cancel()
            missed += await self.replayable(wanted, since)
            for seq in [s for s in self.sent if s > since]:
                del self.sent[seq]
            self.subscriptions[name] = (wanted, asyncio.get_running_loop().create_task(self.forward(wanted, since)))
        return success(cid, {"restored": True, "missed_events": missed})

    async def close(self) -> None:
        for _, task in self.subscriptions.values():
            task.cancel()
        for _, task in self.subscriptions.values():
            with contextlib.suppress(BaseException):
                await task


@router.websocket("/threads/{thread_id}/stream/events")
async def thread_socket(websocket: WebSocket, thread_id: str) -> None:
    rt: Runtime = websocket.app.state.runtime
    key = websocket.scope.get("state", {}).get("api_key")
    await websocket.accept()
    if key is not None and not key.allows("runs:read"):
        # Closed with 4000 + the HTTP status, which the official clients read as a refusal.
        await websocket.close(code=4403, reason=f"API key '{key.name}' lacks the scope 'runs:read'")
        return
    socket = _Socket(websocket, rt, thread_id)
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                await socket.send(error(None, "invalid_argument", "Protocol commands must be valid JSON."))
                continue
            refusal = malformed(payload)
            reply = refusal if refusal is not None else await socket.handle(payload)
            if reply is None:
                return  # the socket was closed
            await socket.send(socket.answer(reply))
    except WebSocketDisconnect:
        pass
    finally:
        await socket.close()
