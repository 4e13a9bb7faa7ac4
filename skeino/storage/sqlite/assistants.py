"""The assistants tables of the SQLite backend (mixed into SqliteStorage)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, SortOrder, now_iso
from skeino.storage.query import ASSISTANT_COLS as _ASSISTANT_COLS, JSON_COLS as _JSON_COLS
from skeino.storage.sqlite.common import DIALECT, _enc, _row, _threaded

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage


class AssistantTables:
    """Assistants and their versions."""

    @_threaded
    def assistant_create(self: "SqliteStorage", record: Record) -> Record | None:
        rec = {**record, "version": 1}
        with self._tx() as conn:
            if self._one("SELECT 1 FROM assistants WHERE assistant_id = ?", (rec["assistant_id"],)):
                return None
            conn.execute(
                f"INSERT INTO assistants ({', '.join(_ASSISTANT_COLS)}) VALUES ({', '.join('?' * len(_ASSISTANT_COLS))})",
                [(_enc(rec[c]) if c in _JSON_COLS else rec[c]) for c in _ASSISTANT_COLS],
            )
            self._insert_version(conn, rec)
        return rec

    def _insert_version(self: "SqliteStorage", conn: sqlite3.Connection, rec: Record) -> None:
        conn.execute(
            "INSERT INTO assistant_versions (assistant_id, version, graph_id, config, context, metadata, name, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec["assistant_id"], rec["version"], rec["graph_id"], _enc(rec["config"]), _enc(rec["context"]),
             _enc(rec["metadata"]), rec["name"], rec["description"], rec["updated_at"]),
        )

    @_threaded
    def assistant_get(self: "SqliteStorage", assistant_id: str, *, access: AccessFilter | None = None) -> Record | None:
        row = self._one_visible(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?",
                                assistant_id, access)
        return _row(_ASSISTANT_COLS, row) if row else None

    @_threaded
    def assistant_update(self: "SqliteStorage", assistant_id: str, changes: Record) -> Record | None:
        with self._tx() as conn:
            row = self._one(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", (assistant_id,))
            if not row:
                return None
            current = _row(_ASSISTANT_COLS, row)
            max_version = (self._one("SELECT MAX(version) FROM assistant_versions WHERE assistant_id = ?", (assistant_id,)))[0] or current["version"]
            rec = {**current, **changes, "version": max_version + 1, "updated_at": now_iso()}
            self._write_assistant(conn, rec)
            self._insert_version(conn, rec)
        return rec

    def _write_assistant(self: "SqliteStorage", conn: sqlite3.Connection, rec: Record) -> None:
        conn.execute(
            "UPDATE assistants SET graph_id=?, config=?, context=?, metadata=?, name=?, description=?, version=?, updated_at=? WHERE assistant_id=?",
            (rec["graph_id"], _enc(rec["config"]), _enc(rec["context"]), _enc(rec["metadata"]), rec["name"],
             rec["description"], rec["version"], rec["updated_at"], rec["assistant_id"]),
        )

    @_threaded
    def assistant_delete(self: "SqliteStorage", assistant_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM assistants WHERE assistant_id = ?", (assistant_id,))
            conn.execute("DELETE FROM assistant_versions WHERE assistant_id = ?", (assistant_id,))
            conn.execute("DELETE FROM crons WHERE assistant_id = ?", (assistant_id,))
            return cur.rowcount > 0

    @_threaded
    def assistant_search(self: "SqliteStorage", *, graph_id: str | None, name: str | None, metadata: Record | None,
                         limit: int, offset: int, sort_by: str, sort_order: SortOrder,
                         access: AccessFilter | None = None, after: query.Position | None = None) -> list[Record]:
        where = query.assistant_where(DIALECT, graph_id, name, metadata, access)
        return self._page("assistants", _ASSISTANT_COLS, where, sort_by, query.ASSISTANT_SORT, sort_order, limit, offset,
                          after)

    @_threaded
    def assistant_count(self: "SqliteStorage", *, graph_id: str | None, name: str | None, metadata: Record | None,
                        access: AccessFilter | None = None) -> int:
        where = query.assistant_where(DIALECT, graph_id, name, metadata, access)
        return self._one(*query.count("assistants", where))[0]

    @_threaded
    def assistant_versions(self: "SqliteStorage", assistant_id: str, *, metadata: Record | None, limit: int, offset: int) -> list[Record]:
        where = query.Where(DIALECT).eq("assistant_id", assistant_id).contains("metadata", metadata)
        rows = self._all(
            f"SELECT {query.cols(query.VERSION_COLS)} FROM assistant_versions{where.sql} ORDER BY version DESC LIMIT ? OFFSET ?",
            [*where.params, limit, offset],
        )
        return [_row(query.VERSION_COLS, r) for r in rows]

    @_threaded
    def assistant_set_latest(self: "SqliteStorage", assistant_id: str, version: int) -> Record | None:
        cols = ("graph_id", "config", "context", "metadata", "name", "description")
        with self._tx() as conn:
            row = self._one(
                f"SELECT {', '.join(cols)} FROM assistant_versions WHERE assistant_id = ? AND version = ?", (assistant_id, version)
            )
            if not row:
                return None
            cur_row = self._one(f"SELECT {', '.join(_ASSISTANT_COLS)} FROM assistants WHERE assistant_id = ?", (assistant_id,))
            if not cur_row:
                return None
            rec = {**_row(_ASSISTANT_COLS, cur_row), **_row(cols, row), "version": version, "updated_at": now_iso()}
            self._write_assistant(conn, rec)
        return rec
