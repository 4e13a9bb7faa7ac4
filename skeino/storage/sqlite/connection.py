"""The storage thread: one sqlite3 connection and the only thread that ever touches it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import queue
import sqlite3
import threading
from types import ModuleType
from typing import Any, Callable, TypeVar

import orjson

from skeino.storage.access import matches_json
from skeino.storage.base import json_contains

T = TypeVar("T")


def _sql_contains(doc: str | None, query: str) -> int:
    return int(json_contains(orjson.loads(doc) if doc else None, orjson.loads(query)))


def _sql_access(doc: str | None, filter_json: str) -> int:
    return int(matches_json(doc, filter_json))


_PRAGMAS = (
    # WAL lets readers proceed while a run writes; NORMAL sync is durable across process
    # crashes (only an OS crash can lose the newest commits).
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class StorageThread:
    """One sqlite3 connection and the only thread that ever touches it.

    A plain queue and call_soon_threadsafe rather than an executor: every storage call
    pays this hop, and the executor's future chaining cost more than the SQL itself.
    Calls queued together are served as one batch, answered with one wake-up of the
    event loop: under load the thread crossings, not the SQL, were the cost.
    """

    def __init__(self, path: str, api: ModuleType = sqlite3) -> None:
        self.path = path
        self.api = api
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any] | concurrent.futures.Future[Any]] | None]
        self._queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.conn: sqlite3.Connection | None = None

    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Take everything already queued: one wake-up of this thread and one of the
            # event loop serve the whole batch instead of one each.
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
            for item in batch:
                if item is None:
                    self._deliver(settled)
                    return
                fn, target = item
                try:
                    result, error = fn(), None
                except BaseException as exc:  # handed to the caller, who re-raises it
                    result, error = None, exc
                if isinstance(target, asyncio.Future):
                    settled.setdefault(target.get_loop(), []).append((target, result, error))
                elif error is not None:
                    target.set_exception(error)
                else:
                    target.set_result(result)
            self._deliver(settled)

    @staticmethod
    def _deliver(settled: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]]) -> None:
        for loop, results in settled.items():
            try:
                loop.call_soon_threadsafe(_settle_all, results)
            except RuntimeError:  # the loop closed while we worked: nobody is waiting
                pass

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn on the storage thread and await its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((functools.partial(fn, *args, **kwargs), future))
        return await future

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn on the storage thread from another thread, blocking until it is done."""
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((functools.partial(fn, *args, **kwargs), result))
        return result.result()

    async def open(self) -> sqlite3.Connection:
        self._thread = threading.Thread(target=self._serve, name="skeino-sqlite", daemon=True)
        self._thread.start()

        def connect() -> sqlite3.Connection:
            conn = self.api.connect(self.path, check_same_thread=False, isolation_level=None)
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            conn.create_function("json_contains", 2, _sql_contains, deterministic=True)
            conn.create_function("access_match", 2, _sql_access, deterministic=True)
            return conn

        self.conn = await self.run(connect)
        return self.conn

    async def close(self) -> None:
        if self.conn is not None:
            await self.run(self.conn.close)
            self.conn = None
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 5)
            self._thread = None
