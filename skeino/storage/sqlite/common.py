"""Helpers every SQLite table module shares: JSON columns and running on the storage thread."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import orjson

if TYPE_CHECKING:
    from skeino.storage.sqlite.backend import SqliteStorage

T = TypeVar("T")


def _enc(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _dec(value: Any) -> Any:
    return None if value is None else orjson.loads(value)


def _threaded(fn: Callable[..., T]) -> Callable[..., Any]:
    """Make a storage method async: its whole body runs in one hop on the storage thread."""

    @functools.wraps(fn)
    async def call(self: "SqliteStorage", *args: Any, **kwargs: Any) -> T:
        return await self._db.run(fn, self, *args, **kwargs)

    return call
