"""The Postgres bus's tables (replicas without Redis): events, ends, cancels, thread logs, and their expiry."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

import pytest

from skeino.runtime.pgbus import PostgresBus
from skeino.runtime.threadlog import ProtocolEvent
from test_storage_contract import _postgres, new_id


@pytest.fixture
async def pg(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    store = _postgres(request).make()
    await store.open()
    yield store
    await store.close()


async def test_a_runs_log_replays_from_any_position_and_ends_once(pg: Any) -> None:
    run_id = new_id()
    await pg.bus_publish(run_id, [(0, "metadata", b"{}"), (1, "values", b"1")])
    await pg.bus_publish(run_id, [(2, "values", b"2")])
    assert await pg.bus_read(run_id, -1) == ([(0, "metadata", b"{}"), (1, "values", b"1"), (2, "values", b"2")], None)
    assert await pg.bus_read(run_id, 1) == ([(2, "values", b"2")], None)
    await pg.bus_end(run_id, "success", b'{"n": 1}')
    await pg.bus_end(run_id, "interrupted", b"null")  # the first end stands
    assert await pg.bus_read(run_id, 2) == ([], ("success", b'{"n": 1}'))
    assert await pg.bus_exists(run_id, ended_since=0)
    assert not await pg.bus_exists(run_id, ended_since=time.time() + 1)  # expired for readers
    await pg.bus_reset(run_id)
    assert await pg.bus_read(run_id, -1) == ([], None)
    assert not await pg.bus_exists(run_id, ended_since=0)


async def test_one_send_writes_a_runs_events_its_thread_events_and_its_end(pg: Any) -> None:
    run_id, thread_id = new_id(), new_id()
    await pg.bus_send(run_id, [(0, "metadata", b"{}")], thread_id, [(1, run_id, "values", ["a"], b"x")])
    assert await pg.bus_read(run_id, -1) == ([(0, "metadata", b"{}")], None)
    await pg.bus_send(run_id, [], thread_id, [(2, run_id, "lifecycle", [], b"y")])  # thread events only
    assert await pg.bus_read(run_id, -1) == ([(0, "metadata", b"{}")], None)
    await pg.bus_send(run_id, [(1, "values", b"1")], thread_id, [(3, run_id, "values", [], b"z")],
                      end=("success", b"{}"))
    assert await pg.bus_read(run_id, -1) == ([(0, "metadata", b"{}"), (1, "values", b"1")], ("success", b"{}"))
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in await pg.bus_thread_read(thread_id, 0)] == [
        (1, run_id, "values", ["a"], b"x"), (2, run_id, "lifecycle", [], b"y"), (3, run_id, "values", [], b"z")]
    await pg.bus_send(run_id, [(1, "values", b"again")], end=("error", b"null"))  # already there: kept as it was
    assert await pg.bus_read(run_id, 0) == ([(1, "values", b"1")], ("success", b"{}"))


async def test_expiry_takes_ended_logs_orphans_old_cancels_and_long_thread_logs(pg: Any) -> None:
    ended, orphan, live = new_id(), new_id(), new_id()
    for run_id in (ended, orphan, live):
        await pg.bus_publish(run_id, [(0, "metadata", b"{}")])
    await pg.bus_end(ended, "success", b"{}")
    await pg.bus_cancel(orphan, "interrupt")
    thread_id = new_id()
    await pg.bus_thread_publish(thread_id, [(i, live, "values", ["a"], b"x") for i in range(5)])
    now = time.time()

    await pg.bus_expire(keep_seconds=10, orphan_seconds=3600, thread_keep=3, now=now)
    assert await pg.bus_read(ended, -1) == ([(0, "metadata", b"{}")], ("success", b"{}"))  # not 10 s yet
    assert [r[1] for r in await pg.bus_thread_read(thread_id, 0)] == [2, 3, 4]  # the newest 3

    await pg.bus_expire(keep_seconds=10, orphan_seconds=3600, thread_keep=3, now=now + 11)
    assert await pg.bus_read(ended, -1) == ([], None)
    assert (await pg.bus_read(orphan, -1))[0] and await pg.bus_cancel_requested(orphan) == "interrupt"

    await pg.bus_expire(keep_seconds=10, orphan_seconds=3600, thread_keep=3, now=now + 3601)
    assert await pg.bus_read(orphan, -1) == ([], None) and await pg.bus_read(live, -1) == ([], None)
    assert await pg.bus_cancel_requested(orphan) is None
    assert await pg.bus_thread_read(thread_id, 0) == []


async def test_followers_on_another_replica_are_woken_by_notifications(pg: Any, request: pytest.FixtureRequest) -> None:
    other = _postgres(request).make()
    await other.open()
    here, there = PostgresBus(pg, 10), PostgresBus(other, 10)
    cancels: list[tuple[str, str]] = []
    there.on_cancel = lambda run_id, action: cancels.append((run_id, action))
    await here.start()
    await there.start()
    try:
        run_id = new_id()
        got: list[Any] = []

        async def follow() -> None:
            async for batch in there.follow(run_id, -1, _never):
                got.extend(batch)

        follower = asyncio.create_task(follow())
        await here.publish(run_id, [(0, "metadata", b"{}")])
        await here.publish(run_id, [(1, "values", b"1")])
        await here.end(run_id, "success", {"n": 1})
        await asyncio.wait_for(follower, 10)
        assert got == [(0, "metadata", b"{}"), (1, "values", b"1")]
        assert await there.wait(run_id, _never) == ("success", {"n": 1})

        await here.cancel(run_id, "rollback")
        async with asyncio.timeout(10):
            while not cancels:
                await asyncio.sleep(0.01)
        assert cancels == [(run_id, "rollback")] and await there.cancel_requested(run_id) == "rollback"

        # Events, v2 events and the end of another run in one write reach both kinds of follower.
        second, thread_id = new_id(), new_id()
        follower = asyncio.create_task(follow_into(there.follow(second, -1, _never), got := []))
        await here.send(second, [(0, "metadata", b"{}")], thread_id,
                        [ProtocolEvent(1, second, "values", ("b",), None, b"g")], ("success", None))
        await asyncio.wait_for(follower, 10)
        assert got == [(0, "metadata", b"{}")] and await there.wait(second, _never) == ("success", None)
        async with asyncio.timeout(10):
            async for batch in there.follow_thread(thread_id, 0):
                assert [(e.seq, e.run_id, e.frame) for e in batch] == [(1, second, b"g")]
                break

        thread_id = new_id()
        await here.publish_thread(thread_id, [ProtocolEvent(7, run_id, "values", ("a",), None, b"f")])
        async with asyncio.timeout(10):
            async for batch in there.follow_thread(thread_id, 6):
                assert [(e.seq, e.namespace, e.frame) for e in batch] == [(7, ("a",), b"f")]
                break
    finally:
        await here.stop()
        await there.stop()
        await other.close()


async def test_a_reader_told_to_stop_stops_between_reads(pg: Any) -> None:
    """Waiting and following end when `stop` is set, though the run has not ended (it executes here now)."""
    bus = PostgresBus(pg, 10)
    await bus.start()
    try:
        run_id, stop = new_id(), asyncio.Event()
        await pg.bus_send(run_id, [(0, "metadata", b"{}")])
        waiting = asyncio.create_task(bus.wait(run_id, _never, stop))
        got: list[Any] = []
        following = asyncio.create_task(follow_into(bus.follow(run_id, -1, _never, stop), got))
        async with asyncio.timeout(10):
            while not got:
                await asyncio.sleep(0.01)
        assert not waiting.done() and not following.done()
        stop.set()
        assert await asyncio.wait_for(waiting, 10) is None
        await asyncio.wait_for(following, 10)
        assert got == [(0, "metadata", b"{}")]
        # Set before the first read: nothing is read at all.
        assert await asyncio.wait_for(bus.wait(new_id(), _never, stop), 10) is None
    finally:
        await bus.stop()


async def follow_into(batches: AsyncIterator[list[Any]], into: list[Any]) -> None:
    async for batch in batches:
        into.extend(batch)


async def _never() -> bool:
    return False
