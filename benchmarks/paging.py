"""What a page of threads costs at its depth: `offset` against skeino's cursor (keyset).

Fills a database with N threads through the storage layer (SQLite in a temporary file, or
the Postgres database given, which should be empty), then reads the 10-thread page at
several depths of the newest-first list, by `offset` and by starting after the previous
row (what `?cursor=` does), in turn, `--samples` times each (p50 / p95 in ms), and a count
of the threads by their (indexed) `graph_id`, which all of them match. Storage
calls only: no HTTP, so the figures are the database's.

Examples:
  python benchmarks/paging.py --threads 100000
  python benchmarks/paging.py --threads 100000 --database-url postgresql://localhost/paging_empty
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _common import emit, environment_record, latency_fields, log, wall

PAGE = 10


def open_storage(directory: Path, database_url: str | None) -> Any:
    if database_url:
        from skeino.storage.postgres import PostgresStorage

        return PostgresStorage(database_url, pool_size=8)
    from skeino.storage.sqlite import SqliteStorage

    return SqliteStorage(directory / "paging.db")


async def fill(storage: Any, threads: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    todo = iter(range(threads))

    async def worker() -> None:
        for i in todo:
            # One thread in five shares its timestamp with the previous one: ties happen.
            at = (start + timedelta(milliseconds=i - i % 5 // 4)).isoformat()
            await storage.thread_create({"thread_id": str(uuid.uuid4()), "created_at": at, "updated_at": at,
                                         "state_updated_at": at, "metadata": {"graph_id": "agent"}, "status": "idle",
                                         "config": {}, "values": None, "interrupts": {}, "error": None})

    await asyncio.gather(*(worker() for _ in range(8)))


async def page(storage: Any, offset: int, after: Any = None) -> list[Any]:
    return await storage.thread_search(ids=None, metadata=None, values=None, status=None, limit=PAGE, offset=offset,
                                       sort_by="created_at", sort_order="desc", after=after)


async def scenario(args: argparse.Namespace) -> None:
    from skeino.storage import query

    with tempfile.TemporaryDirectory(prefix="skeino-paging-") as directory:
        storage = open_storage(Path(directory), args.database_url)
        await storage.open()
        try:
            log(f"writing {args.threads} threads")
            t0 = wall()
            await fill(storage, args.threads)
            emit({"bench": "fill", "threads": args.threads, "seconds": round(wall() - t0, 1)})
            if args.database_url:
                async with storage._pool.connection() as conn:
                    await conn.execute("ANALYZE threads")
            for depth in (0, args.threads // 10, args.threads // 2, args.threads - PAGE):
                before = (await page(storage, depth - 1))[0] if depth else None
                after = (before["created_at"], before[query.POS]) if before else None
                assert [r["thread_id"] for r in await page(storage, 0, after)] == \
                    [r["thread_id"] for r in await page(storage, depth)], "the two pages differ"
                times: dict[str, list[float]] = {"offset": [], "cursor": []}
                for _ in range(args.samples):
                    for how in times:
                        t0 = wall()
                        await (page(storage, depth) if how == "offset" else page(storage, 0, after))
                        times[how].append(wall() - t0)
                for how, samples in times.items():
                    emit({"bench": "page", "threads": args.threads, "depth": depth, "by": how,
                          **latency_fields(samples)})
            # Every thread matches: the count reads the whole index range of the key.
            counted, samples = 0, []
            for _ in range(args.samples):
                t0 = wall()
                counted = await storage.thread_count(ids=None, metadata={"graph_id": "agent"}, values=None, status=None)
                samples.append(wall() - t0)
            emit({"bench": "count", "threads": args.threads, "matches": counted, **latency_fields(samples)})
        finally:
            await storage.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=100_000)
    p.add_argument("--samples", type=int, default=50, help="reads of each page, each way")
    p.add_argument("--database-url", help="an empty Postgres database (default: SQLite in a temporary file)")
    args = p.parse_args()
    emit(environment_record("paging.py", "asyncio", {"options": vars(args)}))
    asyncio.run(scenario(args))


if __name__ == "__main__":
    sys.exit(main())
