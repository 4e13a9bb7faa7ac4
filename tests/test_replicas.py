"""Several `skeino serve` processes on one Postgres, with Redis or Postgres alone as their bus, driven
with the official SDK.

Any replica accepts a run and any may execute it; the test reads which one holds the run's
lease from the database, then talks to the other: it streams, joins, resumes and cancels
a run executing elsewhere. Every scenario runs once per bus: Redis (skipped unless
SKEINO_TEST_REDIS_URL is set) and Postgres LISTEN/NOTIFY (skipped unless SKEINO_TEST_DATABASE_URL is).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError

import pgdb
from serverproc import Server
from skeino.runtime.crons import tick_run_id

pytestmark = pytest.mark.skipif(pgdb.BASE_URL is None, reason="SKEINO_TEST_DATABASE_URL is not set")

LEASE = 2.0  # seconds; a dead replica's runs are recovered within LEASE + LEASE / 3


def replica(tmp: Path, url: str, name: str, bus: str, **env: str) -> Server:
    """A replica on database `url` whose bus is "redis" or "postgres" (no Redis configured)."""
    return Server(db=tmp / f"{name}.db", extra_args=["--database-url", url],
                  env={"SKEINO_REDIS_URL": (pgdb.REDIS_URL or "") if bus == "redis" else "",
                       "SKEINO_BUS": bus, "SKEINO_REPLICA_ID": name,
                       "SKEINO_RUN_LEASE_SECONDS": str(LEASE), **env})


@pytest.fixture(scope="module", params=["redis", "postgres"])
def bus(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and pgdb.REDIS_URL is None:
        pytest.skip("SKEINO_TEST_REDIS_URL is not set")
    return request.param


@pytest.fixture(scope="module")
def database(bus: str) -> Iterator[str]:
    url = pgdb.create_database()
    yield url
    pgdb.drop_database(url)


@pytest.fixture(scope="module")
def pair(database: str, bus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    tmp = tmp_path_factory.mktemp("replicas")
    servers = {name: replica(tmp, database, name, bus) for name in ("a", "b")}
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
async def clients(pair: dict[str, Server]) -> AsyncIterator[dict[str, Any]]:
    made = {name: get_client(url=server.url) for name, server in pair.items()}
    yield made
    for client in made.values():
        await client.http.client.aclose()


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def owner_of(database: str, run_id: str) -> str:
    """The replica executing the run, from its lease (once it is running)."""
    async def read() -> str | None:
        async with await psycopg.AsyncConnection.connect(database) as conn:
            row = await (await conn.execute("SELECT owner FROM runs WHERE run_id = %s AND status = 'running'",
                                            (run_id,))).fetchone()
        return row[0] if row else None

    return await wait_until(read, timeout=60, what=f"run {run_id} to be claimed")


def other(name: str) -> str:
    return "b" if name == "a" else "a"


async def test_a_run_executing_on_one_replica_is_streamed_joined_resumed_and_cancelled_on_the_other(
        clients: dict[str, Any], pair: dict[str, Server], database: str) -> None:
    thread = await clients["a"].threads.create()
    tid = thread["thread_id"]
    run = await clients["a"].runs.create(tid, "slow", input={"seconds": 60}, stream_resumable=True)
    here = other(await owner_of(database, run["run_id"]))
    client = clients[here]

    # Join on the replica that is not executing it: the events already sent, then live ones.
    seen: list[Any] = []
    async for part in client.runs.join_stream(tid, run["run_id"], stream_mode="values"):
        seen.append(part)
        if part.event == "values" and part.data.get("steps") == ["before"]:
            break
    assert {p.event for p in seen} == {"values"}  # the requested mode only

    # Resume after the first event with Last-Event-ID: the stream goes on from event 1.
    async with httpx.AsyncClient(base_url=pair[here].url, timeout=30) as http:
        async with http.stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream",
                               headers={"Last-Event-ID": "0"}) as response:
            assert response.status_code == 200
            first_id = None
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    first_id = line.split(":", 1)[1].strip()
                    break
    assert first_id == "1"

    # Cancel through this replica: the executing one stops the run and records it.
    await client.runs.cancel(tid, run["run_id"], wait=True)
    for c in clients.values():
        assert (await c.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await clients["a"].threads.get(tid))["status"] in ("idle", "interrupted")
    # The thread is free: the next run, sent to either replica, runs to the end.
    assert await clients["b"].runs.wait(tid, "counter", input={"count": 0}) == {"count": 3}


async def test_waits_and_streams_get_results_whichever_replica_executes(clients: dict[str, Any]) -> None:
    for i in range(6):
        client = clients["ab"[i % 2]]
        thread = await client.threads.create()
        assert await client.runs.wait(thread["thread_id"], "counter", input={"count": i}) == {"count": i + 3}
        parts = [p async for p in clients["ab"[(i + 1) % 2]].runs.stream(
            thread["thread_id"], "counter", input={"count": 10}, stream_mode="values")]
        assert [p.event for p in parts][0] == "metadata" and parts[-1].data == {"count": 13}


async def test_reject_admits_exactly_one_of_two_simultaneous_runs(clients: dict[str, Any]) -> None:
    for _ in range(5):
        tid = (await clients["a"].threads.create())["thread_id"]
        outcomes = await asyncio.gather(
            *(clients[name].runs.create(tid, "slow", input={"seconds": 0.2}, multitask_strategy="reject")
              for name in ("a", "b")),
            return_exceptions=True,
        )
        assert sum(isinstance(o, ConflictError) for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, dict) for o in outcomes) == 1, outcomes
        winner = next(o for o in outcomes if isinstance(o, dict))
        await clients["a"].runs.join(tid, winner["run_id"])


async def test_enqueued_runs_execute_in_submission_order_across_replicas(clients: dict[str, Any]) -> None:
    tid = (await clients["a"].threads.create())["thread_id"]
    # One after another, alternating replicas: exactly the submission order.
    made = [await clients["ab"[i % 2]].runs.create(tid, "slow", input={"steps": [f"r{i}"], "seconds": 0.05})
            for i in range(6)]
    await clients["b"].runs.join(tid, made[-1]["run_id"])
    steps = (await clients["a"].threads.get_state(tid))["values"]["steps"]
    assert [s for s in steps if s.startswith("r")] == [f"r{i}" for i in range(6)]

    # All at once to both replicas: they execute in the order they were accepted in.
    tid = (await clients["b"].threads.create())["thread_id"]
    made = await asyncio.gather(*(clients["ab"[i % 2]].runs.create(
        tid, "slow", input={"steps": [f"r{i}"], "seconds": 0.05}) for i in range(8)))
    for run in made:
        await clients["a"].runs.join(tid, run["run_id"])
    accepted = [r["run_id"] for r in reversed(await clients["a"].runs.list(tid, limit=20))]
    marker = {r["run_id"]: r["kwargs"]["input"]["steps"][0] for r in made}
    steps = (await clients["a"].threads.get_state(tid))["values"]["steps"]
    assert [s for s in steps if s.startswith("r")] == [marker[r] for r in accepted]


async def test_a_killed_replicas_run_is_failed_by_a_survivor_and_its_thread_freed(
        bus: str, tmp_path: Path) -> None:
    database = pgdb.create_database()  # its own: the run must go to one of these two
    servers = {name: replica(tmp_path, database, name, bus).start() for name in ("k1", "k2")}
    clients = {name: get_client(url=s.url) for name, s in servers.items()}
    try:
        tid = (await clients["k1"].threads.create())["thread_id"]
        run = await clients["k1"].runs.create(tid, "slow", input={"seconds": 60})
        victim = await owner_of(database, run["run_id"])
        survivor = next(n for n in servers if n != victim)
        queued = await clients[survivor].runs.create(tid, "counter", input={"count": 0})
        servers[victim].kill()

        client = clients[survivor]
        started = time.monotonic()

        async def failed() -> bool:
            return (await client.runs.get(tid, run["run_id"]))["status"] == "error"

        await wait_until(failed, timeout=10 * LEASE, what="the survivor to fail the dead replica's run")
        # Bounded by the lease: it runs out LEASE after the last renewal, swept within LEASE / 3.
        assert time.monotonic() - started < 2 * LEASE + 2
        # The run queued behind it runs on the survivor; the thread ends up free.
        assert await client.runs.join(tid, queued["run_id"]) == {"count": 3}
        assert (await client.threads.get(tid))["status"] == "idle"
    finally:
        for c in clients.values():
            await c.http.client.aclose()
        for s in servers.values():
            s.stop()
        pgdb.drop_database(database)


# A paused process's Redis reads time out when it resumes: the warning is the truth then.
@pytest.mark.allow_server_log(r"reading its cancel signal failed: Timeout reading")
@pytest.mark.parametrize("recovery", ["error", "retry"])
async def test_a_paused_replica_that_lost_its_lease_comes_back_and_records_nothing(
        tmp_path: Path, bus: str, recovery: str) -> None:
    """SIGSTOP the replica executing a run until a survivor takes it over, then SIGCONT it."""
    database = pgdb.create_database()  # its own: the survivor must be the other of these two
    servers = {name: replica(tmp_path, database, f"{name}-{recovery}", bus, SKEINO_RECOVERY=recovery).start()
               for name in ("p1", "p2")}
    clients = {name: get_client(url=s.url) for name, s in servers.items()}
    victim: Server | None = None
    try:
        tid = (await clients["p1"].threads.create())["thread_id"]
        run = await clients["p1"].runs.create(tid, "slow", input={"seconds": 1})
        owner = await owner_of(database, run["run_id"])
        name = owner.split("-")[0]
        victim, survivor = servers[name], clients[other_of(servers, name)]
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGSTOP)
        expected = "error" if recovery == "error" else "success"

        async def recovered() -> bool:
            return (await survivor.runs.get(tid, run["run_id"]))["status"] == expected

        await wait_until(recovered, timeout=20 * LEASE, what=f"the survivor to end the run as {expected}")
        victim.proc.send_signal(signal.SIGCONT)
        # Back, the paused replica finds the run gone from it (its renewal or its next write is
        # refused) and says so; by then whatever it would have written is refused.
        assert victim.log is not None
        await wait_until(lambda: _logged(victim, "another replica took it over"), timeout=60,
                         what="the paused replica to notice it lost the run")

        got = await survivor.runs.get(tid, run["run_id"])
        assert got["status"] == expected
        thread = await survivor.threads.get(tid)
        state = await survivor.threads.get_state(tid)
        if recovery == "error":
            assert thread["status"] == "error"
            assert thread["error"]["error"] == "ServerRestart"
            assert "after" not in (thread["values"] or {}).get("steps", [])
            assert "after" not in state["values"].get("steps", [])
        else:
            # Executed once to the end by the survivor: each step recorded once.
            assert thread["status"] == "idle"
            assert thread["values"]["steps"] == ["before", "nap", "after"]
            assert state["values"]["steps"] == ["before", "nap", "after"]
        # The thread is free for the next run, on either replica.
        for c in clients.values():
            assert await c.runs.wait(tid, "counter", input={"count": 0}) == {"count": 3}
    finally:
        if victim is not None and victim.proc is not None and victim.proc.poll() is None:
            victim.proc.send_signal(signal.SIGCONT)
        for c in clients.values():
            await c.http.client.aclose()
        for s in servers.values():
            s.stop()
        pgdb.drop_database(database)


async def _logged(server: Server, text: str) -> bool:
    return server.log is not None and text in server.log.read_text()


def other_of(servers: dict[str, Server], name: str) -> str:
    return next(n for n in servers if n != name)


async def test_protocol_v2_streams_a_run_executing_on_the_other_replica(
        clients: dict[str, Any], pair: dict[str, Server], database: str) -> None:
    """The v2 thread stream on one replica carries a run that another replica executes."""
    thread = await clients["a"].threads.create()
    tid = thread["thread_id"]
    run = await clients["a"].runs.create(tid, "slow", input={"seconds": 1})
    here = other(await owner_of(database, run["run_id"]))
    async with clients[here].threads.stream(tid, assistant_id="slow") as stream:
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            async for event in stream.events:
                seen.append(event)
                if event["method"] == "lifecycle" and event["params"]["data"]["event"] == "completed":
                    break
        kinds = [e["method"] for e in seen]
        assert kinds[0] == "lifecycle" and "values" in kinds
        # A reconnect on the executing replica with the cursor replays nothing twice.
        wanted = [e for e in seen if e["method"] in ("lifecycle", "values")]
        async with httpx.AsyncClient(base_url=pair[other(here)].url, timeout=10) as http:
            async with http.stream("POST", f"/threads/{tid}/stream/events",
                                   json={"channels": ["lifecycle", "values"], "since": wanted[1]["seq"]}) as response:
                rest: list[dict[str, Any]] = []
                async with asyncio.timeout(20):
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            rest.append(json.loads(line[6:]))
                            if len(rest) == len(wanted) - 2:
                                break
        assert rest == wanted[2:]


async def test_serve_workers_are_replicas_of_one_database(bus: str, tmp_path: Path) -> None:
    # One run at a time per process: two slow runs at once need both workers. (A database of
    # its own: no other replica may take either run.)
    database = pgdb.create_database()
    server = replica(tmp_path, database, "w", bus, SKEINO_MAX_CONCURRENT_RUNS="1")
    server.extra_args += ["--workers", "2"]
    server.env.pop("SKEINO_REPLICA_ID")
    server.start(timeout=120)  # two processes importing every graph
    client = get_client(url=server.url)
    try:
        threads = [(await client.threads.create())["thread_id"] for _ in range(2)]
        runs = [await client.runs.create(tid, "slow", input={"seconds": 60}) for tid in threads]
        owners = {await owner_of(database, run["run_id"]) for run in runs}
        assert len(owners) == 2, owners
        for tid, run in zip(threads, runs):
            await client.runs.cancel(tid, run["run_id"], wait=True)
            assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    finally:
        await client.http.client.aclose()
        server.stop()
        pgdb.drop_database(database)


def test_replicas_starting_together_on_a_new_database_both_come_up(tmp_path: Path, bus: str) -> None:
    # Both workers migrate a database no one has set up yet, at the same moment: the one
    # waiting for the migration lock must not hold the other's CREATE INDEX CONCURRENTLY.
    fresh = pgdb.create_database()
    server = replica(tmp_path, fresh, "w", bus)
    server.extra_args += ["--workers", "2"]
    server.env.pop("SKEINO_REPLICA_ID")
    try:
        server.start(timeout=120)
        assert httpx.get(f"{server.url}/ok", params={"check_db": 1}).status_code == 200
    finally:
        server.stop()
        pgdb.drop_database(fresh)


def test_workers_without_a_shared_database_are_refused_by_name(tmp_path: Path) -> None:
    # (An empty --database-url also keeps the suite's Postgres mode from naming one.)
    server = Server(db=tmp_path / "x.db", extra_args=["--workers", "2", "--database-url", ""])
    with pytest.raises(RuntimeError, match="SKEINO_DATABASE_URL"):
        server.start()


def test_cron_claims_left_by_a_crash_are_recovered_once_and_live_ones_left_alone(tmp_path: Path, bus: str) -> None:
    """Replicas starting together fire a tick whose claim a crash left, once; a fresh claim is another
    replica's tick in progress, and nobody fires it for that replica."""
    fresh = pgdb.create_database()
    first = replica(tmp_path, fresh, "c0", bus).start()
    crons = []
    try:
        with httpx.Client(base_url=first.url, timeout=30) as http:
            for _ in range(2):
                tid = http.post("/threads", json={}).json()["thread_id"]
                crons.append(http.post(f"/threads/{tid}/runs/crons", json={
                    "assistant_id": "counter", "schedule": "0 0 1 1 *", "input": {"count": 0}}).json()["cron_id"])
    finally:
        first.stop()
    stale, live = tick_run_id(now=time.time() - 3600), tick_run_id()
    with psycopg.connect(fresh, autocommit=True) as conn:
        for cron_id, run_id in zip(crons, (stale, live)):
            conn.execute("UPDATE crons SET claimed_run_id = %s WHERE cron_id = %s", (run_id, cron_id))
    server = replica(tmp_path, fresh, "c", bus)
    server.extra_args += ["--workers", "2"]
    server.env.pop("SKEINO_REPLICA_ID")

    def read() -> tuple[list[Any], list[Any]]:
        with psycopg.connect(fresh, autocommit=True) as conn:
            runs = conn.execute("SELECT run_id, status FROM runs ORDER BY seq").fetchall()
            claims = conn.execute("SELECT claimed_run_id FROM crons ORDER BY claimed_run_id").fetchall()
        return runs, claims

    try:
        server.start(timeout=120)
        deadline = time.monotonic() + 60
        runs, claims = read()
        while time.monotonic() < deadline and not (runs and runs[0][1] == "success"):
            time.sleep(0.1)
            runs, claims = read()
        assert runs == [(stale, "success")]
        assert sorted(claims, key=str) == sorted([(None,), (live,)], key=str)
    finally:
        server.stop()
        pgdb.drop_database(fresh)


@pytest.mark.allow_server_log(r"Traceback|Application startup failed")
def test_a_lone_server_and_replicas_do_not_share_a_database(tmp_path: Path, bus: str) -> None:
    # Without a bus a server keeps live events and cancels in its process: a second server,
    # lone or replica, on its database would accept runs its clients could not follow.
    database = pgdb.create_database()
    lone = Server(db=tmp_path / "lone.db", extra_args=["--database-url", database],
                  env={"SKEINO_REDIS_URL": "", "SKEINO_BUS": ""})
    try:
        lone.start()
        second = Server(db=tmp_path / "second.db", extra_args=["--database-url", database],
                        env={"SKEINO_REDIS_URL": "", "SKEINO_BUS": ""})
        with pytest.raises(RuntimeError, match="already serving this database alone|as a replica"):
            second.start()
        with pytest.raises(RuntimeError, match="already serving this database alone"):
            replica(tmp_path, database, "r", bus).start()
        lone.stop()
        # Once it is gone, replicas come up, and a lone server is refused beside them.
        first = replica(tmp_path, database, "r1", bus).start()
        try:
            with pytest.raises(RuntimeError, match="as a replica"):
                Server(db=tmp_path / "late.db", extra_args=["--database-url", database],
                       env={"SKEINO_REDIS_URL": "", "SKEINO_BUS": ""}).start()
        finally:
            first.stop()
    finally:
        lone.stop()
        pgdb.drop_database(database)
