"""Unit tests of the in-memory run event log (no server needed)."""

from __future__ import annotations

import asyncio
import tracemalloc

from skeino.runtime.broker import RunStream


def test_log_keeps_right_sized_event_data() -> None:
    """A kept event costs about its encoded size, not the encoder's working buffer."""
    stream = RunStream(run_id="r", thread_id="t", resumable=False)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            stream.publish("messages", [{"content": f" tok{i}", "type": "AIMessageChunk"}, {"meta": "x" * 900}])
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    encoded = sum(len(data) for _, _, data in stream.events)
    assert kept < 2 * encoded, (kept, encoded)


def test_two_followers_each_get_every_event_once() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        stream = RunStream(run_id="r", thread_id="t", resumable=False)

        async def follow() -> list[int]:
            seen: list[int] = []
            async for batch in stream.follow():
                seen.extend(seq for seq, _, _ in batch)
            return seen

        readers = [asyncio.create_task(follow()) for _ in range(2)]
        for i in range(20):
            stream.publish("values", {"i": i})
            if i % 5 == 0:
                await asyncio.sleep(0)
        stream.finish("success", None)
        first, second = await asyncio.gather(*readers)
        return first, second

    first, second = asyncio.run(scenario())
    assert first == list(range(20))
    assert second == list(range(20))
