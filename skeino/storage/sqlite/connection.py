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

# A call's caller (an asyncio or a concurrent future), its result and its error.
_Outcome = tuple[Any, Any, "BaseException | None"]


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


def _fail(done: list[_Outcome], start: int, error: BaseException) -> None:
    """Turn the answers from `start` on into `error`: their writes did not commit."""
    for i in range(start, len(done)):
        target, _, own = done[i]
        done[i] = (target, None, own or error)


def _deliver(done: list[_Outcome]) -> None:
    """Answer every caller; those on an event loop with one wake-up of that loop."""
    settled: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for target, result, error in done:
        if isinstance(target, asyncio.Future):
            settled.setdefault(target.get_loop(), []).append((target, result, error))
        elif error is not None:
            target.set_exception(error)
        else:
            target.set_result(result)
    for loop, results in settled.items():
        try:
            loop.call_soon_threadsafe(_settle_all, results)
        except RuntimeError:  # the loop closed while we worked: nobody is waiting
            pass


def _settle_all(settled: list[_Outcome]) -> None:
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
    Calls queued together are served as one batch in one transaction, answered with one
    wake-up of the event loop: under load the thread crossings and the commits, not the
    SQL, were the cost.
    """

    def __init__(self, path: str, api: ModuleType = sqlite3) -> None:
        self.path = path
        self.api = api
        # Items: one call (from another thread), the calls of one event-loop turn, or None to stop.
        self._queue: queue.SimpleQueue[Any]
        self._queue = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[Callable[[], Any], asyncio.Future[Any]]]] = {}
        self._thread: threading.Thread | None = None
        self.conn: sqlite3.Connection | None = None
        # Off while the schema is set up (statements that must not run inside a
        # transaction); the backend turns it on once the connection serves storage calls.
        self.group_commits = False

    def _serve(self) -> None:
        while True:
            batch: list[Any] = []
            item = self._queue.get()
            # Take everything already queued: one wake-up of this thread and one of the
            # event loop serve the whole batch instead of one each.
            while True:
                if isinstance(item, list):
                    batch.extend(item)
                else:
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            done: list[_Outcome] = []
            stop = self._serve_batch(batch, done)
            _deliver(done)
            if stop:
                return

    def _serve_batch(self, batch: list[Any], done: list[_Outcome]) -> bool:
        """Run a batch's calls, in one transaction when grouping; True when told to stop.

        One COMMIT for the batch instead of one per call (and one per statement of
        LangGraph's saver, which autocommits): under load the commits were most of this
        thread's work. Each call runs in its own savepoint, so one that fails leaves no
        trace and the others still commit; nobody is answered before the commit, so an
        answered write is as durable as before.
        """
        conn = self.conn
        group = -1  # where in `done` the open transaction's calls start; -1: none open
        for item in batch:
            if item is None:
                self._commit(done, group)
                return True
            fn, target = item
            if group < 0 and self.group_commits and conn is not None:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    group = len(done)
                except Exception as exc:
                    done.append((target, None, exc))
                    continue
            elif group >= 0 and not self.group_commits:
                self._commit(done, group)
                group = -1
            if group < 0:
                try:
                    done.append((target, fn(), None))
                except BaseException as exc:  # handed to the caller, who re-raises it
                    done.append((target, None, exc))
                continue
            done.append(_in_savepoint(conn, fn, target))
            if not conn.in_transaction:  # type: ignore[union-attr]
                # SQLite rolled the whole transaction back (e.g. disk full): the calls
                # before this one lost their writes too.
                _fail(done, group, sqlite3.OperationalError("the transaction was rolled back"))
                group = -1
        self._commit(done, group)
        return False

    def _commit(self, done: list[_Outcome], group: int) -> None:
        conn = self.conn
        if group < 0 or conn is None:
            return
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _fail(done, group, exc)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn on the storage thread and await its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            # The calls made in this turn of the event loop go over as one: one wake-up
            # of the storage thread (a kernel call, and a hand-over of the GIL) per turn
            # instead of per call.
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append((functools.partial(fn, *args, **kwargs), future))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put(self._pending.pop(loop))

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
        self.group_commits = False  # closing inside a transaction would discard it
        if self.conn is not None:
            await self.run(self.conn.close)
            self.conn = None
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 5)
            self._thread = None


def _in_savepoint(conn: Any, fn: Callable[[], Any], target: Any) -> _Outcome:
    """One call inside the batch's transaction: its writes stay only if it succeeds."""
    conn.execute("SAVEPOINT call")
    try:
        result = fn()
    except BaseException as exc:  # handed to the caller, who re-raises it
        if conn.in_transaction:
            conn.execute("ROLLBACK TO call")
            conn.execute("RELEASE call")
        return target, None, exc
    conn.execute("RELEASE call")
    return target, result, None


class SaverConnection:
    """The connection as LangGraph's SqliteSaver sees it: its commits are the storage thread's.

    The saver commits after every operation; inside a batch that would end the batch's
    transaction under the calls still in it. Outside one each statement commits by itself
    (the connection is in autocommit mode), so the saver's commit never has work to do.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def commit(self) -> None:
        pass
