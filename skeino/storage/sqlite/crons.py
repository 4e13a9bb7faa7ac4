"""The crons table of the SQLite backend (mixed into SqliteStorage)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, SortOrder, now_iso
from skeino.storage.sqlite.common import _dec, _enc, _threaded

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage

_CRON_COLS = ("cron_id", "assistant_id", "thread_id", "user_id", "schedule", "timezone", "end_time", "payload",
              "metadata", "on_run_completed", "enabled", "next_run_date", "created_at", "updated_at")
_CRON_JSON = {"payload", "metadata"}
_CRON_SORT = {"cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"}
_SELECT = ", ".join(_CRON_COLS)


def _cron(row: Sequence[Any]) -> Record:
    rec = {c: (_dec(v) if c in _CRON_JSON else v) for c, v in zip(_CRON_COLS, row)}
    rec["enabled"] = bool(rec["enabled"])
    return rec


def _value(col: str, value: Any) -> Any:
    if col in _CRON_JSON:
        return _enc(value)
    return int(value) if col == "enabled" else value


def _where(assistant_id: str | None, thread_id: str | None, enabled: bool | None,
           metadata: Record | None, access: AccessFilter | None) -> tuple[str, list[Any]]:
    where, params = [], []
    if access is not None:
        where.append("access_match(metadata, ?)")
        params.append(access.json)
    for col, value in (("assistant_id", assistant_id), ("thread_id", thread_id)):
        if value:
            where.append(f"{col} = ?")
            params.append(value)
    if enabled is not None:
        where.append("enabled = ?")
        params.append(int(enabled))
    if metadata:
        where.append("json_contains(metadata, ?)")
        params.append(_enc(metadata))
    return (" WHERE " + " AND ".join(where)) if where else "", params


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
        sql, params = f"SELECT {_SELECT} FROM crons WHERE cron_id = ?", [cron_id]
        if access is not None:
            sql += " AND access_match(metadata, ?)"
            params.append(access.json)
        row = self._one(sql, params)
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
                    sort_order: SortOrder, access: AccessFilter | None = None) -> list[Record]:
        where, params = _where(assistant_id, thread_id, enabled, metadata, access)
        order = "ASC" if sort_order == "asc" else "DESC"
        column = sort_by if sort_by in _CRON_SORT else "created_at"
        rows = self._all(
            f"SELECT {_SELECT} FROM crons{where} ORDER BY {column} {order}, rowid {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_cron(r) for r in rows]

    @_threaded
    def cron_count(self: "SqliteStorage", *, assistant_id: str | None, thread_id: str | None,
                   metadata: Record | None, access: AccessFilter | None = None) -> int:
        where, params = _where(assistant_id, thread_id, None, metadata, access)
        return self._one(f"SELECT COUNT(*) FROM crons{where}", params)[0]

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
    def cron_release(self: "SqliteStorage", cron_id: str, run_id: str) -> None:
        self.conn.execute("UPDATE crons SET claimed_run_id = NULL WHERE cron_id = ? AND claimed_run_id = ?",
                          (cron_id, run_id))

    @_threaded
    def crons_claimed(self: "SqliteStorage") -> list[tuple[Record, str]]:
        """Crons holding a claim, each with the id of the run its claimed tick was to start."""
        rows = self._all(f"SELECT {_SELECT}, claimed_run_id FROM crons WHERE claimed_run_id IS NOT NULL")
        return [(_cron(r[:-1]), r[-1]) for r in rows]
