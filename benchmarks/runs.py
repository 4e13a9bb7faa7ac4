"""Run latency and throughput on the no-LLM three-node `counter` graph.

Figures (one JSON line each, on stdout):

  wait_latency  sequential runs, one at a time: p50/p95/p99 of
                - target=inprocess: `graph.ainvoke({"count": 0})` with a fresh thread_id,
                  AsyncSqliteSaver on a temporary SQLite file (the floor: LangGraph alone);
                - target=server, variant=thread: `POST /threads` (not timed, reported as
                  create_*), then `POST /threads/{id}/runs/wait` (timed);
                - target=server, variant=stateless: `POST /runs/wait` (timed).
  throughput    runs/s with C concurrent clients (default 1, 16, 64):
                - variant=thread: each client creates its own thread once, then runs
                  `POST /threads/{id}/runs/wait` back to back on it;
                - variant=stateless: each client runs `POST /runs/wait` back to back;
                - target=inprocess: C concurrent `ainvoke`s, fresh thread_id each.
  server_memory the server process's VmRSS / VmHWM at the end.

`client` says how the server was called: `httpx` (one keep-alive httpx.AsyncClient)
or `sdk` (the official langgraph_sdk client). With --url no server is started and any
server speaking the LangGraph Platform API that serves a `counter` graph is measured.

Examples:
  python benchmarks/runs.py
  python benchmarks/runs.py --n 500 --concurrency 1,16,64 --clients httpx
  python benchmarks/runs.py --url http://127.0.0.1:2024 --targets server
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from _common import (
    add_common_options,
    DEFAULT_CONFIG, CpuMeter, ServerProcess, auth_setup, check_loopback, emit, environment_record, floor_checkpointer,
    postgres_floor_checkpointer,
    http_client, import_example_graph, latency_fields, log, loop_name, parse_list, proc_memory_kb, raise_nofile,
    run_main, short_error, sigterm_as_exit, wall,
)

GRAPH = "counter"
INPUT = {"count": 0}
EXPECTED_COUNT = 3  # three nodes, each adds one


def _check(result: Any) -> bool:
    return isinstance(result, dict) and result.get("count") == EXPECTED_COUNT


# in-process floor --------------------------------------------------------------------
async def inprocess(args: argparse.Namespace) -> dict[str, Any]:
    """The same graph without a server: AsyncSqliteSaver on a temp file (or AsyncPostgresSaver), fresh thread per run."""
    counter = import_example_graph("pipeline", "counter")  # graphs/pipeline.py:counter
    tmp = Path(tempfile.mkdtemp(prefix="skeino-bench-floor-"))
    floors: dict[str, Any] = {}
    try:
        if args.floor_database_url:
            conn, saver = await postgres_floor_checkpointer(args.floor_database_url)
            common = {"bench": "", "target": "inprocess", "graph": GRAPH, "checkpointer": "AsyncPostgresSaver"}
        else:
            conn, saver = await floor_checkpointer(tmp, args.floor_sync)
            common = {"bench": "", "target": "inprocess", "graph": GRAPH, "checkpointer": "AsyncSqliteSaver",
                      "sqlite_synchronous": args.floor_sync.upper()}
        graph = counter.copy(update={"checkpointer": saver})  # as the server binds its checkpointer

        async def one() -> bool:
            result = await graph.ainvoke(dict(INPUT), {"configurable": {"thread_id": str(uuid.uuid4())}})
            return _check(result)

        for _ in range(args.warmup):
            await one()
        samples, errors = [], 0
        with CpuMeter(None) as cpu:
            for _ in range(args.n):
                t0 = wall()
                ok = await one()
                samples.append(wall() - t0)
                errors += not ok
        record = {**common, "bench": "wait_latency", "variant": "fresh_thread", **latency_fields(samples),
                  "errors": errors, **cpu.per_item_fields(len(samples))}
        floors["latency_p50_ms"] = record["p50_ms"]
        emit(record)

        for c in args.concurrency:
            record = await _throughput(c, _total_runs(args, c), lambda _i: None, lambda _s: one(), None)
            emit({**common, "bench": "throughput", "variant": "fresh_thread", **record})
            floors[f"runs_per_s_c{c}"] = record["runs_per_s"]
        await conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return floors


# server clients ------------------------------------------------------------------------
class HttpxClient:
    """Plain HTTP with one keep-alive httpx.AsyncClient."""

    name = "httpx"

    def __init__(self, url: str, connections: int, headers: dict[str, str]) -> None:
        self.http = http_client(url, connections, headers=headers)

    async def create_thread(self) -> str:
        r = await self.http.post("/threads", json={})
        r.raise_for_status()
        return r.json()["thread_id"]

    async def wait(self, thread_id: str | None) -> Any:
        path = f"/threads/{thread_id}/runs/wait" if thread_id else "/runs/wait"
        r = await self.http.post(path, json={"assistant_id": GRAPH, "input": INPUT})
        r.raise_for_status()
        return r.json()

    async def aclose(self) -> None:
        await self.http.aclose()


class SdkClient:
    """The official langgraph_sdk client (its own httpx client and defaults)."""

    name = "sdk"

    def __init__(self, url: str, connections: int, headers: dict[str, str]) -> None:
        from langgraph_sdk import get_client

        # The SDK sends an API key itself (x-api-key) and refuses it among other headers.
        headers = dict(headers)
        key = headers.pop("x-api-key", None)
        self.client = get_client(url=url, timeout=60.0, api_key=key, headers=headers)

    async def create_thread(self) -> str:
        return (await self.client.threads.create())["thread_id"]

    async def wait(self, thread_id: str | None) -> Any:
        return await self.client.runs.wait(thread_id, GRAPH, input=INPUT)

    async def aclose(self) -> None:
        await self.client.http.client.aclose()


CLIENTS = {"httpx": HttpxClient, "sdk": SdkClient}


# measurements ----------------------------------------------------------------------------
def _total_runs(args: argparse.Namespace, concurrency: int) -> int:
    # At least a few runs per client so start-up skew does not dominate.
    return max(args.throughput_runs, 8 * concurrency)


async def _throughput(concurrency: int, total: int, setup: Callable[[int], Awaitable[Any] | None],
                      run: Callable[[Any], Awaitable[bool]], server_pid: int | None) -> dict[str, Any]:
    """`concurrency` workers share `total` runs; each worker keeps the state `setup` gave it."""
    states = []
    for i in range(concurrency):
        made = setup(i)
        states.append(await made if made is not None else None)
    # Warm-up: one run per worker (connections opened, caches filled), not timed.
    await asyncio.gather(*(run(s) for s in states), return_exceptions=True)

    remaining = total
    samples: list[float] = []
    errors = 0
    first_error: str | None = None

    async def worker(state: Any) -> None:
        nonlocal remaining, errors, first_error
        while remaining > 0:
            remaining -= 1
            t0 = wall()
            try:
                ok = await run(state)
            except Exception as exc:
                ok = False
                first_error = first_error or short_error(exc)
            samples.append(wall() - t0)
            errors += not ok

    with CpuMeter(server_pid) as cpu:
        t0 = wall()
        await asyncio.gather(*(worker(s) for s in states))
        elapsed = wall() - t0
    record = {
        "concurrency": concurrency, "runs": len(samples), "errors": errors, "seconds": round(elapsed, 3),
        "runs_per_s": round((len(samples) - errors) / elapsed, 1),
        **latency_fields(samples), **cpu.per_item_fields(len(samples)),
    }
    if first_error:
        record["first_error"] = first_error
    return record


async def server_side(args: argparse.Namespace, url: str, server_pid: int | None, floors: dict[str, Any]) -> None:
    biggest = max(args.concurrency)
    for client_name in args.clients:
        client = CLIENTS[client_name](url, biggest, args.auth_headers)
        common = {"target": "server", "client": client_name, "graph": GRAPH, "auth": args.auth}
        if args.label:
            common["label"] = args.label
        try:
            # (a) sequential latency ----------------------------------------------------
            for variant in args.variants:
                stateless = variant == "stateless"
                for _ in range(args.warmup):
                    await client.wait(None if stateless else await client.create_thread())
                creates, waits, totals = [], [], []
                errors = 0
                first_error = None
                with CpuMeter(server_pid) as cpu:
                    for _ in range(args.n):
                        try:
                            t0 = wall()
                            thread_id = None if stateless else await client.create_thread()
                            t1 = wall()
                            result = await client.wait(thread_id)
                            t2 = wall()
                        except Exception as exc:
                            errors += 1
                            first_error = first_error or short_error(exc)
                            continue
                        if not _check(result):
                            errors += 1
                            first_error = first_error or f"unexpected result {result!r}"[:300]
                        waits.append(t2 - t1)
                        if not stateless:
                            creates.append(t1 - t0)
                            totals.append(t2 - t0)
                record = {"bench": "wait_latency", **common, "variant": variant, **latency_fields(waits),
                          "errors": errors}
                if creates:
                    record.update(latency_fields(creates, "create_"))
                    record.update(latency_fields(totals, "create_plus_wait_"))
                    for k in ("create_n", "create_plus_wait_n", "create_min_ms", "create_max_ms",
                              "create_plus_wait_min_ms", "create_plus_wait_max_ms"):
                        record.pop(k, None)
                if "latency_p50_ms" in floors and waits:
                    record["p50_over_inprocess_ms"] = round(record["p50_ms"] - floors["latency_p50_ms"], 3)
                record.update(cpu.per_item_fields(len(waits)))
                if first_error:
                    record["first_error"] = first_error
                emit(record)

            # (b) throughput --------------------------------------------------------------
            for c in args.concurrency:
                for variant in args.variants:
                    if variant == "stateless":
                        setup: Callable[[int], Any] = lambda _i: None
                    else:
                        setup = lambda _i: client.create_thread()  # noqa: E731 - its own thread per client

                    async def run(thread_id: Any) -> bool:
                        return _check(await client.wait(thread_id))

                    record = await _throughput(c, _total_runs(args, c), setup, run, server_pid)
                    out = {"bench": "throughput", **common, "variant": variant, **record}
                    if f"runs_per_s_c{c}" in floors:
                        out["inprocess_runs_per_s"] = floors[f"runs_per_s_c{c}"]
                    emit(out)
        finally:
            await client.aclose()
    if server_pid:
        mem = proc_memory_kb(server_pid)
        emit({"bench": "server_memory", "target": "server", "pid": server_pid,
              "rss_mb": round(mem.get("VmRSS", 0) / 1024, 1), "hwm_mb": round(mem.get("VmHWM", 0) / 1024, 1)})


async def main(args: argparse.Namespace) -> None:
    emit(environment_record("runs.py", loop_name(args.loop), {
        "n": args.n, "warmup": args.warmup, "concurrency": args.concurrency, "throughput_runs": args.throughput_runs,
        "url": args.url or "started by the script", "targets": args.targets, "clients": args.clients,
        "auth": args.auth,
    }))
    floors: dict[str, Any] = {}
    if "inprocess" in args.targets:
        log("in-process floor ...")
        floors = await inprocess(args)
    if "server" not in args.targets:
        return
    config, env, args.auth_headers = auth_setup(args.auth, args.config)
    if args.url:
        await server_side(args, check_loopback(args.url), args.server_pid, floors)
        return
    server = ServerProcess(config, env=env, keep_dir=args.keep_server_files)
    with server:
        await server_side(args, server.url, server.pid, floors)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="measure this already running server (loopback only); none is started")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, to report its CPU time and memory")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="langgraph.json for the started server")
    p.add_argument("--n", type=int, default=300, help="sequential runs per latency figure (default 300)")
    p.add_argument("--warmup", type=int, default=20, help="untimed runs before each latency figure (default 20)")
    p.add_argument("--concurrency", type=parse_list, default=[1, 16, 64],
                   help="comma-separated concurrent client counts for throughput (default 1,16,64)")
    p.add_argument("--throughput-runs", type=int, default=600,
                   help="runs per throughput figure (at least 8 per client; default 600)")
    p.add_argument("--floor-database-url", default=None,
                   help="in-process floor on AsyncPostgresSaver at this postgresql:// URL (to compare a "
                        "server on Postgres with LangGraph alone on the same database)")
    p.add_argument("--targets", type=lambda s: s.split(","), default=["inprocess", "server"],
                   help="what to measure: inprocess,server (default both)")
    p.add_argument("--clients", type=lambda s: s.split(","), default=["httpx", "sdk"],
                   help="how to call the server: httpx,sdk (default both)")
    p.add_argument("--variants", type=lambda s: s.split(","), default=["thread", "stateless"],
                   help="thread (POST /threads/{id}/runs/wait), stateless (POST /runs/wait); default both")
    add_common_options(p)
    args = p.parse_args(argv)
    for c in args.clients:
        if c not in CLIENTS:
            p.error(f"unknown client {c!r}; choose from {', '.join(CLIENTS)}")
    for v in args.variants:
        if v not in ("thread", "stateless"):
            p.error(f"unknown variant {v!r}")
    if not args.concurrency or min(args.concurrency) < 1:
        p.error("--concurrency needs positive integers")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sigterm_as_exit()
    raise_nofile(4 * max(arguments.concurrency) + 256)
    try:
        run_main(lambda: main(arguments), arguments.loop)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
