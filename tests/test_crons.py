"""Crons with the official client against a real server: records, validation, and runs that fire
when the scheduler's clock (SKEINO_CLOCK_OFFSET_SECONDS) reaches a tick, exactly once across restarts."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import BadRequestError, NotFoundError, UnprocessableEntityError

from helpers import is_iso, names, raw, tag
from receiver import Receiver
import serverproc
from serverproc import Server


def at(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


async def test_thread_cron_create_search_count_patch_delete(client: Any, no_server_errors: None) -> None:
    thread = await client.threads.create()
    tid, mark = thread["thread_id"], tag()
    cron = await client.crons.create_for_thread(
        tid, "counter", schedule="*/5 * * * *", input={"count": 1}, metadata={"mark": mark},
        multitask_strategy="enqueue", interrupt_before=["increment"], config={"tags": ["t"]}, context={"c": 1},
    )
    assert cron["thread_id"] == tid and cron["schedule"] == "*/5 * * * *" and cron["enabled"] is True
    assert cron["on_run_completed"] is None and cron["metadata"] == {"mark": mark}
    assert cron["payload"]["input"] == {"count": 1} and cron["payload"]["multitask_strategy"] == "enqueue"
    assert cron["payload"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    assert cron["payload"]["interrupt_before"] == ["increment"] and cron["payload"]["context"] == {"c": 1}
    nxt = at(cron["next_run_date"])
    assert nxt > datetime.now(timezone.utc) and nxt.minute % 5 == 0 and nxt.second == 0
    assert is_iso(cron["created_at"]) and cron["end_time"] is None

    found = await client.crons.search(thread_id=tid)
    assert [c["cron_id"] for c in found] == [cron["cron_id"]]
    assert await client.crons.count(thread_id=tid) == 1
    assert await client.crons.count(metadata={"mark": mark}) == 1

    off = await client.crons.update(cron["cron_id"], enabled=False)
    assert off["enabled"] is False and off["schedule"] == cron["schedule"]
    assert await client.crons.search(thread_id=tid, enabled=True) == []
    assert [c["cron_id"] for c in await client.crons.search(thread_id=tid, enabled=False)] == [cron["cron_id"]]
    on = await client.crons.update(cron["cron_id"], enabled=True, schedule="0 * * * *", metadata={"more": 1})
    assert on["enabled"] is True and on["schedule"] == "0 * * * *" and at(on["next_run_date"]).minute == 0
    assert on["metadata"] == {"mark": mark, "more": 1}
    fetched = (await raw(client, "GET", f"/runs/crons/{cron['cron_id']}")).json()
    assert fetched == on

    await client.crons.delete(cron["cron_id"])
    assert await client.crons.count(thread_id=tid) == 0
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])
    assert (await raw(client, "GET", f"/runs/crons/{cron['cron_id']}")).status_code == 404


async def test_stateless_crons_search_sort_select_and_pages(client: Any, no_server_errors: None) -> None:
    mark = tag()
    end = datetime(2099, 1, 1, tzinfo=timezone.utc)
    kept = await client.crons.create("counter", schedule="0 9 * * *", timezone="Europe/Paris", end_time=end,
                                     on_run_completed="keep", metadata={"mark": mark, "n": 1}, input={"count": 0})
    dropped = await client.crons.create("counter", schedule="30 * * * *", metadata={"mark": mark, "n": 2},
                                        enabled=False)
    assert kept["thread_id"] is None and kept["on_run_completed"] == "keep" and dropped["on_run_completed"] == "delete"
    assert kept["timezone"] == "Europe/Paris" and at(kept["end_time"]) == end
    # 9:00 in Paris is 8:00 or 7:00 UTC, depending on the season.
    assert at(kept["next_run_date"]).astimezone(timezone.utc).hour in (7, 8)

    by_next = await client.crons.search(metadata={"mark": mark}, sort_by="next_run_date", sort_order="asc")
    assert [c["cron_id"] for c in by_next] == sorted(
        [kept["cron_id"], dropped["cron_id"]], key=lambda i: at({c["cron_id"]: c for c in (kept, dropped)}[i]["next_run_date"]))
    newest = await client.crons.search(metadata={"mark": mark}, limit=1)
    assert [c["cron_id"] for c in newest] == [dropped["cron_id"]]
    second = await client.crons.search(metadata={"mark": mark}, limit=1, offset=1)
    assert [c["cron_id"] for c in second] == [kept["cron_id"]]
    page = await raw(client, "POST", "/runs/crons/search", json={"metadata": {"mark": mark}, "limit": 1})
    assert page.headers.get("x-pagination-next") == "1"
    selected = await client.crons.search(metadata={"mark": mark, "n": 1}, select=["cron_id", "schedule"])
    assert selected == [{"cron_id": kept["cron_id"], "schedule": "0 9 * * *"}]
    assert await client.crons.count(assistant_id="counter", metadata={"mark": mark}) == 2
    cleared = await client.crons.update(kept["cron_id"], end_time=None)
    assert cleared["end_time"] is None
    for cron in (kept, dropped):
        await client.crons.delete(cron["cron_id"])


async def test_invalid_input_is_refused_by_name(client: Any, no_server_errors: None) -> None:
    thread = await client.threads.create()
    for schedule in ("not a cron", "61 * * * *", "* * * * * *"):
        with pytest.raises(UnprocessableEntityError) as err:
            await client.crons.create("counter", schedule=schedule)
        assert schedule in err.value.response.json()["detail"]
        with pytest.raises(UnprocessableEntityError):
            await client.crons.create_for_thread(thread["thread_id"], "counter", schedule=schedule)
    with pytest.raises(UnprocessableEntityError) as err:
        await client.crons.create("counter", schedule="* * * * *", timezone="Mars/Olympus")
    assert "Mars/Olympus" in err.value.response.json()["detail"]
    cron = await client.crons.create("counter", schedule="* * * * *", enabled=False)
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update(cron["cron_id"], schedule="every tuesday")
    with pytest.raises(BadRequestError):
        await client.crons.update(cron["cron_id"])
    await client.crons.delete(cron["cron_id"])
    with pytest.raises(NotFoundError):
        await client.crons.create("no-such-assistant", schedule="* * * * *")
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread("00000000-0000-0000-0000-000000000000", "counter", schedule="* * * * *")
    assert (await raw(client, "GET", "/runs/crons/not-a-uuid")).status_code == 422
    res = await raw(client, "POST", "/runs/crons", json={"assistant_id": "counter", "schedule": "* * * * *", "bogus": 1})
    assert res.status_code == 422 and names(res, "bogus")
    info = (await raw(client, "GET", "/info")).json()
    assert info["flags"]["crons"] is True


async def test_the_sync_client_too(server: Server) -> None:
    mark = {"mark": tag()}

    def drive() -> None:
        c = get_sync_client(url=server.url)
        cron = c.crons.create("counter", schedule="*/10 * * * *", metadata=mark, enabled=False)
        assert c.crons.count(metadata=mark) == 1
        assert c.crons.update(cron["cron_id"], schedule="*/20 * * * *")["schedule"] == "*/20 * * * *"
        assert [x["cron_id"] for x in c.crons.search(metadata=mark, enabled=False)] == [cron["cron_id"]]
        c.crons.delete(cron["cron_id"])
        assert c.crons.count(metadata=mark) == 0

    await asyncio.to_thread(drive)


# firing -------------------------------------------------------------------------------------------
def offset_to(moment: float) -> str:
    """SKEINO_CLOCK_OFFSET_SECONDS that puts the server's clock at `moment` now."""
    return str(moment - time.time())


async def runs_of(c: Any, thread_id: str, count: int, timeout: float = 120) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while len(runs := await c.runs.list(thread_id)) < count:
            await asyncio.sleep(0.1)
    return runs


@pytest.fixture
async def later(tmp_path: Path) -> AsyncIterator[tuple[Any, Receiver]]:
    """A server whose clock starts 20 s before a minute boundary a day from now, and a webhook receiver.

    An every-minute cron created on it comes due within seconds of real time, not a minute.
    (Should the server take longer than that to start, the next minute still comes.)
    """
    boundary = math.ceil((time.time() + 86400) / 60) * 60
    receiver = Receiver(fail_first=0)
    srv = Server(db=tmp_path / "skeino.db", env={"SKEINO_CLOCK_OFFSET_SECONDS": offset_to(boundary - 20),
                                                 "SKEINO_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}).start()
    c = get_client(url=srv.url)
    yield c, receiver
    await c.http.client.aclose()
    srv.stop()
    receiver.close()


async def test_every_minute_cron_fires_an_ordinary_run(later: tuple[Any, Receiver]) -> None:
    c, _ = later
    thread = await c.threads.create()
    cron = await c.crons.create_for_thread(thread["thread_id"], "counter", schedule="* * * * *",
                                           input={"count": 41}, metadata={"from": "cron"})
    due = at(cron["next_run_date"])
    assert due > datetime.now(timezone.utc) + timedelta(hours=23)  # the server's clock, not ours
    [run] = await runs_of(c, thread["thread_id"], 1)
    assert run["metadata"]["from"] == "cron"
    assert run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    await c.runs.join(thread["thread_id"], run["run_id"])
    assert (await c.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"
    assert (await c.threads.get_state(thread["thread_id"]))["values"]["count"] == 44  # three nodes add one each
    [after] = await c.crons.search(thread_id=thread["thread_id"])
    assert at(after["next_run_date"]) == due + timedelta(minutes=1)


async def test_a_cron_run_obeys_its_multitask_strategy(later: tuple[Any, Receiver]) -> None:
    c, _ = later
    thread = await c.threads.create()
    tid = thread["thread_id"]
    busy = await c.runs.create(tid, "slow", input={"seconds": 600})
    await c.crons.create_for_thread(tid, "slow", schedule="* * * * *", input={"seconds": 0},
                                    multitask_strategy="interrupt")
    runs = await runs_of(c, tid, 2)
    fired = next(r for r in runs if r["run_id"] != busy["run_id"])
    await c.runs.join(tid, fired["run_id"])
    assert (await c.runs.get(tid, fired["run_id"]))["status"] == "success"
    assert (await c.runs.get(tid, busy["run_id"]))["status"] == "interrupted"


async def test_stateless_cron_deletes_or_keeps_its_threads(later: tuple[Any, Receiver]) -> None:
    c, receiver = later
    for keep in ("keep", "delete"):
        await c.crons.create("counter", schedule="* * * * *", input={"count": 0}, metadata={"keep": keep},
                             on_run_completed=keep, webhook=f"{receiver.url}/{keep}")
    # Each tick runs on a new thread; the webhooks say which, once the runs have ended.
    [(_, kept)] = await receiver.wait_for("/keep", 1, timeout=120)
    [(_, dropped)] = await receiver.wait_for("/delete", 1, timeout=120)
    assert kept["status"] == dropped["status"] == "success"
    assert kept["metadata"]["keep"] == "keep" and kept["kwargs"]["temporary"] is False
    assert (await c.threads.get_state(kept["thread_id"]))["values"] == {"count": 3}
    assert [r["run_id"] for r in await c.runs.list(kept["thread_id"])] == [kept["run_id"]]
    assert dropped["kwargs"]["temporary"] is True and dropped["values"] == {"count": 3}
    async with asyncio.timeout(30):
        while (await raw(c, "GET", f"/threads/{dropped['thread_id']}")).status_code != 404:
            await asyncio.sleep(0.05)


async def test_a_tick_missed_while_down_fires_once_at_start_and_never_again(fresh_db: Path) -> None:
    # A yearly schedule: no clock reaches its next tick by accident while the test runs.
    first = Server(db=fresh_db).start()
    c = get_client(url=first.url)
    thread = await c.threads.create()
    cron = await c.crons.create_for_thread(thread["thread_id"], "counter", schedule="0 0 1 1 *", input={"count": 0})
    await c.http.client.aclose()
    first.stop()
    due = at(cron["next_run_date"]).timestamp()
    clock = {"SKEINO_CLOCK_OFFSET_SECONDS": offset_to(due + 5)}  # the server was down when the tick came

    for attempt in range(2):
        srv = Server(db=fresh_db, env=clock).start()
        c = get_client(url=srv.url)
        try:
            # The start-up pass runs before the server answers, so the run is already there.
            runs = await c.runs.list(thread["thread_id"])
            assert len(runs) == 1, f"start {attempt + 1}: {len(runs)} runs"
            await c.runs.join(thread["thread_id"], runs[0]["run_id"])
            [current] = await c.crons.search(thread_id=thread["thread_id"])
            assert at(current["next_run_date"]).year == at(cron["next_run_date"]).year + 1
        finally:
            await c.http.client.aclose()
            srv.stop()


async def test_a_claim_left_by_a_crash_starts_its_run_once(fresh_db: Path) -> None:
    """A crash between taking a tick and writing its run leaves the claim in the database:
    the next start writes that run, unless it was written already."""

    def leave_claim(run_id: str) -> None:  # what the crash left behind (the server is stopped)
        serverproc.sql(fresh_db, "UPDATE crons SET claimed_run_id = ?", (run_id,))

    srv = Server(db=fresh_db).start()
    c = get_client(url=srv.url)
    thread = await c.threads.create()
    await c.crons.create_for_thread(thread["thread_id"], "counter", schedule="0 0 1 1 *", input={"count": 0})
    await c.http.client.aclose()
    srv.stop()
    claimed = str(uuid.uuid4())
    for _ in range(2):
        leave_claim(claimed)
        srv = Server(db=fresh_db).start()
        c = get_client(url=srv.url)
        try:
            runs = await c.runs.list(thread["thread_id"])
            assert [r["run_id"] for r in runs] == [claimed]
            await c.runs.join(thread["thread_id"], claimed)
        finally:
            await c.http.client.aclose()
            srv.stop()
