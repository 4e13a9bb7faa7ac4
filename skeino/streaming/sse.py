"""Server-sent events: encode run events and serve them with heartbeats.

Each event goes out as `event: <name>\\ndata: <compact JSON>\\nid: <n>\\n\\n`; heartbeats
are `: ping` comment blocks, which every SSE client (the official SDKs included)
skips while they keep proxies from closing an idle connection.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

import anyio
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import AppStatus, EventSourceResponse

# sse-starlette would cancel every open stream the moment the server is told to stop,
# leaving clients an incomplete chunked body; skeino's streams end by themselves instead.
AppStatus.disable_automatic_graceful_drain()

from skeino.runtime.broker import Event


def encode_batch(batch: list[Event]) -> bytes:
    """One network write for every event ready now; data is compact JSON (no newlines)."""
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + data + b"\nid: " + str(seq).encode() + b"\n\n"
        for seq, name, data in batch
    )


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")


async def until(batches: AsyncIterator[list[Event]], stop: asyncio.Event) -> AsyncIterator[list[Event]]:
    """The batches, ending cleanly (between two batches) once `stop` is set."""
    it = batches.__aiter__()
    stopper = asyncio.ensure_future(stop.wait())
    try:
        while True:
            following = asyncio.ensure_future(it.__anext__())
            await asyncio.wait([following, stopper], return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                return
            try:
                yield following.result()
            except StopAsyncIteration:
                return
    finally:
        stopper.cancel()


def event_stream(
    batches: AsyncIterator[list[Event]],
    *,
    heartbeat: float,
    headers: dict[str, str] | None = None,
    on_abort: Callable[[], None] | None = None,
    closing: asyncio.Event | None = None,
) -> EventSourceResponse:
    """An SSE response; `on_abort` runs if the client leaves before the stream ends.

    A stream the server closes because it is shutting down (`closing` is set) is not
    the client leaving: the run then gets the shutdown grace period like any other.
    Streams are not cut when the stop signal arrives (see skeino.cli): a run's stream
    ends when its run does, within the grace period, with a complete body.
    """
    shutting_down = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for batch in batches:
                yield encode_batch(batch)
            finished = True
        finally:
            leaving = not shutting_down.is_set() and not (closing is not None and closing.is_set())
            if not finished and on_abort is not None and leaving:
                on_abort()

    return EventSourceResponse(body(), ping=heartbeat, headers=headers, sep="\n", ping_message_factory=_ping,
                               shutdown_event=shutting_down)
