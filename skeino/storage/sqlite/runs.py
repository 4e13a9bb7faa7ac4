"""The runs table, run leases and stream logs of the SQLite backend (mixed into SqliteStorage)."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any, Sequence

from skeino.storage import query
from skeino.storage.access import AccessFilter, matches_json
from skeino.storage.base import QueueFull, QueueLimits, Record, now_iso
from skeino.storage.query import JSON_COLS as _JSON_COLS, RUN_COLS as _RUN_COLS
from skeino.storage.runkwargs import stored, stored_changes
from skeino.storage.sqlite.common import _enc, _row, _threaded

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage

_q = query.q


# A run is visible when its thread is: the filter is over the thread's metadata, the thread
# looked up by its primary key (see query.Where.thread_access).
_RUN_ACCESS = "EXISTS (SELECT 1 FROM threads t WHERE t.thread_id = runs.thread_id AND access_match(t.metadata, ?))"


def _fenced(fence: int | None) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) that fences a write of a run's outcome (see Storage.run_finish)."""
    return ("", []) if fence is None else (" AND status = 'running' AND lease_epoch = ?", [fence])


def _runs_sql(where: str, params: Sequence[Any], access: AccessFilter | None,
              extra: str = "") -> tuple[str, list[Any]]:
    """A select of run rows (and the `extra` columns) matching `where`, narrowed to the runs `access` lets the caller see."""
    sql = f"SELECT {', '.join(_RUN_COLS)}{extra} FROM runs WHERE {where}"
    if access is None:
        return sql, list(params)
    return f"{sql} AND {_RUN_ACCESS}", [*params, access.json]


class RunTables:
    """Runs, created and finished inside one write transaction with their thread's checks."""

    @_threaded
    def run_create(self: "SqliteStorage", record: Record, *, reject_if_busy: bool, new_thread: Record | None = None,
                   access: AccessFilter | None = None, limits: QueueLimits | None = None,
                   flush: bool = True) -> Record | None:
        # `flush` changes nothing here: a commit survives the process's crash at once (WAL,
        # synchronous=NORMAL) and the storage thread's batches share their commits anyway.
        with self._tx() as conn:
            self._thread_for_run(record["thread_id"], new_thread, access)
            if reject_if_busy and self._runs_inflight(record["thread_id"]):
                return None
            if limits is not None:
                self._check_queue(record["thread_id"], limits)
            self._insert_run(conn, record)
        return record

    def _check_queue(self: "SqliteStorage", thread_id: str, limits: QueueLimits) -> None:
        """Raise QueueFull when the thread or the server holds `limits` pending runs (see run_create)."""
        for scope, bound, sql, params in (
            ("thread", limits.thread, "SELECT COUNT(*) FROM runs WHERE thread_id = ? AND status = 'pending'", [thread_id]),
            # Counting stops at the bound: a long queue costs no more than a short one.
            ("server", limits.server, "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE status = 'pending' LIMIT ?)", []),
        ):
            if bound is not None and self._one(sql, [*params, bound] if scope == "server" else params)[0] >= bound:
                raise QueueFull(scope, bound)  # type: ignore[arg-type]

    @_threaded
    def run_create_superseding(self: "SqliteStorage", record: Record, *, action: str, new_thread: Record | None = None,
                               access: AccessFilter | None = None, limits: QueueLimits | None = None,
                               flush: bool = True) -> tuple[Record, list[Record]]:
        with self._tx() as conn:
            self._thread_for_run(record["thread_id"], new_thread, access)
            superseded = self._runs_inflight(record["thread_id"])
            now = now_iso()
            for run in superseded:
                if run["status"] != "pending":
                    continue  # running: the caller stops it
                if action == "rollback":
                    self._delete_run(conn, run["run_id"])
                else:
                    conn.execute("UPDATE runs SET status = 'interrupted', updated_at = ? WHERE run_id = ?",
                                 (now, run["run_id"]))
            if limits is not None:
                self._check_queue(record["thread_id"], limits)
            self._insert_run(conn, record)
        return record, superseded

    def _thread_for_run(self: "SqliteStorage", thread_id: str, new_thread: Record | None, access: AccessFilter | None) -> None:
        """Check the run's thread exists and is visible, creating it from `new_thread` if missing."""
        existing = self._one("SELECT metadata FROM threads WHERE thread_id = ?", (thread_id,))
        if existing is None:
            if new_thread is None:
                raise LookupError(thread_id)
            self._insert_thread(new_thread)
        elif access is not None and not matches_json(existing[0], access.json):
            raise LookupError(thread_id)  # another caller's thread is not there for this one

    def _insert_run(self: "SqliteStorage", conn: sqlite3.Connection, record: Record) -> None:
        row = stored(record)
        conn.execute(
            f"INSERT INTO runs ({', '.join(_RUN_COLS)}) VALUES ({', '.join('?' * len(_RUN_COLS))})",
            [(_enc(row.get(c)) if c in _JSON_COLS else row.get(c)) for c in _RUN_COLS],
        )
        conn.execute(
            "UPDATE threads SET status = 'busy', updated_at = ? WHERE thread_id = ?",
            (record["created_at"], record["thread_id"]),
        )

    @_threaded
    def run_transition(self: "SqliteStorage", run_id: str, from_status: str, to_status: str) -> bool:
        cur = self.conn.execute(
            "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ? AND status = ?",
            (to_status, now_iso(), run_id, from_status),
        )
        return cur.rowcount > 0

    @_threaded
    def run_start(self: "SqliteStorage", run_id: str, thread_id: str, thread_metadata: Record) -> bool:
        now = now_iso()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'running', updated_at = ? WHERE run_id = ? AND status = 'pending'", (now, run_id)
            )
            if cur.rowcount == 0:
                return False
            # The thread belongs to the graph that runs on it now (state is read through it).
            conn.execute(
                "UPDATE threads SET metadata = json_patch(metadata, ?), updated_at = ? WHERE thread_id = ?",
                (_enc(thread_metadata), now, thread_id),
            )
            return True

    @_threaded
    def run_finish(self: "SqliteStorage", run_id: str, thread_id: str, status: str, thread_changes: Record, *,
                   fence: int | None = None) -> bool:
        now = now_iso()
        held, held_params = _fenced(fence)
        with self._tx() as conn:
            cur = conn.execute(f"UPDATE runs SET status = ?, updated_at = ?, owner = NULL, lease_until = NULL "
                               f"WHERE run_id = ?{held}", (status, now, run_id, *held_params))
            if held and not cur.rowcount:
                return False  # taken over: the replica that holds the run now records its end
            busy = self._one(
                "SELECT 1 FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') LIMIT 1", (thread_id,)
            ) is not None
            changes = {**thread_changes, "updated_at": now}
            if busy:
                changes["status"] = "busy"
            cols = list(changes)
            conn.execute(
                f"UPDATE threads SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE thread_id = ?",
                [*((_enc(changes[c]) if c in _JSON_COLS else changes[c]) for c in cols), thread_id],
            )
        return True

    @_threaded
    def run_get(self: "SqliteStorage", run_id: str, thread_id: str | None = None, *,
                access: AccessFilter | None = None) -> Record | None:
        return self._run_get(run_id, thread_id, access)

    def _run_get(self: "SqliteStorage", run_id: str, thread_id: str | None = None, access: AccessFilter | None = None) -> Record | None:
        if thread_id is None:
            sql, params = _runs_sql("run_id = ?", [run_id], access)
        else:
            sql, params = _runs_sql("run_id = ? AND thread_id = ?", [run_id, thread_id], access)
        row = self._one(sql, params)
        return _row(_RUN_COLS, row) if row else None

    @_threaded
    def run_list(self: "SqliteStorage", thread_id: str, *, limit: int, offset: int, status: str | None,
                 access: AccessFilter | None = None, after: query.Position | None = None) -> list[Record]:
        where, params = "thread_id = ?", [thread_id]
        if status:
            where, params = f"{where} AND status = ?", [*params, status]
        if after is not None:  # newest first: the page starts below the last run served
            where, params = f"{where} AND seq < ?", [*params, after[1]]
        sql, params = _runs_sql(where, params, access, extra=f", seq AS {query.POS}")
        rows = self._all(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_row((*_RUN_COLS, query.POS), r) for r in rows]

    @_threaded
    def run_update(self: "SqliteStorage", run_id: str, changes: Record, *, fence: int | None = None) -> Record | None:
        changes = {**stored_changes(changes), "updated_at": changes.get("updated_at") or now_iso()}
        cols = list(changes)
        held, held_params = _fenced(fence)
        cur = self.conn.execute(
            f"UPDATE runs SET {', '.join(f'{c} = ?' for c in cols)} WHERE run_id = ?{held}",
            [*((_enc(changes[c]) if c in _JSON_COLS else changes[c]) for c in cols), run_id, *held_params],
        )
        if cur.rowcount == 0:
            return None
        return self._run_get(run_id)

    @_threaded
    def run_delete(self: "SqliteStorage", run_id: str, *, fence: int | None = None) -> bool:
        with self._tx() as conn:
            return self._delete_run(conn, run_id, fence)

    def _delete_run(self: "SqliteStorage", conn: sqlite3.Connection, run_id: str, fence: int | None = None) -> bool:
        """Delete a run, its stream log and its checkpoints inside the caller's transaction."""
        held, held_params = _fenced(fence)
        row = self._one(f"SELECT thread_id FROM runs WHERE run_id = ?{held}", (run_id, *held_params))
        if row is None:
            return False
        conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM stream_events WHERE run_id = ?", (run_id,))
        self._delete_run_checkpoints(conn, row[0], run_id)
        return True

    @_threaded
    def runs_inflight(self: "SqliteStorage", thread_id: str) -> list[Record]:
        return self._runs_inflight(thread_id)

    def _runs_inflight(self: "SqliteStorage", thread_id: str) -> list[Record]:
        rows = self._all(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') ORDER BY seq",
            (thread_id,),
        )
        return [_row(_RUN_COLS, r) for r in rows]

    @_threaded
    def run_next_pending(self: "SqliteStorage", thread_id: str) -> Record | None:
        row = self._one(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE thread_id = ? AND status = 'pending' ORDER BY seq LIMIT 1",
            (thread_id,),
        )
        return _row(_RUN_COLS, row) if row else None

    @_threaded
    def runs_with_status(self: "SqliteStorage", statuses: Sequence[str], *, access: AccessFilter | None = None) -> list[Record]:
        sql, params = _runs_sql(f"status IN ({', '.join('?' * len(statuses))})", statuses, access)
        rows = self._all(sql + " ORDER BY seq", params)
        return [_row(_RUN_COLS, r) for r in rows]

    @_threaded
    def run_counts(self: "SqliteStorage") -> dict[str, int]:
        return dict(self._all("SELECT status, COUNT(*) FROM runs GROUP BY status"))

    @_threaded
    def runs_by_ids(self: "SqliteStorage", run_ids: Sequence[str], *, access: AccessFilter | None = None) -> list[Record]:
        if not run_ids:
            return []
        sql, params = _runs_sql(f"run_id IN ({', '.join('?' * len(run_ids))})", run_ids, access)
        rows = self._all(sql + " ORDER BY seq", params)
        return [_row(_RUN_COLS, r) for r in rows]

    # leases -----------------------------------------------------------------------------
    @_threaded
    def runs_claim(self: "SqliteStorage", owner: str, lease_seconds: float, limit: int, *, now: float | None = None) -> list[Record]:
        now = time.time() if now is None else now
        stamp = now_iso()
        with self._tx() as conn:  # the file's write lock makes the pick and the update one step
            rows = self._all(
                f"SELECT {', '.join(_RUN_COLS)} FROM runs r WHERE r.status = 'pending' AND r.run_at <= ? "
                "AND NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id "
                "AND (x.status = 'running' OR (x.status = 'pending' AND x.seq < r.seq))) ORDER BY r.seq LIMIT ?",
                (now, limit),
            )
            claimed = [_row(_RUN_COLS, r) for r in rows]
            for run in claimed:
                epoch = self._one("UPDATE runs SET status = 'running', owner = ?, lease_until = ?, updated_at = ?, "
                                  "lease_epoch = lease_epoch + 1 WHERE run_id = ? RETURNING lease_epoch",
                                  (owner, now + lease_seconds, stamp, run["run_id"]))[0]
                conn.execute("UPDATE threads SET metadata = json_patch(metadata, ?), updated_at = ? WHERE thread_id = ?",
                             (_enc(query.claim_stamp(run)), stamp, run["thread_id"]))
                run.update(status="running", updated_at=stamp, lease_epoch=epoch)
        return claimed

    @_threaded
    def runs_renew(self: "SqliteStorage", owner: str, lease_seconds: float, run_ids: Sequence[str], *,
                   now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        held = []
        with self._tx() as conn:
            for run_id in run_ids:
                cur = conn.execute("UPDATE runs SET lease_until = ? WHERE run_id = ? AND owner = ? AND status = 'running'",
                                   (now + lease_seconds, run_id, owner))
                if cur.rowcount:
                    held.append(run_id)
        return held

    @_threaded
    def runs_lease_expired(self: "SqliteStorage", *, now: float | None = None, limit: int = 100) -> list[Record]:
        rows = self._all(
            f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE status = 'running' AND lease_until < ? ORDER BY seq LIMIT ?",
            (time.time() if now is None else now, limit),
        )
        return [_row(_RUN_COLS, r) for r in rows]

    @_threaded
    def runs_expire_leases(self: "SqliteStorage", owner: str) -> int:
        return self.conn.execute("UPDATE runs SET lease_until = 0 WHERE owner = ? AND status = 'running'",
                                 (owner,)).rowcount

    @_threaded
    def run_take_over(self: "SqliteStorage", run_id: str, owner: str, lease_seconds: float, *,
                      now: float | None = None) -> int | None:
        now = time.time() if now is None else now
        row = self._one(
            "UPDATE runs SET owner = ?, lease_until = ?, lease_epoch = lease_epoch + 1 "
            "WHERE run_id = ? AND status = 'running' AND lease_until < ? RETURNING lease_epoch",
            (owner, now + lease_seconds, run_id, now),
        )
        return int(row[0]) if row else None

    # stream logs --------------------------------------------------------------------
    @_threaded
    def stream_append(self: "SqliteStorage", run_id: str, events: Sequence[tuple[int, str, bytes]]) -> None:
        if not events:
            return
        self.conn.executemany(
            "INSERT OR IGNORE INTO stream_events (run_id, seq, event, data) VALUES (?, ?, ?, ?)",
            [(run_id, seq, event, data) for seq, event, data in events],
        )

    @_threaded
    def stream_read(self: "SqliteStorage", run_id: str, after: int) -> list[tuple[int, str, bytes]]:
        rows = self._all(
            "SELECT seq, event, data FROM stream_events WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after)
        )
        return [(int(s), e, bytes(d)) for s, e, d in rows]
