"""What one run costs the Postgres database: transactions, rows and CPU, from Postgres's own counters.

Against a server already running on Postgres (`--url`, its `--database-url` named by
`--database`), `--runs` sequential runs of `counter` per variant:

  stateless  `POST /runs/wait`
  thread     `POST /threads`, then `POST /threads/{id}/runs/wait` (a new thread per run)

One JSON line per variant, per run: committed and rolled-back transactions and rows written
and read (`pg_stat_database` deltas of that database only), the CPU time of the database's
backends (the server's pooled connections, read from /proc: Postgres's background
processes are left out, as they are shared with every other database), and the server's own
CPU time when `--server-pid` is given. These do not depend on how loaded the machine is,
unlike latency: counts are exact and CPU times move only a little.

Backends send their statistics to `pg_stat_database` when idle, up to 10 s late, so each
reading waits 11 s after the last run; the figures are then exact to the transaction.

Example:
  createdb bench && skeino serve --config benchmarks/langgraph.json --port 8123 \\
      --database-url postgresql://postgres@127.0.0.1:5432/bench &
  python benchmarks/pg_cost.py --url http://127.0.0.1:8123 --server-pid $! \\
      --admin-url postgresql://postgres@127.0.0.1:5432/postgres --database bench
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import httpx
import psycopg
from _common import emit, environment_record, log, proc_cpu_seconds

BODY = {"assistant_id": "counter", "input": {"count": 0}}
_STATS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted", "tup_returned",
          "tup_fetched")
_FLUSH_WAIT = 11.0  # idle backends report their statistics within 10 s


def _backend_cpu(pid: int) -> float:
    """CPU seconds of one Postgres backend so far; 0 if it is gone."""
    return proc_cpu_seconds(pid) or 0.0


def _reading(admin: psycopg.Connection[Any], database: str) -> tuple[dict[str, int], dict[int, float]]:
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(f"SELECT {', '.join(_STATS)} FROM pg_stat_database WHERE datname = %s",
                        (database,)).fetchone()
    if row is None:
        raise SystemExit(f"no database named {database!r}")
    pids = [r[0] for r in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))]
    return dict(zip(_STATS, row)), {pid: _backend_cpu(pid) for pid in pids}


def measure(args: argparse.Namespace, variant: str, run: Callable[[], None]) -> dict[str, Any]:
    for _ in range(args.warmup):
        run()
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        time.sleep(_FLUSH_WAIT)
        stats0, cpu0 = _reading(admin, args.database)
        server0 = proc_cpu_seconds(args.server_pid) if args.server_pid else None
        t0 = time.perf_counter()
        for _ in range(args.runs):
            run()
        elapsed = time.perf_counter() - t0
        cpu1 = {pid: _backend_cpu(pid) for pid in cpu0}
        server1 = proc_cpu_seconds(args.server_pid) if args.server_pid else None
        time.sleep(_FLUSH_WAIT)
        stats1, _ = _reading(admin, args.database)
    n = args.runs
    delta = {k: (stats1[k] - stats0[k]) / n for k in _STATS}
    record = {
        "bench": "pg_cost", "variant": variant, "runs": n, "mean_ms": round(elapsed / n * 1000, 2),
        "commits_per_run": round(delta["xact_commit"], 2), "rollbacks_per_run": round(delta["xact_rollback"], 2),
        "rows_written_per_run": round(delta["tup_inserted"] + delta["tup_updated"] + delta["tup_deleted"], 2),
        "rows_read_per_run": round(delta["tup_returned"] + delta["tup_fetched"], 2),
        "postgres_backend_cpu_ms_per_run": round(sum(cpu1[p] - cpu0[p] for p in cpu0) / n * 1000, 3),
        "postgres_backends": len(cpu0),
    }
    if server0 is not None and server1 is not None:
        record["server_cpu_ms_per_run"] = round((server1 - server0) / n * 1000, 3)
    if args.label:
        record["label"] = args.label
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the skeino server on Postgres")
    p.add_argument("--database", required=True, help="the name of the database the server uses")
    p.add_argument("--admin-url", required=True, help="a connection to read pg_stat_* from (any database)")
    p.add_argument("--server-pid", type=int, help="the server's pid, to report its CPU time per run")
    p.add_argument("--runs", type=int, default=300, help="measured runs per variant (default 300)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--variants", type=lambda s: s.split(","), default=["stateless", "thread"])
    p.add_argument("--label", help="free text copied into every figure")
    args = p.parse_args()
    emit(environment_record("pg_cost.py", "sync"))
    with httpx.Client(base_url=args.url, timeout=60) as http:
        def stateless() -> None:
            http.post("/runs/wait", json=BODY).raise_for_status()

        def thread() -> None:
            thread_id = http.post("/threads", json={}).raise_for_status().json()["thread_id"]
            http.post(f"/threads/{thread_id}/runs/wait", json=BODY).raise_for_status()

        for variant in args.variants:
            log(f"{variant}: {args.runs} runs ...")
            emit(measure(args, variant, {"stateless": stateless, "thread": thread}[variant]))


if __name__ == "__main__":
    main()
