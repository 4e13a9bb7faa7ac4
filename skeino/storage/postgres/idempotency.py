"""Idempotency-Key claims of the Postgres backend (mixed into PostgresStorage); see Storage.idempotency_claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skeino.storage.base import Record
from skeino.storage.postgres.common import jsonb

if TYPE_CHECKING:
    from skeino.storage.postgres.backend import PostgresStorage


class IdempotencyTables:
    """One row per (scope, key); the primary key decides which of two simultaneous claims wins."""

    async def idempotency_claim(self: "PostgresStorage", scope: str, key: str, fingerprint: str, *, now: float,
                                expires_at: float, stale_before: float) -> Record | None:
        async with self._tx() as conn:
            await self._exec("DELETE FROM idempotency_keys WHERE expires_at <= %s", (now,), conn)
            await self._exec(
                "DELETE FROM idempotency_keys WHERE scope = %s AND key = %s AND response IS NULL AND claimed_at < %s",
                (scope, key, stale_before), conn,
            )
            inserted = await self._exec(
                "INSERT INTO idempotency_keys (scope, key, fingerprint, response, claimed_at, expires_at) "
                "VALUES (%s, %s, %s, NULL, %s, %s) ON CONFLICT (scope, key) DO NOTHING",
                (scope, key, fingerprint, now, expires_at), conn,
            )
            if inserted:
                return None
            return await self._one(
                "SELECT fingerprint, response, claimed_at FROM idempotency_keys WHERE scope = %s AND key = %s",
                (scope, key), conn,
            )

    async def idempotency_complete(self: "PostgresStorage", scope: str, key: str, response: Any) -> None:
        await self._exec("UPDATE idempotency_keys SET response = %s WHERE scope = %s AND key = %s",
                         (jsonb(response), scope, key))

    async def idempotency_release(self: "PostgresStorage", scope: str, key: str) -> None:
        await self._exec("DELETE FROM idempotency_keys WHERE scope = %s AND key = %s AND response IS NULL",
                         (scope, key))
