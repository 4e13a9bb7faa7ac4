"""Idempotency-Key claims of the SQLite backend (mixed into SqliteStorage); see Storage.idempotency_claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skeino.storage.base import Record
from skeino.storage.sqlite.common import _dec, _enc, _threaded

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage


class IdempotencyTables:
    """One row per (scope, key): the request's fingerprint, then the response it got."""

    @_threaded
    def idempotency_claim(self: "SqliteStorage", scope: str, key: str, fingerprint: str, *, now: float,
                          expires_at: float, stale_before: float) -> Record | None:
        with self._tx() as conn:
            conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
            conn.execute(
                "DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND response IS NULL AND claimed_at < ?",
                (scope, key, stale_before),
            )
            row = self._one(
                "SELECT fingerprint, response, claimed_at FROM idempotency_keys WHERE scope = ? AND key = ?", (scope, key)
            )
            if row is not None:
                return {"fingerprint": row[0], "response": _dec(row[1]), "claimed_at": row[2]}
            conn.execute(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, response, claimed_at, expires_at) "
                "VALUES (?, ?, ?, NULL, ?, ?)",
                (scope, key, fingerprint, now, expires_at),
            )
            return None

    @_threaded
    def idempotency_complete(self: "SqliteStorage", scope: str, key: str, response: Any) -> None:
        self.conn.execute("UPDATE idempotency_keys SET response = ? WHERE scope = ? AND key = ?",
                          (_enc(response), scope, key))

    @_threaded
    def idempotency_release(self: "SqliteStorage", scope: str, key: str) -> None:
        self.conn.execute("DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND response IS NULL", (scope, key))
