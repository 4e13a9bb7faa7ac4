"""Indexed thread filters, run against every backend of the main suite.

Thread search by the metadata keys clients and custom auth filter on (`graph_id`,
`assistant_id`, `owner`) and by status must look rows up through an index, not read the
whole table, and return exactly what the unindexed path (any other key) returns.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, Storage
from test_storage_contract import backend, new_id, storage, thread, ts  # noqa: F401  (fixtures)

STATUSES = ("idle", "busy", "interrupted", "error")


async def fill(storage: Storage) -> tuple[str, list[Record]]:
    """Threads whose indexed keys are mirrored in unindexed `*_copy` keys, and a few odd ones.

    String values end in this test's tag, so a search by indexed keys alone (the path that
    skips the row-by-row check) finds only this test's threads in a shared database."""
    tag = new_id()
    made: list[Record] = []
    for i in range(60):
        meta: dict[str, Any] = {"tag": tag, "graph_id": f"g{i % 3}.{tag}", "graph_copy": f"g{i % 3}.{tag}",
                                "assistant_id": f"a{i % 4}.{tag}", "assistant_copy": f"a{i % 4}.{tag}",
                                "owner": f"u{i % 5}.{tag}", "owner_copy": f"u{i % 5}.{tag}"}
        made.append(thread(metadata=meta, status=STATUSES[i % 4], created_at=ts(i % 7), updated_at=ts(i)))
    # Values whose text could be taken for a string: a number, objects, a list, absence.
    made.append(thread(metadata={"tag": tag, "graph_id": 1, "graph_copy": 1, "owner": {"$eq": f"u1.{tag}"},
                                 "owner_copy": {"$eq": f"u1.{tag}"}}, created_at=ts(3)))
    made.append(thread(metadata={"tag": tag, "graph_id": "1", "graph_copy": "1"}, created_at=ts(3)))
    made.append(thread(metadata={"tag": tag}, created_at=ts(3)))
    made.append(thread(metadata={"tag": tag, "graph_id": {"a": tag}, "graph_copy": {"a": tag},
                                 "owner": [f"u2.{tag}"], "owner_copy": [f"u2.{tag}"]}, created_at=ts(3)))
    for record in made:
        assert await storage.thread_create(record)
    return tag, made


async def search(storage: Storage, *, metadata: Record | None = None, status: str | None = None,
                 access: AccessFilter | None = None, sort_by: str = "created_at", offset: int = 0) -> list[str]:
    rows = await storage.thread_search(ids=None, metadata=metadata, values=None, status=status, limit=1000,
                                       offset=offset, sort_by=sort_by, sort_order="desc", access=access)
    return [r["thread_id"] for r in rows]


def copies(where: dict[str, Any]) -> dict[str, Any]:
    return {(k.replace("_id", "") + "_copy" if k in ("graph_id", "assistant_id") else
             "owner_copy" if k == "owner" else k): v for k, v in where.items()}


def tagged(value: Any, tag: str) -> Any:
    """A parameter with `{t}` in its strings replaced by the test's tag."""
    if isinstance(value, dict):
        return {k: tagged(v, tag) for k, v in value.items()}
    if isinstance(value, list):
        return [tagged(v, tag) for v in value]
    return value.replace("{t}", tag) if isinstance(value, str) else value


@pytest.mark.parametrize("wanted", [
    {"graph_id": "g1.{t}"}, {"assistant_id": "a2.{t}"}, {"owner": "u3.{t}"}, {"graph_id": "g0.{t}", "owner": "u2.{t}"},
    {"graph_id": "g2.{t}", "assistant_id": "a1.{t}", "owner": "u0.{t}"}, {"graph_id": "g1.{t}", "tag": "{t}"},
    {"graph_id": 1, "tag": "{t}"}, {"graph_id": "1", "tag": "{t}"}, {"owner": {"$eq": "u1.{t}"}},
    {"graph_id": "nope.{t}"}, {"graph_id": '{"a":"{t}"}'}, {"graph_id": '{"a": "{t}"}'}, {"owner": '["u2.{t}"]'},
    {"graph_id": {"a": "{t}"}},
])
async def test_metadata_search_and_count_match_the_unindexed_path(storage: Storage, wanted: Record) -> None:
    tag, made = await fill(storage)
    wanted = tagged(wanted, tag)
    indexed = await search(storage, metadata=wanted)
    assert indexed == await search(storage, metadata={**copies(wanted), "tag": tag})
    expected = {r["thread_id"] for r in made if all(r["metadata"].get(k) == v for k, v in wanted.items())}
    assert set(indexed) == expected
    for status in STATUSES:
        assert (await search(storage, metadata=wanted, status=status)
                == await search(storage, metadata={**copies(wanted), "tag": tag}, status=status))
    count = await storage.thread_count(ids=None, metadata=wanted, values=None, status=None)
    assert count == len(expected)


@pytest.mark.parametrize("where", [
    {"owner": "u2.{t}"}, {"owner": {"$eq": "u4.{t}"}}, {"owner": "u1.{t}", "graph_id": "g1.{t}"},
    {"$or": [{"owner": "u1.{t}"}, {"owner": "u2.{t}"}]}, {"owner": {"$eq": {"$eq": "u1.{t}"}}},
    {"owner": '["u2.{t}"]'}, {"owner": "u1.{t}", "tag": "{t}"},
])
async def test_access_filters_match_the_unindexed_path(storage: Storage, where: dict[str, Any]) -> None:
    tag, made = await fill(storage)
    where = tagged(where, tag)
    mirrored = {k: ([copies(g) for g in v] if k == "$or" else v) for k, v in copies(where).items()}
    for sort_by in ("created_at", "updated_at"):
        indexed = await search(storage, metadata={"tag": tag}, access=AccessFilter.of(where), sort_by=sort_by)
        assert indexed == await search(storage, metadata={"tag": tag}, access=AccessFilter.of(mirrored),
                                       sort_by=sort_by)
        alone = await search(storage, access=AccessFilter.of(where), sort_by=sort_by)
        assert alone == indexed
    expected = {r["thread_id"] for r in made if AccessFilter.of(where).matches(r["metadata"])}
    assert set(indexed) == expected
    count = await storage.thread_count(ids=None, metadata=None, values=None, status=None,
                                       access=AccessFilter.of(where))
    assert count == len(expected)


async def test_pages_neither_skip_nor_repeat_across_equal_creation_times(storage: Storage) -> None:
    tag, made = await fill(storage)
    whole = await search(storage, metadata={"graph_id": f"g0.{tag}"})
    paged: list[str] = []
    for offset in range(0, len(whole), 3):
        rows = await storage.thread_search(ids=None, metadata={"graph_id": f"g0.{tag}"}, values=None,
                                           status=None, limit=3, offset=offset, sort_by="created_at",
                                           sort_order="desc")
        paged += [r["thread_id"] for r in rows]
    assert paged == whole and len(set(paged)) == len(paged) == 20


# Query plans ---------------------------------------------------------------------------------
PLANNED = [
    ("metadata graph_id", dict(metadata={"graph_id": "g1"}), "threads_metadata_graph_id"),
    ("metadata assistant_id", dict(metadata={"assistant_id": "a1"}), "threads_metadata_assistant_id"),
    ("metadata two keys", dict(metadata={"graph_id": "g1", "tenant": "t"}), "threads_metadata_graph_id"),
    ("owner access filter", dict(access=AccessFilter.of({"owner": "u1"})), "threads_metadata_owner"),
    ("owner $eq access filter", dict(access=AccessFilter.of({"owner": {"$eq": "u1"}})), "threads_metadata_owner"),
    ("status", dict(status="busy"), "threads_status"),
]


async def explain(storage: Storage, backend_name: str, sql: str, params: list[Any]) -> str:
    """The plan of one statement, as the backend's own connection sees it."""
    if backend_name == "sqlite":
        rows = await storage._db.run(lambda: storage._db.conn.execute(  # type: ignore[attr-defined]
            "EXPLAIN QUERY PLAN " + sql, params).fetchall())
        return "\n".join(r[-1] for r in rows)
    async with storage._pool.connection() as conn:  # type: ignore[attr-defined]
        async with conn.transaction():
            # A small table is cheaper to read whole; refuse that, so the plan shows whether
            # an index can serve the query at all.
            await conn.execute("SET LOCAL enable_seqscan = off")
            rows = await (await conn.execute("EXPLAIN " + sql, params)).fetchall()
    return "\n".join(next(iter(r.values())) for r in rows)


@pytest.mark.parametrize("name, filters, index", PLANNED, ids=[p[0] for p in PLANNED])
async def test_thread_search_and_count_use_the_index(storage: Storage, backend: Any, name: str,
                                                     filters: dict[str, Any], index: str) -> None:
    dialect = type(storage).__module__.rsplit(".", 1)[0]
    d = __import__(f"{dialect}.common", fromlist=["DIALECT"]).DIALECT
    args = dict(ids=None, metadata=None, values=None, status=None, access=None) | filters
    where = query.thread_where(d, **args)
    statements = [query.page(d, "threads", query.THREAD_COLS, where, "created_at", query.THREAD_SORT, "desc", 10, 0),
                  query.count("threads", query.thread_where(d, **args)),
                  # A keyset page (skeino's cursor) seeks in the same index.
                  query.page(d, "threads", query.THREAD_COLS, query.thread_where(d, **args), "created_at",
                             query.THREAD_SORT, "desc", 10, 0, after=(ts(5), 12345))]
    for sql, params in statements:
        plan = await explain(storage, backend.name, sql, params)
        assert index in plan, plan
        assert not re.search(r"^SCAN threads\b|Seq Scan on threads", plan, re.M), plan
    if backend.name == "sqlite" and name in ("metadata graph_id", "metadata assistant_id"):
        # The index answers the key's value and its JSON type both, so a count by the key
        # needs no thread's JSON parsed for the type check.
        plan = await explain(storage, backend.name, *statements[1])
        assert f"USING INDEX {index} (<expr>=? AND <expr>=?)" in plan, plan


async def test_run_lookups_under_an_access_filter_read_only_their_threads(storage: Storage, backend: Any) -> None:
    """A run list or get under custom auth checks the run's own thread, never every thread."""
    access = AccessFilter.of({"owner": "u1"})
    if backend.name == "sqlite":
        seen: list[str] = []
        conn = storage._db.conn  # type: ignore[attr-defined]
        await storage._db.run(conn.set_trace_callback, seen.append)  # type: ignore[attr-defined]
        try:
            await storage.run_list(new_id(), limit=10, offset=0, status=None, access=access)
            await storage.run_get(new_id(), access=access)
            await storage.runs_with_status(["running"], access=access)
        finally:
            await storage._db.run(conn.set_trace_callback, None)  # type: ignore[attr-defined]
        # The traced text has its parameters inlined, so it is explained as it is.
        statements = [(s, []) for s in seen if "access_match" in s]
    else:
        d = __import__("skeino.storage.postgres.common", fromlist=["DIALECT"]).DIALECT
        where = query.Where(d).eq("thread_id", new_id()).thread_access(access)
        statements = [(f"SELECT run_id FROM runs{where.sql} ORDER BY seq DESC LIMIT 10", where.params)]
    assert len(statements) >= (3 if backend.name == "sqlite" else 1)
    for sql, params in statements:
        plan = await explain(storage, backend.name, sql, params)
        assert not re.search(r"^\s*SCAN t\b|Seq Scan on threads", plan, re.M), plan


async def test_a_threads_run_list_is_read_in_order_off_an_index(storage: Storage, backend: Any) -> None:
    """A thread with thousands of runs (a long chat) must not sort them all for each page."""
    if backend.name == "sqlite":
        seen: list[str] = []
        conn = storage._db.conn  # type: ignore[attr-defined]
        await storage._db.run(conn.set_trace_callback, seen.append)  # type: ignore[attr-defined]
        try:
            await storage.run_list(new_id(), limit=10, offset=0, status=None)
        finally:
            await storage._db.run(conn.set_trace_callback, None)  # type: ignore[attr-defined]
        statements = [(s, []) for s in seen if "FROM runs" in s]
    else:
        statements = [("SELECT run_id FROM runs WHERE thread_id = %s ORDER BY seq DESC LIMIT 10 OFFSET 0", [new_id()])]
    assert statements
    for sql, params in statements:
        plan = await explain(storage, backend.name, sql, params)
        assert "runs_thread_seq" in plan and not re.search(r"TEMP B-TREE|Sort", plan), plan


@pytest.mark.parametrize("key", query.INDEXED_METADATA_KEYS)
async def test_postgres_estimates_how_many_threads_an_indexed_key_matches(storage: Storage, backend: Any,
                                                                          key: str) -> None:
    """The planner must know that the key's values are strings (the type check the filter adds).

    Guessing that one row in 200 passes, it took the key's matches for a handful and read and
    sorted all of them for each page, instead of reading the newest ones off an index."""
    if backend.name != "postgres":
        pytest.skip("SQLite's planner does not weigh the type check")
    tag = new_id()
    for i in range(200):
        assert await storage.thread_create(thread(metadata={key: f"v{i % 2}.{tag}"}, created_at=ts(i)))
    d = __import__("skeino.storage.postgres.common", fromlist=["DIALECT"]).DIALECT
    where = query.thread_where(d, ids=None, metadata={key: f"v0.{tag}"}, values=None, status=None)
    async with storage._pool.connection() as conn:  # type: ignore[attr-defined]
        await conn.execute("ANALYZE threads")
        rows = await (await conn.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM threads{where.sql}",
                                         where.params)).fetchall()
    estimate = next(iter(rows[0].values()))[0]["Plan"]["Plan Rows"]
    assert estimate >= 25, f"the planner expects {estimate} of 100 matching threads"
