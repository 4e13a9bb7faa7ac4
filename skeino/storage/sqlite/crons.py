"""The crons table of the SQLite backend (mixed into SqliteStorage)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from skeino.storage.access import AccessFilter
from skeino.storage import query
from skeino.storage.base import Record, SortOrder, now_iso
from skeino.storage.sqlite.common import DIALECT, _dec, _enc, _threaded

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage

_CRON_COLS = query.CRON_COLS
_CRON_JSON = {"payload", "metadata"}
_SELECT = ", ".join(_CRON_COLS)


def _cron(row: Sequence[Any]) -> Record:
    rec = {c: (_dec(v) if c in _CRON_JSON else v) for c, v in zip(_CRON_COLS, row)}
    rec["enabled"] = bool(rec["enabled"])
    return rec


def _value(col: str, value: Any) -> Any:
    if col in _CRON_JSON:
        return _enc(value)
    return int(value) if col == "enabled" else value


class CronTables:
    """Crons, and the claim that makes each scheduled tick start exactly one run.

    A tick is claimed by moving `next_run_date` on and recording the id of the run it
    will start, in one conditional update; the claim is released once that run exists.
    A claim still held at start-up marks a tick whose run may not have been written.
    """

    @_threaded
    def cron_create(self: "SqliteStorage", record: Record) -> Record:
        self.conn.execute(
            f"INSERT INTO crons ({_SELECT}) VALUES ({', '.join('?' * len(_CRON_COLS))})",
            [_value(c, record.get(c)) for c in _CRON_COLS],
        )
        return record

    @_threaded
    def cron_get(self: "SqliteStorage", cron_id: str, *, access: AccessFilter | None = None) -> Record | None:
        row = self._one_visible(f"SELECT {_SELECT} FROM crons WHERE cron_id = ?", cron_id, access)
        return _cron(row) if row else None

    @_threaded
    def cron_update(self: "SqliteStorage", cron_id: str, changes: Record) -> Record | None:
        changes = {**changes, "updated_at": now_iso()}
        cols = [c for c in changes if c in _CRON_COLS and c != "cron_id"]
        with self._tx() as conn:
            cur = conn.execute(
                f"UPDATE crons SET {', '.join(f'{c} = ?' for c in cols)} WHERE cron_id = ?",
                [*(_value(c, changes[c]) for c in cols), cron_id],
            )
            if cur.rowcount == 0:
                return None
            row = self._one(f"SELECT {_SELECT} FROM crons WHERE cron_id = ?", (cron_id,))
        return _cron(row)

    @_threaded
    def cron_delete(self: "SqliteStorage", cron_id: str) -> bool:
        return self.conn.execute("DELETE FROM crons WHERE cron_id = ?", (cron_id,)).rowcount > 0

    @_threaded
    def cron_search(self: "SqliteStorage", *, assistant_id: str | None, thread_id: str | None, enabled: bool | None,
                    metadata: Record | None, limit: int, offset: int, sort_by: str,
                    sort_order: SortOrder, access: AccessFilter | None = None,
                    after: query.Position | None = None) -> list[Record]:
        where = query.cron_where(DIALECT, assistant_id, thread_id, enabled, metadata, access)
        sql, params = query.page(DIALECT, "crons", _CRON_COLS, where, sort_by, query.CRON_SORT, sort_order, limit, offset,
                                 after)
        return [{**_cron(r), query.POS: r[-1]} for r in self._all(sql, params)]

    @_threaded
    def cron_count(self: "SqliteStorage", *, assistant_id: str | None, thread_id: str | None,
                   metadata: Record | None, access: AccessFilter | None = None) -> int:
        where = query.cron_where(DIALECT, assistant_id, thread_id, None, metadata, access)
        return self._one(*query.count("crons", where))[0]

    # scheduling ---------------------------------------------------------------------
    @_threaded
    def crons_due(self: "SqliteStorage", now: str, limit: int) -> list[Record]:
        """Enabled, unclaimed crons whose next run is at or before `now` and not past their end."""
        rows = self._all(
            f"SELECT {_SELECT} FROM crons WHERE enabled = 1 AND claimed_run_id IS NULL AND next_run_date <= ? "
            "AND (end_time IS NULL OR end_time >= next_run_date) ORDER BY next_run_date LIMIT ?",
            (now, limit),
        )
        return [_cron(r) for r in rows]

    @_threaded
    def cron_next_due(self: "SqliteStorage") -> str | None:
        """The earliest `next_run_date` the scheduler may have to act on."""
        row = self._one("SELECT MIN(next_run_date) FROM crons WHERE enabled = 1 AND claimed_run_id IS NULL "
                        "AND (end_time IS NULL OR end_time >= next_run_date)")
        return row[0] if row else None

    @_threaded
    def cron_claim(self: "SqliteStorage", cron_id: str, due: str, next_run_date: str, run_id: str) -> bool:
        """Take the tick `due` for run `run_id`; False if another scheduler or a PATCH got there first."""
        cur = self.conn.execute(
            "UPDATE crons SET next_run_date = ?, claimed_run_id = ? "
            "WHERE cron_id = ? AND next_run_date = ? AND claimed_run_id IS NULL AND enabled = 1",
            (next_run_date, run_id, cron_id, due),
        )
        return cur.rowcount > 0

    @_threaded
    def cron_release(self: "SqliteStorage", cron_id: str, run_id: str) -> bool:
        return self.conn.execute("UPDATE crons SET claimed_run_id = NULL WHERE cron_id = ? AND claimed_run_id = ?",
                                 (cron_id, run_id)).rowcount > 0

    @_threaded
    def crons_claimed(self: "SqliteStorage") -> list[tuple[Record, str]]:
        """Crons holding a claim, each with the id of the run its claimed tick was to start."""
        rows = self._all(f"SELECT {_SELECT}, claimed_run_id FROM crons WHERE claimed_run_id IS NOT NULL")
        return [(_cron(r[:-1]), r[-1]) for r in rows]
