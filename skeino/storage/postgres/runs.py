"""The runs table of the Postgres backend (mixed into PostgresStorage)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, Sequence

from psycopg import AsyncConnection

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import QueueFull, QueueLimits, Record, now_iso
from skeino.storage.postgres.common import DIALECT, jsonb
from skeino.storage.runkwargs import stored, stored_changes
from skeino.storage.query import RUN_COLS, THREAD_COLS, cols

if TYPE_CHECKING:
    from skeino.storage.postgres.backend import PostgresStorage

_SELECT = f"SELECT {cols(RUN_COLS)} FROM runs"
_INFLIGHT = "status IN ('pending', 'running')"
# Pending runs, counted up to a bound (a long queue costs no more than a short one): (thread_id, bound).
_PENDING_ON_THREAD = ("(SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE thread_id = %s AND status = 'pending' "
                      "LIMIT %s) q)")
_PENDING = "(SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status = 'pending' LIMIT %s) q)"


# Run start (see RunTables.run_start): the thread's lock first, the order run creation takes
# the locks in, so the two never deadlock (an interrupt superseding this very run, say); then,
# in a statement whose snapshot is taken under that lock, the run, and the stamp only if the
# run did start (a run cancelled while pending leaves its thread as it was).
_START = ("SELECT 1 FROM threads WHERE thread_id = %(thread)s FOR UPDATE; "
          "WITH started AS (UPDATE runs SET status = 'running', updated_at = %(now)s WHERE run_id = %(run)s "
          "AND status = 'pending' RETURNING 1), "
          "stamped AS (UPDATE threads SET metadata = metadata || %(meta)s, updated_at = %(now)s "
          "WHERE thread_id = %(thread)s AND NOT metadata @> %(meta)s AND EXISTS (SELECT 1 FROM started) RETURNING 1) "
          "SELECT COUNT(*) AS n FROM started; "
          "SET LOCAL synchronous_commit TO off")
_NO_FLUSH = "SET LOCAL synchronous_commit TO off"  # the message's commit does not wait for the disk


class _Refused(Exception):
    """Leave the transaction, rolling back what it wrote: the run is refused."""


_HELD = "status = 'running' AND lease_epoch = %s"  # the run is still under the caller's lease


def _fenced(fence: int | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) that fences a write of a run's outcome (see Storage.run_finish)."""
    return ("", []) if fence is None else (f" AND {_HELD}", [fence])


def _run_insert(record: Record, reject_if_busy: bool, limits: QueueLimits | None,
                extra: tuple[str, list[Any]] = ("", [])) -> tuple[str, list[Any]]:
    """The INSERT of a run with the reject and queue checks (and `extra`, a condition) in its WHERE."""
    thread_id = record["thread_id"]
    record = stored(record)  # its kwargs without what the columns say (storage/runkwargs.py)
    conds, params = ([extra[0]], list(extra[1])) if extra[0] else ([], [])
    if reject_if_busy:
        conds.append(f"NOT EXISTS (SELECT 1 FROM runs WHERE thread_id = %s AND {_INFLIGHT})")
        params.append(thread_id)
    if limits is not None and limits.thread is not None:
        conds.append(_PENDING_ON_THREAD + " < %s")
        params += [thread_id, limits.thread, limits.thread]
    if limits is not None and limits.server is not None:
        conds.append(_PENDING + " < %s")
        params += [limits.server, limits.server]
    values = [DIALECT.value(c, record.get(c)) for c in RUN_COLS]
    if not conds:
        return query.insert(DIALECT, "runs", RUN_COLS, record)
    return (f"INSERT INTO runs ({cols(RUN_COLS)}) SELECT {DIALECT.placeholders(len(RUN_COLS))} "
            f"WHERE {' AND '.join(conds)}", [*values, *params])


class RunTables:
    """Runs, created and finished under their thread's row lock."""

    async def _lock_thread_for_run(self: "PostgresStorage", conn: AsyncConnection, thread_id: str,
                                   new_thread: Record | None, access: AccessFilter | None, now: str) -> None:
        """Create the run's thread if asked, or take its row lock, marking it busy; LookupError if it is not there.

        Writing `busy` is what takes the lock (one statement, not a SELECT ... FOR UPDATE and
        an UPDATE); a caller that then refuses the run rolls it back with the transaction.
        """
        if new_thread is not None:
            sql, params = query.insert(DIALECT, "threads", THREAD_COLS,
                                       {**new_thread, "status": "busy", "updated_at": now})
            if await self._exec(sql + " ON CONFLICT (thread_id) DO NOTHING", params, conn):
                return  # the new row is this transaction's, locked until it commits
        # The thread's row lock orders every run creation and finish on this thread.
        # (Another caller's thread is not there for this one: it is missing too.)
        where = query.Where(DIALECT).eq("thread_id", thread_id).access(access)
        if not await self._one(f"UPDATE threads SET status = 'busy', updated_at = %s{where.sql} RETURNING 1",
                               [now, *where.params], conn):
            raise LookupError(thread_id)

    async def _insert_run(self: "PostgresStorage", conn: AsyncConnection, record: Record, reject_if_busy: bool,
                          limits: QueueLimits | None) -> bool:
        """Insert the run unless the thread is busy (when asked) or a queue is full (QueueFull); False if busy.

        The checks ride in the INSERT itself: one round trip on the common path. They run
        after the thread's lock was taken, in a statement of their own, so they see every
        run committed before it (a check in the locking statement would not).
        """
        sql, params = _run_insert(record, reject_if_busy, limits)
        if await self._exec(sql, params, conn):
            return True
        return await self._refusal(conn, record["thread_id"], reject_if_busy, limits)

    async def _refusal(self: "PostgresStorage", conn: AsyncConnection | None, thread_id: str, reject_if_busy: bool,
                       limits: QueueLimits | None) -> Literal[False]:
        """Why the INSERT refused the run: False if busy, else QueueFull raised.

        In the order the contract gives (busy, then the thread's bound, then the server's).
        """
        if reject_if_busy and await self._one(
                f"SELECT 1 FROM runs WHERE thread_id = %s AND {_INFLIGHT} LIMIT 1", (thread_id,), conn):
            return False
        if limits is None:
            return False  # only `busy` could refuse it (a run ended in between)
        for scope, bound, sql, args in (("thread", limits.thread, _PENDING_ON_THREAD, (thread_id, limits.thread)),
                                        ("server", limits.server, _PENDING, (limits.server,))):
            if bound is not None:
                row = await self._one(f"SELECT {sql} AS n", args, conn)
                if row is not None and row["n"] >= bound:
                    raise QueueFull(scope, bound)  # type: ignore[arg-type]
        # Nothing says so any more (a run ended in between): refuse as the INSERT did.
        if reject_if_busy:
            return False
        if limits.server is not None:
            raise QueueFull("server", limits.server)
        raise QueueFull("thread", limits.thread or 0)

    async def run_create_superseding(self: "PostgresStorage", record: Record, *, action: str,
                                     new_thread: Record | None = None, access: AccessFilter | None = None,
                                     limits: QueueLimits | None = None, flush: bool = True) -> tuple[Record, list[Record]]:
        async with self._tx(flush=flush) as conn:
            await self._lock_thread_for_run(conn, record["thread_id"], new_thread, access, record["created_at"])
            superseded = await self._all(f"{_SELECT} WHERE thread_id = %s AND {_INFLIGHT} ORDER BY seq",
                                         (record["thread_id"],), conn)
            for run in superseded:
                if run["status"] != "pending":
                    continue  # running: the caller stops it
                # Only while still pending: a replica's claim (which takes no thread lock) may
                # have started it since the read; then it is running, and the caller stops it.
                if action == "rollback":
                    gone = await self._exec("DELETE FROM runs WHERE run_id = %s AND status = 'pending'",
                                            (run["run_id"],), conn)
                    if gone:
                        await self._exec("DELETE FROM stream_events WHERE run_id = %s", (run["run_id"],), conn)
                        await self._delete_run_checkpoints(conn, record["thread_id"], run["run_id"])
                else:
                    gone = await self._exec("UPDATE runs SET status = 'interrupted', updated_at = %s "
                                            "WHERE run_id = %s AND status = 'pending'", (now_iso(), run["run_id"]), conn)
                if not gone:
                    run["status"] = "running"
            await self._insert_run(conn, record, False, limits)
        return record, superseded

    async def run_create(self: "PostgresStorage", record: Record, *, reject_if_busy: bool,
                         new_thread: Record | None = None, access: AccessFilter | None = None,
                         limits: QueueLimits | None = None, flush: bool = True) -> Record | None:
        if new_thread is None:
            return await self._run_create_on_thread(record, reject_if_busy, access, limits, flush)
        try:
            async with self._tx(flush=flush) as conn:
                await self._lock_thread_for_run(conn, record["thread_id"], new_thread, access, record["created_at"])
                if not await self._insert_run(conn, record, reject_if_busy, limits):
                    raise _Refused  # rolls the thread's `busy` back: nothing written
        except _Refused:
            return None
        return record

    async def _run_create_on_thread(self: "PostgresStorage", record: Record, reject_if_busy: bool,
                                    access: AccessFilter | None, limits: QueueLimits | None, flush: bool) -> Record | None:
        """run_create on an existing thread in one message: one round trip, one implicit transaction.

        The thread's lock; the run, inserted only if the thread is there (and the caller's) and
        the checks pass, in a statement whose snapshot is taken under the lock; the thread
        marked busy only if the run went in. Refused, nothing was written, and why is asked
        after.
        """
        thread_id = record["thread_id"]
        where = query.Where(DIALECT).eq("thread_id", thread_id).access(access)
        insert, params = _run_insert(record, reject_if_busy, limits,
                                     (f"EXISTS (SELECT 1 FROM threads{where.sql})", where.params))
        results = await self._script(
            f"SELECT 1 FROM threads{where.sql} FOR UPDATE; {insert}; "
            "UPDATE threads SET status = 'busy', updated_at = %s WHERE thread_id = %s "
            "AND EXISTS (SELECT 1 FROM runs WHERE run_id = %s)" + ("" if flush else "; " + _NO_FLUSH),
            [*where.params, *params, record["created_at"], thread_id, record["run_id"]])
        if not results[0][0]:
            raise LookupError(thread_id)
        if results[1][0]:
            return record
        await self._refusal(None, thread_id, reject_if_busy, limits)  # busy, or QueueFull raised
        return None

    async def run_transition(self: "PostgresStorage", run_id: str, from_status: str, to_status: str) -> bool:
        return await self._exec("UPDATE runs SET status = %s, updated_at = %s WHERE run_id = %s AND status = %s",
                                (to_status, now_iso(), run_id, from_status)) > 0

    async def run_start(self: "PostgresStorage", run_id: str, thread_id: str, thread_metadata: Record) -> bool:
        # One message, one round trip (see _START). The thread belongs to the graph that runs
        # on it now (state is read through it); a thread already stamped so is not written.
        # The commit does not wait for the disk: lost in a crash, the run reads pending again
        # and is queued at restart, and whatever it wrote since (a checkpoint, its end) waited
        # for the disk, this included.
        results = await self._script(_START, {"thread": thread_id, "run": run_id, "now": now_iso(),
                                              "meta": jsonb(thread_metadata)})
        return bool(results[1][1][0]["n"])

    async def _stamp(self: "PostgresStorage", conn: AsyncConnection, thread_id: str, metadata: Record, now: str) -> None:
        # The thread belongs to the graph that runs on it now (state is read through it).
        await self._exec("UPDATE threads SET metadata = metadata || %s, updated_at = %s WHERE thread_id = %s",
                         (jsonb(metadata), now, thread_id), conn)

    async def run_finish(self: "PostgresStorage", run_id: str, thread_id: str, status: str,
                         thread_changes: Record, *, fence: int | None = None) -> bool:
        now = now_iso()
        held, held_params = _fenced(fence)
        # The thread's lock, then the run's end and the thread's state in one statement, read
        # once the lock is held: its snapshot has every run created before. The statement does
        # not see its own change to the run, so "still busy" looks at the thread's other runs.
        # With a fence the thread changes only if the run's row did (the lease is still held).
        # Both in one message (one round trip, one implicit transaction).
        changes = {k: v for k, v in thread_changes.items() if k != "status"}
        sets, params = query.assignments(DIALECT, {**changes, "updated_at": now})
        results = await self._script(
            "SELECT 1 FROM threads WHERE thread_id = %s FOR UPDATE; "
            "WITH ended AS (UPDATE runs SET status = %s, updated_at = %s, owner = NULL, lease_until = NULL "
            f"WHERE run_id = %s{held} RETURNING 1) UPDATE threads SET {sets}, status = CASE WHEN EXISTS "
            f"(SELECT 1 FROM runs WHERE thread_id = %s AND run_id <> %s AND {_INFLIGHT}) THEN 'busy' "
            f"ELSE COALESCE(%s, status) END WHERE thread_id = %s{' AND EXISTS (SELECT 1 FROM ended)' if held else ''}",
            [thread_id, status, now, run_id, *held_params, *params, thread_id, run_id, thread_changes.get("status"),
             thread_id])
        written = results[1][0]
        return written > 0 or not held

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

    async def run_update(self: "PostgresStorage", run_id: str, changes: Record, *,
                         fence: int | None = None) -> Record | None:
        sets, params = query.assignments(DIALECT, {**stored_changes(changes),
                                                   "updated_at": changes.get("updated_at") or now_iso()})
        held, held_params = _fenced(fence)
        return await self._one(f"UPDATE runs SET {sets} WHERE run_id = %s{held} RETURNING {cols(RUN_COLS)}",
                               [*params, run_id, *held_params])

    async def run_delete(self: "PostgresStorage", run_id: str, *, fence: int | None = None) -> bool:
        held, held_params = _fenced(fence)
        async with self._tx() as conn:
            deleted = await self._all(f"DELETE FROM runs WHERE run_id = %s{held} RETURNING thread_id",
                                      (run_id, *held_params), conn)
            if deleted:
                await self._exec("DELETE FROM stream_events WHERE run_id = %s", (run_id,), conn)
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
                UPDATE runs SET status = 'running', owner = %s, lease_until = %s, updated_at = %s,
                    lease_epoch = runs.lease_epoch + 1
                FROM picked WHERE runs.seq = picked.seq AND runs.status = 'pending'
                RETURNING {cols(RUN_COLS, "runs.")}, runs.seq, runs.lease_epoch""",
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
                            now: float | None = None) -> int | None:
        now = time.time() if now is None else now
        row = await self._one(
            "UPDATE runs SET owner = %s, lease_until = %s, lease_epoch = lease_epoch + 1 "
            "WHERE run_id = %s AND status = 'running' AND lease_until < %s RETURNING lease_epoch",
            (owner, now + lease_seconds, run_id, now))
        return int(row["lease_epoch"]) if row else None
