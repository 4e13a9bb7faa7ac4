"""The runs table of the Postgres backend (mixed into PostgresStorage)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

from psycopg import AsyncConnection

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import QueueFull, QueueLimits, Record, now_iso
from skeino.storage.postgres.common import DIALECT, jsonb
from skeino.storage.query import RUN_COLS, THREAD_COLS, cols

if TYPE_CHECKING:
    from skeino.storage.postgres.backend import PostgresStorage

_SELECT = f"SELECT {cols(RUN_COLS)} FROM runs"
_INFLIGHT = "status IN ('pending', 'running')"


class RunTables:
    """Runs, created and finished under their thread's row lock."""

    async def _lock_thread_for_run(self: "PostgresStorage", conn: AsyncConnection, thread_id: str,
                                   new_thread: Record | None, access: AccessFilter | None) -> None:
        """Create the run's thread if asked and take its row lock; LookupError if it is not there."""
        created = False
        if new_thread is not None:
            sql, params = query.insert(DIALECT, "threads", THREAD_COLS, new_thread)
            created = await self._exec(sql + " ON CONFLICT (thread_id) DO NOTHING", params, conn) > 0
        # The thread's row lock orders every run creation and finish on this thread.
        # (Another caller's thread is not there for this one: it is missing too.)
        where = query.Where(DIALECT).eq("thread_id", thread_id).access(None if created else access)
        if not await self._one(f"SELECT 1 FROM threads{where.sql} FOR UPDATE", where.params, conn):
            raise LookupError(thread_id)

    async def run_create_superseding(self: "PostgresStorage", record: Record, *, action: str,
                                     new_thread: Record | None = None, access: AccessFilter | None = None,
                                     limits: QueueLimits | None = None) -> tuple[Record, list[Record]]:
        async with self._tx() as conn:
            await self._lock_thread_for_run(conn, record["thread_id"], new_thread, access)
            superseded = await self._all(f"{_SELECT} WHERE thread_id = %s AND {_INFLIGHT} ORDER BY seq",
                                         (record["thread_id"],), conn)
            for run in superseded:
                if run["status"] != "pending":
                    continue  # running: the caller stops it
                if action == "rollback":
                    await self._exec("DELETE FROM stream_events WHERE run_id = %s", (run["run_id"],), conn)
                    await self._exec("DELETE FROM runs WHERE run_id = %s", (run["run_id"],), conn)
                    await self._delete_run_checkpoints(conn, record["thread_id"], run["run_id"])
                else:
                    await self._exec("UPDATE runs SET status = 'interrupted', updated_at = %s WHERE run_id = %s",
                                     (now_iso(), run["run_id"]), conn)
            if limits is not None:
                await self._check_queue(conn, record["thread_id"], limits)
            await self._exec(*query.insert(DIALECT, "runs", RUN_COLS, record), conn)
            await self._exec("UPDATE threads SET status = 'busy', updated_at = %s WHERE thread_id = %s",
                             (record["created_at"], record["thread_id"]), conn)
        return record, superseded

    async def run_create(self: "PostgresStorage", record: Record, *, reject_if_busy: bool,
                         new_thread: Record | None = None, access: AccessFilter | None = None,
                         limits: QueueLimits | None = None) -> Record | None:
        async with self._tx() as conn:
            await self._lock_thread_for_run(conn, record["thread_id"], new_thread, access)
            if reject_if_busy and await self._one(
                    f"SELECT 1 FROM runs WHERE thread_id = %s AND {_INFLIGHT} LIMIT 1", (record["thread_id"],), conn):
                return None
            if limits is not None:
                await self._check_queue(conn, record["thread_id"], limits)
            await self._exec(*query.insert(DIALECT, "runs", RUN_COLS, record), conn)
            await self._exec("UPDATE threads SET status = 'busy', updated_at = %s WHERE thread_id = %s",
                             (record["created_at"], record["thread_id"]), conn)
        return record

    async def _check_queue(self: "PostgresStorage", conn: AsyncConnection, thread_id: str, limits: QueueLimits) -> None:
        """Raise QueueFull when the thread or the server holds `limits` pending runs (see run_create)."""
        if limits.thread is not None:
            row = await self._one("SELECT COUNT(*) AS n FROM runs WHERE thread_id = %s AND status = 'pending'",
                                  (thread_id,), conn)
            if row is not None and row["n"] >= limits.thread:
                raise QueueFull("thread", limits.thread)
        if limits.server is not None:
            # Counting stops at the bound: a long queue costs no more than a short one.
            row = await self._one("SELECT COUNT(*) AS n FROM (SELECT 1 FROM runs WHERE status = 'pending' LIMIT %s) q",
                                  (limits.server,), conn)
            if row is not None and row["n"] >= limits.server:
                raise QueueFull("server", limits.server)

    async def run_transition(self: "PostgresStorage", run_id: str, from_status: str, to_status: str) -> bool:
        return await self._exec("UPDATE runs SET status = %s, updated_at = %s WHERE run_id = %s AND status = %s",
                                (to_status, now_iso(), run_id, from_status)) > 0

    async def run_start(self: "PostgresStorage", run_id: str, thread_id: str, thread_metadata: Record) -> bool:
        now = now_iso()
        async with self._tx() as conn:
            # Thread row first, then the run: the order run creation takes them in, so the
            # two never deadlock (an interrupt superseding this very run, say).
            await self._one("SELECT 1 FROM threads WHERE thread_id = %s FOR UPDATE", (thread_id,), conn)
            if not await self._exec("UPDATE runs SET status = 'running', updated_at = %s "
                                    "WHERE run_id = %s AND status = 'pending'", (now, run_id), conn):
                return False
            await self._stamp(conn, thread_id, thread_metadata, now)
            return True

    async def _stamp(self: "PostgresStorage", conn: AsyncConnection, thread_id: str, metadata: Record, now: str) -> None:
        # The thread belongs to the graph that runs on it now (state is read through it).
        await self._exec("UPDATE threads SET metadata = metadata || %s, updated_at = %s WHERE thread_id = %s",
                         (jsonb(metadata), now, thread_id), conn)

    async def run_finish(self: "PostgresStorage", run_id: str, thread_id: str, status: str,
                         thread_changes: Record) -> None:
        now = now_iso()
        async with self._tx() as conn:
            await self._one("SELECT 1 FROM threads WHERE thread_id = %s FOR UPDATE", (thread_id,), conn)
            await self._exec("UPDATE runs SET status = %s, updated_at = %s, owner = NULL, lease_until = NULL "
                             "WHERE run_id = %s", (status, now, run_id), conn)
            busy = await self._one(f"SELECT 1 FROM runs WHERE thread_id = %s AND {_INFLIGHT} LIMIT 1", (thread_id,), conn)
            changes = {**thread_changes, "updated_at": now}
            if busy:
                changes["status"] = "busy"
            sets, params = query.assignments(DIALECT, changes)
            await self._exec(f"UPDATE threads SET {sets} WHERE thread_id = %s", [*params, thread_id], conn)

    async def run_get(self: "PostgresStorage", run_id: str, thread_id: str | None = None, *,
                      access: AccessFilter | None = None) -> Record | None:
        where = query.Where(DIALECT).eq("run_id", run_id).eq("thread_id", thread_id).thread_access(access)
        return await self._one(f"{_SELECT}{where.sql}", where.params)

    async def run_list(self: "PostgresStorage", thread_id: str, *, limit: int, offset: int,
                       status: str | None, access: AccessFilter | None = None,
                       after: query.Position | None = None) -> list[Record]:
        where = query.Where(DIALECT).eq("thread_id", thread_id).eq("status", status or None).thread_access(access)
        if after is not None:  # newest first: the page starts below the last run served
            where.add("seq < %s", after[1])
        return await self._all(f"SELECT {cols(RUN_COLS)}, seq AS {query.POS} FROM runs{where.sql} "
                               "ORDER BY seq DESC LIMIT %s OFFSET %s", [*where.params, limit, offset])

    async def run_update(self: "PostgresStorage", run_id: str, changes: Record) -> Record | None:
        sets, params = query.assignments(DIALECT, {**changes, "updated_at": changes.get("updated_at") or now_iso()})
        return await self._one(f"UPDATE runs SET {sets} WHERE run_id = %s RETURNING {cols(RUN_COLS)}",
                               [*params, run_id])

    async def run_delete(self: "PostgresStorage", run_id: str) -> bool:
        async with self._tx() as conn:
            await self._exec("DELETE FROM stream_events WHERE run_id = %s", (run_id,), conn)
            deleted = await self._all("DELETE FROM runs WHERE run_id = %s RETURNING thread_id", (run_id,), conn)
            for row in deleted:
                await self._delete_run_checkpoints(conn, row["thread_id"], run_id)
            return bool(deleted)

    async def runs_inflight(self: "PostgresStorage", thread_id: str) -> list[Record]:
        return await self._all(f"{_SELECT} WHERE thread_id = %s AND {_INFLIGHT} ORDER BY seq", (thread_id,))

    async def run_next_pending(self: "PostgresStorage", thread_id: str) -> Record | None:
        return await self._one(f"{_SELECT} WHERE thread_id = %s AND status = 'pending' ORDER BY seq LIMIT 1",
                               (thread_id,))

    async def runs_with_status(self: "PostgresStorage", statuses: Sequence[str], *,
                               access: AccessFilter | None = None) -> list[Record]:
        where = query.Where(DIALECT).any_of("status", list(statuses)).thread_access(access)
        return await self._all(f"{_SELECT}{where.sql} ORDER BY seq", where.params)

    async def run_counts(self: "PostgresStorage") -> dict[str, int]:
        rows = await self._all("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def runs_by_ids(self: "PostgresStorage", run_ids: Sequence[str], *,
                          access: AccessFilter | None = None) -> list[Record]:
        if not run_ids:
            return []
        where = query.Where(DIALECT).any_of("run_id", list(run_ids)).thread_access(access)
        return await self._all(f"{_SELECT}{where.sql} ORDER BY seq", where.params)


    # leases ---------------------------------------------------------------------------
    async def runs_claim(self: "PostgresStorage", owner: str, lease_seconds: float, limit: int, *,
                         now: float | None = None) -> list[Record]:
        now = time.time() if now is None else now
        stamp = now_iso()
        async with self._tx() as conn:
            # SKIP LOCKED: replicas claiming at once take different runs. The final
            # `status = 'pending'` re-check (on the newest row version) makes a run two
            # replicas both picked go to the first; a run is only picked when everything
            # older on its thread has ended, so a thread never runs two at once.
            claimed = await self._all(
                f"""WITH picked AS (
                    SELECT r.seq FROM runs r
                    WHERE r.status = 'pending' AND r.run_at <= %s
                      AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id
                                      AND (x.status = 'running' OR (x.status = 'pending' AND x.seq < r.seq)))
                    ORDER BY r.seq LIMIT %s FOR UPDATE SKIP LOCKED)
                UPDATE runs SET status = 'running', owner = %s, lease_until = %s, updated_at = %s
                FROM picked WHERE runs.seq = picked.seq AND runs.status = 'pending'
                RETURNING {cols(RUN_COLS, "runs.")}, runs.seq""",
                (now, limit, owner, now + lease_seconds, stamp), conn)
        # Stamped after the claim commits: taking thread rows while holding run rows would
        # invert the order run creation locks them in, and deadlock with it.
        async with self._pool.connection() as conn:
            for run in claimed:
                await self._stamp(conn, run["thread_id"], query.claim_stamp(run), stamp)
        claimed.sort(key=lambda r: r.pop("seq"))
        return claimed

    async def runs_renew(self: "PostgresStorage", owner: str, lease_seconds: float, run_ids: Sequence[str], *,
                         now: float | None = None) -> list[str]:
        if not run_ids:
            return []
        now = time.time() if now is None else now
        rows = await self._all(
            "UPDATE runs SET lease_until = %s WHERE run_id = ANY(%s) AND owner = %s AND status = 'running' "
            "RETURNING run_id", (now + lease_seconds, list(run_ids), owner))
        return [r["run_id"] for r in rows]

    async def runs_lease_expired(self: "PostgresStorage", *, now: float | None = None,
                                 limit: int = 100) -> list[Record]:
        return await self._all(f"{_SELECT} WHERE status = 'running' AND lease_until < %s ORDER BY seq LIMIT %s",
                               (time.time() if now is None else now, limit))

    async def runs_expire_leases(self: "PostgresStorage", owner: str) -> int:
        return await self._exec("UPDATE runs SET lease_until = 0 WHERE owner = %s AND status = 'running'", (owner,))

    async def run_take_over(self: "PostgresStorage", run_id: str, owner: str, lease_seconds: float, *,
                            now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return await self._exec(
            "UPDATE runs SET owner = %s, lease_until = %s WHERE run_id = %s AND status = 'running' AND lease_until < %s",
            (owner, now + lease_seconds, run_id, now)) > 0
