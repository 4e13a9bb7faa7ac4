"""The threads table and thread TTLs of the SQLite backend (mixed into SqliteStorage)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, SortOrder, iso_from_epoch, now_iso
from skeino.storage.query import JSON_COLS as _JSON_COLS, THREAD_COLS as _THREAD_COLS
from skeino.storage.sqlite.common import DIALECT, _enc, _row, _threaded

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage

_q = query.q


class ThreadTables:
    """Threads, searched through the shared query layer, and their TTLs."""

    @_threaded
    def thread_create(self: "SqliteStorage", record: Record) -> Record | None:
        with self._tx():
            if self._one("SELECT 1 FROM threads WHERE thread_id = ?", (record["thread_id"],)):
                return None
            self._insert_thread(record)
        return record

    def _insert_thread(self: "SqliteStorage", record: Record) -> None:
        self.conn.execute(
            f"INSERT INTO threads ({', '.join(map(_q, _THREAD_COLS))}) VALUES ({', '.join('?' * len(_THREAD_COLS))})",
            [(_enc(record.get(c)) if c in _JSON_COLS else record.get(c)) for c in _THREAD_COLS],
        )

    @_threaded
    def thread_get(self: "SqliteStorage", thread_id: str, *, access: AccessFilter | None = None) -> Record | None:
        row = self._one_visible(f"SELECT {', '.join(map(_q, _THREAD_COLS))} FROM threads WHERE thread_id = ?",
                                thread_id, access)
        return _row(_THREAD_COLS, row) if row else None

    @_threaded
    def thread_update(self: "SqliteStorage", thread_id: str, changes: Record, *, merge_metadata: Record | None = None) -> Record | None:
        with self._tx() as conn:
            row = self._one(f"SELECT {', '.join(map(_q, _THREAD_COLS))} FROM threads WHERE thread_id = ?", (thread_id,))
            if not row:
                return None
            rec = _row(_THREAD_COLS, row)
            rec.update(changes)
            if merge_metadata:
                rec["metadata"] = {**(rec["metadata"] or {}), **merge_metadata}
            rec.setdefault("updated_at", now_iso())
            if "updated_at" not in changes:
                rec["updated_at"] = now_iso()
            cols = [c for c in _THREAD_COLS if c != "thread_id"]
            conn.execute(
                f"UPDATE threads SET {', '.join(f'{_q(c)} = ?' for c in cols)} WHERE thread_id = ?",
                [*((_enc(rec[c]) if c in _JSON_COLS else rec[c]) for c in cols), thread_id],
            )
        return rec

    @_threaded
    def thread_delete(self: "SqliteStorage", thread_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))
            conn.execute(
                "DELETE FROM stream_events WHERE run_id IN (SELECT run_id FROM runs WHERE thread_id = ?)", (thread_id,)
            )
            conn.execute("DELETE FROM runs WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM checkpoints WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM crons WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM writes WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM thread_ttl WHERE thread_id = ?", (thread_id,))
            return cur.rowcount > 0

    @_threaded
    def thread_ttl_set(self: "SqliteStorage", thread_id: str, *, strategy: str, ttl_minutes: float, now: float | None = None) -> bool:
        expires_at = (time.time() if now is None else now) + ttl_minutes * 60
        with self._tx() as conn:
            if not self._one("SELECT 1 FROM threads WHERE thread_id = ?", (thread_id,)):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO thread_ttl (thread_id, strategy, ttl_minutes, expires_at) VALUES (?, ?, ?, ?)",
                (thread_id, strategy, ttl_minutes, expires_at),
            )
            return True

    @_threaded
    def thread_ttl_get(self: "SqliteStorage", thread_id: str) -> Record | None:
        row = self._one("SELECT strategy, ttl_minutes, expires_at FROM thread_ttl WHERE thread_id = ?", (thread_id,))
        if not row:
            return None
        return {"strategy": row[0], "ttl_minutes": row[1], "expires_at": iso_from_epoch(row[2])}

    @_threaded
    def threads_expired(self: "SqliteStorage", *, now: float | None = None, limit: int = 100) -> list[str]:
        rows = self._all(
            "SELECT thread_id FROM thread_ttl WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
            (time.time() if now is None else now, limit),
        )
        return [r[0] for r in rows]

    @_threaded
    def thread_search(self: "SqliteStorage", *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                      status: str | None, limit: int, offset: int, sort_by: str, sort_order: SortOrder,
                      access: AccessFilter | None = None, after: query.Position | None = None) -> list[Record]:
        where = query.thread_where(DIALECT, ids, metadata, values, status, access)
        return self._page("threads", _THREAD_COLS, where, sort_by, query.THREAD_SORT, sort_order, limit, offset, after)

    @_threaded
    def thread_count(self: "SqliteStorage", *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                     status: str | None, access: AccessFilter | None = None) -> int:
        return self._one(*query.count("threads", query.thread_where(DIALECT, ids, metadata, values, status, access)))[0]
