"""Server-sent events: encode run events and serve them with heartbeats."""

from __future__ import annotations

from typing import AsyncIterator, Callable

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
    """An SSE response; `on_abort` runs if the client leaves before the stream ends."""

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for batch in batches:
                yield encode_batch(batch)
            finished = True
        finally:
            if not finished and on_abort is not None:
                on_abort()

    return EventSourceResponse(body(), ping=heartbeat, headers=headers, sep="\n", ping_message_factory=_ping)
