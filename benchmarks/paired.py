"""Run latency of several servers (and the in-process Postgres floor), interleaved run by run.

On a shared machine the load changes from one minute to the next, so two servers measured
one after the other are measured under different loads. Here every round makes one run on
each target in turn (the floor first, then each `--url` in the given order, the order
rotating every round), so load falls on all of them alike; the figures are p50s over the
rounds and the p50 of the per-round differences to the first server.

Variants as in runs.py: `stateless` times `POST /runs/wait`; `thread` times
`POST /threads` plus `POST /threads/{id}/runs/wait` (create+wait, a new thread each run);
the floor is `graph.ainvoke` on AsyncPostgresSaver with a new thread_id, as in runs.py, in
both variants' passes.

Example (two servers on Postgres, started by hand, and the floor on a third database):
  python benchmarks/paired.py --url old=http://127.0.0.1:8410 --url new=http://127.0.0.1:8411 \\
      --floor-database-url postgresql://postgres@127.0.0.1:5432/floor --rounds 300
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from typing import Any, Awaitable, Callable

from _common import (check_loopback, emit, environment_record, http_client, import_example_graph, latency_fields,
                     log, postgres_floor_checkpointer, run_main, wall)

BODY = {"assistant_id": "counter", "input": {"count": 0}}


async def main(args: argparse.Namespace) -> None:
    emit(environment_record("paired.py", args.loop))
    targets: list[tuple[str, Callable[[str], Awaitable[Any]]]] = []
    clients = []
    conn = None
    if args.floor_database_url:
        conn, saver = await postgres_floor_checkpointer(args.floor_database_url)
        graph = import_example_graph("pipeline", "counter").copy(update={"checkpointer": saver})

        async def floor(_variant: str) -> Any:
            return await graph.ainvoke({"count": 0}, {"configurable": {"thread_id": str(uuid.uuid4())}})

        targets.append(("floor", floor))
    for spec in args.url:
        name, _, url = spec.partition("=")
        http = http_client(check_loopback(url), 1)
        clients.append(http)

        async def server(variant: str, http: Any = http) -> Any:
            if variant == "stateless":
                r = await http.post("/runs/wait", json=BODY)
            else:
                thread_id = (await http.post("/threads", json={})).raise_for_status().json()["thread_id"]
                r = await http.post(f"/threads/{thread_id}/runs/wait", json=BODY)
            return r.raise_for_status().json()

        targets.append((name, server))
    try:
        for variant in args.variants:
            samples: dict[str, list[float]] = {name: [] for name, _ in targets}
            for i in range(args.warmup + args.rounds):
                shift = i % len(targets)
                for name, call in targets[shift:] + targets[:shift]:
                    t0 = wall()
                    result = await call(variant)
                    if result.get("count") != 3:
                        raise SystemExit(f"{name}: unexpected result {result!r}")
                    if i >= args.warmup:
                        samples[name].append(wall() - t0)
            # Differences within a round: to the floor, and to the first server.
            bases = [b for b in ("floor", args.url[0].partition("=")[0]) if b in samples]
            for name, values in samples.items():
                record = {"bench": "paired_latency", "variant": variant, "target": name, **latency_fields(values)}
                for base in bases:
                    if base != name:
                        diffs = [a - b for a, b in zip(values, samples[base])]
                        record[f"p50_minus_{base}_ms"] = round(statistics.median(diffs) * 1000, 3)
                emit(record)
            log(f"{variant}: done")
    finally:
        for http in clients:
            await http.aclose()
        if conn is not None:
            await conn.close()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", action="append", required=True, help="NAME=URL of a server (loopback); repeat")
    p.add_argument("--floor-database-url", help="also time the in-process floor on AsyncPostgresSaver here")
    p.add_argument("--rounds", type=int, default=200, help="timed runs per target and variant (default 200)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--variants", type=lambda s: s.split(","), default=["stateless", "thread"])
    p.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"])
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    run_main(lambda: main(args), args.loop)
