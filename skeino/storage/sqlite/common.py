"""Helpers every SQLite table module shares: JSON columns and running on the storage thread."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

import orjson

from skeino.storage.access import AccessFilter
from skeino.storage.base import Record
from skeino.storage.query import JSON_COLS, Dialect
from skeino.storage.runkwargs import restored

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage

T = TypeVar("T")


def _enc(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _dec(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def _row(cols: Sequence[str], row: Sequence[Any]) -> Record:
    rec = {c: (_dec(v) if c in JSON_COLS else v) for c, v in zip(cols, row)}
    return restored(rec) if "kwargs" in rec else rec


def _access(col: str, access: AccessFilter) -> tuple[str, list[Any]]:
    return f"access_match({col}, ?)", [access.json]


# SQLite's LIKE ignores case (for ASCII); json_contains and access_match are registered on
# every connection.
DIALECT = Dialect(param="?", contains="json_contains({col}, {param})", ilike="{col} LIKE {param}",
                  encode_json=_enc, tiebreak="rowid", access=_access,
                  json_text="json_extract({col}, '$.{key}')", json_is_text="json_type({col}, '$.{key}') = 'text'")


def _threaded(fn: Callable[..., T]) -> Callable[..., Any]:
    """Make a storage method async: its whole body runs in one hop on the storage thread."""

    @functools.wraps(fn)
    async def call(self: "SqliteStorage", *args: Any, **kwargs: Any) -> T:
        return await self._db.run(fn, self, *args, **kwargs)

    return call
