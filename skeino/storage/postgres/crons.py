"""The crons table of the Postgres backend (mixed into PostgresStorage); see sqlite/crons.py for the claim."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skeino.storage import query
from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, SortOrder, now_iso
from skeino.storage.postgres.common import DIALECT
from skeino.storage.query import CRON_COLS, cols

if TYPE_CHECKING:
    from skeino.storage.postgres.backend import PostgresStorage

_SELECT = f"SELECT {cols(CRON_COLS)} FROM crons"
_DUE = "enabled AND claimed_run_id IS NULL AND (end_time IS NULL OR end_time >= next_run_date)"


class CronTables:
    """Crons, and the conditional update that gives each tick to exactly one scheduler."""

    async def cron_create(self: "PostgresStorage", record: Record) -> Record:
        await self._exec(*query.insert(DIALECT, "crons", CRON_COLS, record))
        return record

    async def cron_get(self: "PostgresStorage", cron_id: str, *, access: AccessFilter | None = None) -> Record | None:
        where = query.Where(DIALECT).eq("cron_id", cron_id).access(access)
        return await self._one(f"{_SELECT}{where.sql}", where.params)

    async def cron_update(self: "PostgresStorage", cron_id: str, changes: Record) -> Record | None:
        fields = {c: v for c, v in {**changes, "updated_at": now_iso()}.items() if c in CRON_COLS and c != "cron_id"}
        sets, params = query.assignments(DIALECT, fields)
        return await self._one(f"UPDATE crons SET {sets} WHERE cron_id = %s RETURNING {cols(CRON_COLS)}",
                               [*params, cron_id])

    async def cron_delete(self: "PostgresStorage", cron_id: str) -> bool:
        return await self._exec("DELETE FROM crons WHERE cron_id = %s", (cron_id,)) > 0

    async def cron_search(self: "PostgresStorage", *, assistant_id: str | None, thread_id: str | None,
                          enabled: bool | None, metadata: Record | None, limit: int, offset: int, sort_by: str,
                          sort_order: SortOrder, access: AccessFilter | None = None,
                          after: query.Position | None = None) -> list[Record]:
        where = query.cron_where(DIALECT, assistant_id, thread_id, enabled, metadata, access)
        return await self._all(*query.page(DIALECT, "crons", CRON_COLS, where, sort_by, query.CRON_SORT, sort_order,
                                           limit, offset, after))

    async def cron_count(self: "PostgresStorage", *, assistant_id: str | None, thread_id: str | None,
                         metadata: Record | None, access: AccessFilter | None = None) -> int:
        return await self._count("crons", query.cron_where(DIALECT, assistant_id, thread_id, None, metadata, access))

    async def crons_due(self: "PostgresStorage", now: str, limit: int) -> list[Record]:
        return await self._all(f"{_SELECT} WHERE {_DUE} AND next_run_date <= %s ORDER BY next_run_date LIMIT %s",
                               (now, limit))

    async def cron_next_due(self: "PostgresStorage") -> str | None:
        row = await self._one(f"SELECT MIN(next_run_date) AS due FROM crons WHERE {_DUE}")
        return row["due"] if row else None

    async def cron_claim(self: "PostgresStorage", cron_id: str, due: str, next_run_date: str, run_id: str) -> bool:
        return await self._exec(
            "UPDATE crons SET next_run_date = %s, claimed_run_id = %s "
            "WHERE cron_id = %s AND next_run_date = %s AND claimed_run_id IS NULL AND enabled",
            (next_run_date, run_id, cron_id, due),
        ) > 0

    async def cron_release(self: "PostgresStorage", cron_id: str, run_id: str) -> bool:
        return await self._exec("UPDATE crons SET claimed_run_id = NULL WHERE cron_id = %s AND claimed_run_id = %s",
                                (cron_id, run_id)) > 0

    async def crons_claimed(self: "PostgresStorage") -> list[tuple[Record, str]]:
        rows = await self._all(f"SELECT {cols(CRON_COLS)}, claimed_run_id FROM crons WHERE claimed_run_id IS NOT NULL")
        return [({c: r[c] for c in CRON_COLS}, r["claimed_run_id"]) for r in rows]
