"""Server-sent events: encode run events and serve them with heartbeats.

Each event goes out as `event: <name>\\ndata: <compact JSON>\\nid: <n>\\n\\n`; heartbeats
are `: ping` comment blocks, which every SSE client (the official SDKs included)
skips while they keep proxies from closing an idle connection.
"""

from __future__ import annotations

from typing import AsyncIterator, Callable

import anyio
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from skeino.runtime.broker import Event


def encode_batch(batch: list[Event]) -> bytes:
    """One network write for every event ready now; data is compact JSON (no newlines)."""
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + data + b"\nid: " + str(seq).encode() + b"\n\n"
        for seq, name, data in batch
    )


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping")


def event_stream(
    batches: AsyncIterator[list[Event]],
    *,
    heartbeat: float,
    headers: dict[str, str] | None = None,
    on_abort: Callable[[], None] | None = None,
) -> EventSourceResponse:
    """An SSE response; `on_abort` runs if the client leaves before the stream ends.

    A stream the server closes because it is shutting down is not the client
    leaving: the run then gets the shutdown grace period like any other.
    """
    shutting_down = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for batch in batches:
                yield encode_batch(batch)
            finished = True
        finally:
            if not finished and on_abort is not None and not shutting_down.is_set():
                on_abort()

    return EventSourceResponse(body(), ping=heartbeat, headers=headers, sep="\n", ping_message_factory=_ping,
                               shutdown_event=shutting_down)
