"""Cost as work piles up: the same reads on a database holding 1k, 10k, 100k runs.

One server, one database, filled in steps through the HTTP API with real runs (so
checkpoints, writes and run records are what months of use leave behind): N runs on N/10
threads of three graphs (`counter`, `pipeline`, `hitl`), thread metadata with a few keys
(`tenant`, `project`, `owner`; skeino stamps `graph_id` and `assistant_id`), about 3% of runs
failing and the `hitl` threads interrupted. After each step the script measures, one request
at a time and each in turn (so load from elsewhere hits all alike), p50/p95 of:

  create_wait         POST /threads + POST /threads/{id}/runs/wait (counter)
  search_graph        POST /threads/search {"metadata": {"graph_id": ...}}, limit 10
  search_two_keys     ... {"graph_id": ..., "tenant": ...}
  search_owner        ... {"owner": ...}
  search_unindexed    ... {"project": ...} (a key without an index, for contrast)
  search_status       ... {"status": "interrupted"}
  count_graph         POST /threads/count {"metadata": {"graph_id": ...}}
  run_list            GET /threads/{id}/runs of a random filled thread
  get_state           GET /threads/{id}/state
  history             POST /threads/{id}/history {"limit": 10}
  store_search        POST /store/items/search in a namespace of 10,000 items, limit 10
  deep_offset         POST /threads/search, newest first, at offset = half the threads, limit 10
  deep_cursor         the same page through skeino's cursor (?cursor= from X-Skeino-Cursor)

Figures (one JSON line each): `fill` per step (runs/s, server CPU ms per run),
`reads` per step and operation, `footprint` per step (server RSS, database bytes and bytes
per run). Database bytes are the SQLite file and its WAL (so only with a started server or
--db), or on Postgres (--database-url) `pg_database_size`; bytes per run is their growth
since the store items were put, over the runs made. On Postgres the tables are analysed
after each fill (see analyze()).

With --direct-above R, runs past R are written straight through the storage layer (ten per
thread, same metadata and status mix, no checkpoints), so 100k runs take a minute instead of
an hour: the thread, count and run-list figures then see the full table; state and history
are read on the threads made by real runs. On Postgres they are written through
PostgresStorage, to the database the server uses.

Examples:
  python benchmarks/scale.py                          # 1k and 10k runs
  python benchmarks/scale.py --sizes 1000,10000,100000 --direct-above 10000
  python benchmarks/scale.py --database-url postgresql://localhost/scale_empty --direct-above 10000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from _common import (
    DEFAULT_CONFIG, CpuMeter, ServerProcess, check_loopback, emit, environment_record, http_client,
    latency_fields, log, loop_name, parse_list, proc_memory_kb, run_main, sigterm_as_exit, wall,
)

GRAPHS = ("counter", "pipeline", "hitl")
WEIGHTS = (0.6, 0.25, 0.15)
TENANTS, PROJECTS, OWNERS = 10, 50, 100
STORE_NAMESPACE = ["bench", "scale", "items"]
STORE_ITEMS = 10_000


class Filler:
    """Adds threads and runs to the server; remembers what it made, to read it back."""

    def __init__(self, client: Any, seed: int) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.threads: list[tuple[str, str]] = []  # (thread_id, graph)
        self.runs = 0
        self.errors = 0
        self.direct_threads = 0  # threads written by fill_direct (not in `threads`)

    async def thread(self) -> tuple[str, str]:
        graph = self.rng.choices(GRAPHS, WEIGHTS)[0]
        metadata = {"tenant": f"t{self.rng.randrange(TENANTS)}", "project": f"p{self.rng.randrange(PROJECTS)}",
                    "owner": f"u{self.rng.randrange(OWNERS)}"}
        r = await self.client.post("/threads", json={"metadata": metadata})
        r.raise_for_status()
        made = (r.json()["thread_id"], graph)
        self.threads.append(made)
        return made

    async def run(self, thread_id: str, graph: str, k: int) -> None:
        body: dict[str, Any] = {"assistant_id": graph}
        if graph == "counter":
            # One run in 30 fails (a string cannot be counted): failed runs are part of the mix.
            body["input"] = {"count": "x" if self.rng.random() < 1 / 30 else 0}
        elif graph == "pipeline":
            body["input"] = {"value": "v"}
        elif k % 2 == 1 and k != 9:  # hitl: interrupt, resume, ..., and end interrupted
            body["command"] = {"resume": "yes"}
        else:
            body["input"] = {"task": "t"}
        r = await self.client.post(f"/threads/{thread_id}/runs/wait", json=body)
        self.runs += 1
        self.errors += r.status_code >= 500

    async def fill(self, runs: int, concurrency: int) -> None:
        """`runs` more runs, ten per new thread, `concurrency` threads at a time."""
        todo = asyncio.Queue[int]()
        for _ in range(max(1, runs // 10)):
            todo.put_nowait(10)

        async def worker() -> None:
            while not todo.empty():
                n = todo.get_nowait()
                thread_id, graph = await self.thread()
                for k in range(n):
                    await self.run(thread_id, graph, k)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def open_storage(db: Path | None, database_url: str | None) -> Any:
    """The storage layer on the server's own database."""
    if database_url:
        from skeino.storage.postgres import PostgresStorage

        return PostgresStorage(database_url, pool_size=8)
    from skeino.storage.sqlite import SqliteStorage

    return SqliteStorage(db)  # type: ignore[arg-type]


async def fill_direct(storage: Any, filler: Filler, runs: int, assistants: dict[str, str]) -> None:
    """`runs` more runs, ten per thread, written through the storage layer (no checkpoints).

    Thread and run records are shaped as the server writes them after a run; their threads
    have no checkpoints, so state and history are read on the threads filled by real runs.
    Eight threads at a time: one at a time, Postgres would spend most of it on round trips."""
    todo = max(1, runs // 10)

    async def worker() -> None:
        nonlocal todo
        while todo > 0:
            todo -= 1
            await fill_thread(storage, filler, assistants)

    await storage.open()
    try:
        await asyncio.gather(*(worker() for _ in range(8)))
    finally:
        await storage.close()


async def fill_thread(storage: Any, filler: Filler, assistants: dict[str, str]) -> None:
    """One thread and its ten runs, as fill_direct writes them."""
    from datetime import datetime, timezone

    graph = filler.rng.choices(GRAPHS, WEIGHTS)[0]
    now = datetime.now(timezone.utc).isoformat()
    stamp = {"graph_id": graph, "assistant_id": assistants[graph]}
    metadata = {"tenant": f"t{filler.rng.randrange(TENANTS)}", "project": f"p{filler.rng.randrange(PROJECTS)}",
                "owner": f"u{filler.rng.randrange(OWNERS)}", **stamp}
    thread_id = str(uuid.uuid4())
    status = "interrupted" if graph == "hitl" else "idle"
    await storage.thread_create({"thread_id": thread_id, "created_at": now, "updated_at": now,
                                 "state_updated_at": now, "metadata": metadata, "status": status,
                                 "config": {}, "values": {}, "interrupts": {}, "error": None})
    for k in range(10):
        run_id = str(uuid.uuid4())
        run_status = ("interrupted" if graph == "hitl" and k % 2 == 0 else
                      "error" if filler.rng.random() < 1 / 30 else "success")
        configurable = {"run_id": run_id, "thread_id": thread_id, **stamp}
        await storage.run_create({
            "run_id": run_id, "thread_id": thread_id, "assistant_id": assistants[graph], "created_at": now,
            "updated_at": now, "status": run_status, "metadata": {"created_by": "system", **stamp},
            "kwargs": {"input": {}, "config": {"configurable": configurable,
                                               "metadata": {"created_by": "system", **stamp,
                                                            "thread_id": thread_id}}},
            "multitask_strategy": "enqueue", "run_at": time.time()}, reject_if_busy=False)
    filler.direct_threads += 1
    filler.runs += 10


async def fill_store(client: Any, concurrency: int) -> None:
    async def put(start: int) -> None:
        for i in range(start, STORE_ITEMS, concurrency):
            r = await client.put("/store/items", json={"namespace": STORE_NAMESPACE, "key": f"k{i}",
                                                       "value": {"i": i, "text": f"item {i}"}})
            r.raise_for_status()

    await asyncio.gather(*(put(s) for s in range(concurrency)))


def read_ops(client: Any, filler: Filler, rng: random.Random,
             deep: tuple[int, str | None]) -> dict[str, Callable[[], Awaitable[Any]]]:
    def graph() -> str:
        return rng.choice(GRAPHS)

    def thread_id() -> str:
        return rng.choice(filler.threads)[0]

    async def create_wait() -> Any:
        r = await client.post("/threads", json={"metadata": {"tenant": "t0", "owner": "u0"}})
        r.raise_for_status()
        return await client.post(f"/threads/{r.json()['thread_id']}/runs/wait",
                                 json={"assistant_id": "counter", "input": {"count": 0}})

    def search(body: Callable[[], dict[str, Any]]) -> Callable[[], Awaitable[Any]]:
        return lambda: client.post("/threads/search", json={"limit": 10, **body()})

    return {
        "create_wait": create_wait,
        "search_graph": search(lambda: {"metadata": {"graph_id": graph()}}),
        "search_two_keys": search(lambda: {"metadata": {"graph_id": graph(), "tenant": f"t{rng.randrange(TENANTS)}"}}),
        "search_owner": search(lambda: {"metadata": {"owner": f"u{rng.randrange(OWNERS)}"}}),
        "search_unindexed": search(lambda: {"metadata": {"project": f"p{rng.randrange(PROJECTS)}"}}),
        "search_status": search(lambda: {"status": "interrupted"}),
        "count_graph": lambda: client.post("/threads/count", json={"metadata": {"graph_id": graph()}}),
        "run_list": lambda: client.get(f"/threads/{thread_id()}/runs"),
        "get_state": lambda: client.get(f"/threads/{thread_id()}/state"),
        "history": lambda: client.post(f"/threads/{thread_id()}/history", json={"limit": 10}),
        "store_search": lambda: client.post("/store/items/search",
                                            json={"namespace_prefix": STORE_NAMESPACE, "limit": 10}),
        "deep_offset": lambda: client.post("/threads/search", json={"limit": 10, "offset": deep[0]}),
        **({"deep_cursor": lambda: client.post("/threads/search", params={"cursor": deep[1]}, json={"limit": 10})}
           if deep[1] else {}),
    }


async def deep_page(client: Any, threads: int) -> tuple[int, str | None]:
    """The offset of the page half-way down the newest-first thread list, and the cursor to it."""
    offset = threads // 2
    r = await client.post("/threads/search", json={"limit": 1, "offset": offset - 1})
    return offset, r.headers.get("x-skeino-cursor")


async def measure_reads(client: Any, filler: Filler, samples: int, step: dict[str, Any]) -> None:
    """Every operation in turn, `samples` rounds: load from outside hits them all alike."""
    rng = random.Random(7)
    ops = read_ops(client, filler, rng, await deep_page(client, step["threads"]))
    times: dict[str, list[float]] = {name: [] for name in ops}
    errors = dict.fromkeys(ops, 0)
    for round_ in range(samples + min(10, samples)):
        for name, op in ops.items():
            t0 = wall()
            r = await op()
            if round_ >= min(10, samples):  # the first rounds warm caches the same way at every step
                times[name].append(wall() - t0)
                errors[name] += r.status_code >= 400
    for name in ops:
        emit({"bench": "reads", **step, "op": name, **latency_fields(times[name]), "errors": errors[name]})


async def analyze(database_url: str) -> None:
    """Refresh the planner's statistics after a fill, as autovacuum does a while after a bulk load.

    Without them (autovacuum off, or not yet run) Postgres takes the metadata indexes for
    nearly empty and sorts every match of a search instead of reading the first page off the
    creation-time index: 15 ms instead of 0.2 at 100k runs."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("ANALYZE")


async def db_bytes(db: Path | None, database_url: str | None = None) -> tuple[int, int] | None:
    """(main file, write-ahead log) bytes of the SQLite database; (database, 0) on Postgres."""
    if database_url:
        import psycopg

        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            row = await (await conn.execute("SELECT pg_database_size(current_database())")).fetchone()
        return (row[0], 0) if row else None
    if db is None:
        return None
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size, (wal.stat().st_size if wal.exists() else 0)


async def scenario(args: argparse.Namespace, url: str, pid: int | None, db: Path | None) -> None:
    database_url = args.database_url
    async with http_client(url, args.concurrency) as client:
        log(f"putting {STORE_ITEMS} store items")
        await fill_store(client, args.concurrency)
        base = await db_bytes(db, database_url)
        filler = Filler(client, seed=1)
        found = (await client.post("/assistants/search", json={"limit": 100})).json()
        assistants = {a["graph_id"]: a["assistant_id"] for a in found if a["metadata"].get("created_by") == "system"}
        for size in parse_list(args.sizes):
            if size > filler.runs and args.direct_above is not None and filler.runs >= args.direct_above:
                if db is None and not database_url:
                    raise SystemExit("--direct-above needs the server's database: start one, or give --db "
                                     "or --database-url")
                log(f"writing runs up to {size} through the storage layer")
                before, t0 = filler.runs, wall()
                await fill_direct(open_storage(db, database_url), filler, size - filler.runs, assistants)
                emit({"bench": "fill", "direct": True, "runs": filler.runs, "added": filler.runs - before,
                      "seconds": round(wall() - t0, 1)})
            elif size > filler.runs:
                log(f"filling to {size} runs")
                before = filler.runs
                t0 = wall()
                with CpuMeter(pid) as cpu:
                    await filler.fill(size - filler.runs, args.concurrency)
                elapsed = wall() - t0
                made = filler.runs - before
                emit({"bench": "fill", "runs": filler.runs, "threads": len(filler.threads), "added": made,
                      "concurrency": args.concurrency, "seconds": round(elapsed, 1),
                      "runs_per_s": round(made / elapsed, 1), "server_errors": filler.errors,
                      **cpu.per_item_fields(made)})
            if database_url:
                await analyze(database_url)
            step = {"runs": filler.runs, "threads": len(filler.threads) + filler.direct_threads,
                    "direct_runs": filler.direct_threads * 10}
            log(f"measuring at {filler.runs} runs")
            await measure_reads(client, filler, args.samples, step)
            now = await db_bytes(db, database_url)
            memory = proc_memory_kb(pid) if pid else {}
            # Per run: what the database grew by since the store items were put, WAL included
            # (its pages are the database's until a checkpoint copies them back).
            grown = sum(now) - sum(base) if now and base and not filler.direct_threads else None
            emit({"bench": "footprint", **step, "rss_mb": round(memory.get("VmRSS", 0) / 1024, 1) or None,
                  "db_file_bytes": now and now[0], "db_wal_bytes": now and now[1],
                  "db_bytes_per_run": round(grown / filler.runs) if grown and filler.runs else None})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000", help="runs in the database at each measuring step")
    p.add_argument("--samples", type=int, default=200, help="requests per read figure")
    p.add_argument("--concurrency", type=int, default=16, help="threads filled at once")
    p.add_argument("--direct-above", type=int, metavar="RUNS",
                   help="past this many runs, write further runs straight through the storage layer (fast, "
                        "no checkpoints: state and history stay on the real threads; bytes per run not reported)")
    p.add_argument("--url", help="measure this running server instead of starting one (loopback only)")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, for RSS and CPU")
    p.add_argument("--db", type=Path, help="with --url: the server's SQLite file, for its size")
    p.add_argument("--database-url", help="serve on this Postgres database (an empty one), or with --url: the "
                                          "server's, for its size and --direct-above")
    p.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"])
    p.add_argument("--keep-server-files", action="store_true")
    args = p.parse_args()
    sigterm_as_exit()
    emit(environment_record("scale.py", loop_name(args.loop), {"options": vars(args) | {"db": str(args.db)}}))
    if args.url:
        run_main(lambda: scenario(args, check_loopback(args.url), args.server_pid, args.db), args.loop)
        return
    server = ServerProcess(DEFAULT_CONFIG, keep_dir=args.keep_server_files)
    if args.database_url:
        server.command = lambda: [*ServerProcess.command(server), "--database-url", args.database_url]  # type: ignore[method-assign]
    with server:
        run_main(lambda: scenario(args, server.url, server.pid, None if args.database_url else server.db), args.loop)


if __name__ == "__main__":
    sys.exit(main())
