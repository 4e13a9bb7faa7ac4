"""The tables and notifications behind the Postgres bus (mixed into PostgresStorage).

Replicas without Redis share live run events, cancel signals and wake-ups through the
database: events are rows (so any replica replays them for `Last-Event-ID`), and NOTIFY on
one channel only says where to look again ("run <id>", "thread <id>") or carries a short
control message ("wake", "cancel <id> <action>"): payloads stay far below NOTIFY's 8000 bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from psycopg import AsyncConnection

from skeino.storage.postgres.common import jsonb

if TYPE_CHECKING:
    from skeino.storage.postgres.backend import PostgresStorage

logger = logging.getLogger("skeino.bus")

CHANNEL = "skeino_bus"
Event = tuple[int, str, bytes]
# A thread's v2 event as stored: (id, seq, run_id, method, namespace, frame).
ThreadRow = tuple[int, int, str, str, list[str], bytes]


class BusTables:
    """Run event logs, their ends, cancel signals and thread (v2) event logs, with NOTIFY."""

    async def bus_notify(self: "PostgresStorage", message: str) -> None:
        await self._exec("SELECT pg_notify(%s, %s)", (CHANNEL, message))

    async def bus_send(self: "PostgresStorage", run_id: str, events: Sequence[Event], thread_id: str | None = None,
                       thread_events: Sequence[tuple[int, str, str, Sequence[str], bytes]] = (),
                       end: tuple[str, bytes] | None = None) -> None:
        """Append a run's events, its thread's v2 events (seq, run_id, method, namespace, frame) and
        its end (the first one stands), and tell their followers: one statement, so one commit.

        A flush of a run wrote its run and thread events in two autocommit statements, each
        waiting for its own WAL flush. Every part may be empty; its rows are then none.
        """
        notes = ([f"run {run_id}"] if events or end is not None else []) + \
            ([f"thread {thread_id}"] if thread_events else [])
        if not notes:
            return
        now = time.time()
        await self._exec(
            "WITH added AS (INSERT INTO bus_events (run_id, seq, event, data, created_at) "
            "SELECT %(run)s, s, e, d, %(now)s FROM unnest(%(seqs)s::int[], %(names)s::text[], %(data)s::bytea[]) "
            "AS x(s, e, d) ON CONFLICT DO NOTHING), "
            "threaded AS (INSERT INTO bus_thread_events (thread_id, seq, run_id, method, namespace, frame, created_at) "
            "SELECT %(thread)s, s, r, m, n, f, %(now)s FROM unnest(%(tseqs)s::bigint[], %(truns)s::text[], "
            "%(methods)s::text[], %(namespaces)s::jsonb[], %(frames)s::bytea[]) AS x(s, r, m, n, f)), "
            "ended AS (INSERT INTO bus_ends (run_id, status, result, ended_at) "
            "SELECT %(run)s, st, r, %(now)s FROM unnest(%(status)s::text[], %(result)s::bytea[]) AS x(st, r) "
            "ON CONFLICT DO NOTHING) "
            "SELECT pg_notify(%(channel)s, note) FROM unnest(%(notes)s::text[]) AS note",
            {"run": run_id, "now": now, "seqs": [e[0] for e in events], "names": [e[1] for e in events],
             "data": [e[2] for e in events], "thread": thread_id, "tseqs": [e[0] for e in thread_events],
             "truns": [e[1] for e in thread_events], "methods": [e[2] for e in thread_events],
             "namespaces": [jsonb(list(e[3])) for e in thread_events], "frames": [e[4] for e in thread_events],
             "status": [end[0]] if end is not None else [], "result": [end[1]] if end is not None else [],
             "channel": CHANNEL, "notes": notes})

    async def bus_publish(self: "PostgresStorage", run_id: str, events: Sequence[Event]) -> None:
        """Append a run's events and tell the followers."""
        await self.bus_send(run_id, events)

    async def bus_end(self: "PostgresStorage", run_id: str, status: str, result: bytes) -> None:
        """Record a run's end (the first one stands) and tell its followers."""
        await self.bus_send(run_id, (), end=(status, result))

    async def bus_read(self: "PostgresStorage", run_id: str, after: int) -> tuple[list[Event], tuple[str, bytes] | None]:
        """The run's events with id > after, and its end if recorded (one snapshot: an end comes after every event)."""
        rows = await self._all(
            "SELECT seq, event, data, false AS final FROM bus_events WHERE run_id = %s AND seq > %s "
            "UNION ALL SELECT -1, status, result, true FROM bus_ends WHERE run_id = %s ORDER BY final, seq",
            (run_id, after, run_id))
        end = next(((r["event"], bytes(r["data"])) for r in rows if r["final"]), None)
        return [(int(r["seq"]), r["event"], bytes(r["data"])) for r in rows if not r["final"]], end

    async def bus_exists(self: "PostgresStorage", run_id: str, *, ended_since: float) -> bool:
        """Whether the run's log is kept: it ended at `ended_since` or later, or has events and no end yet."""
        return await self._one(
            "SELECT 1 FROM bus_ends WHERE run_id = %s AND ended_at >= %s UNION ALL SELECT 1 FROM bus_events e "
            "WHERE run_id = %s AND NOT EXISTS (SELECT 1 FROM bus_ends d WHERE d.run_id = e.run_id) LIMIT 1",
            (run_id, ended_since, run_id)) is not None

    async def bus_reset(self: "PostgresStorage", run_id: str) -> None:
        """Forget a run's events, end and cancel signal (it runs again from its first event)."""
        async with self._tx() as conn:
            for table in ("bus_events", "bus_ends", "bus_cancels"):
                await self._exec(f"DELETE FROM {table} WHERE run_id = %s", (run_id,), conn)

    async def bus_cancel(self: "PostgresStorage", run_id: str, action: str) -> None:
        """Keep the cancel (a replica claiming the run later reads it) and announce it."""
        await self._exec(
            "WITH kept AS (INSERT INTO bus_cancels (run_id, action, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET action = EXCLUDED.action) SELECT pg_notify(%s, %s)",
            (run_id, action, time.time(), CHANNEL, f"cancel {run_id} {action}"))

    async def bus_cancel_requested(self: "PostgresStorage", run_id: str) -> str | None:
        row = await self._one("SELECT action FROM bus_cancels WHERE run_id = %s", (run_id,))
        return row["action"] if row else None

    async def bus_thread_publish(self: "PostgresStorage", thread_id: str,
                                 events: Sequence[tuple[int, str, str, Sequence[str], bytes]]) -> None:
        """Append v2 events (seq, run_id, method, namespace, frame) to the thread's log and tell its followers."""
        if events:
            await self.bus_send(events[0][1], (), thread_id, events)

    async def bus_thread_read(self: "PostgresStorage", thread_id: str, after_id: int) -> list[ThreadRow]:
        rows = await self._all("SELECT id, seq, run_id, method, namespace, frame FROM bus_thread_events "
                               "WHERE thread_id = %s AND id > %s ORDER BY id", (thread_id, after_id))
        return [(int(r["id"]), int(r["seq"]), r["run_id"], r["method"], r["namespace"], bytes(r["frame"]))
                for r in rows]

    async def bus_expire(self: "PostgresStorage", *, keep_seconds: float, orphan_seconds: float,
                         thread_keep: int, now: float | None = None) -> int:
        """Delete what the bus no longer needs, as Redis expires its keys; how many rows went.

        A run's events go `keep_seconds` after its end, or `orphan_seconds` after they were
        written when no end came (its replica died); cancels after `orphan_seconds`; a
        thread's v2 events after `orphan_seconds`, and beyond its newest `thread_keep`.
        """
        now = time.time() if now is None else now
        gone = 0
        async with self._tx() as conn:
            gone += await self._exec(
                "DELETE FROM bus_events e USING bus_ends d WHERE e.run_id = d.run_id AND d.ended_at < %s",
                (now - keep_seconds,), conn)
            gone += await self._exec("DELETE FROM bus_ends WHERE ended_at < %s", (now - keep_seconds,), conn)
            gone += await self._exec("DELETE FROM bus_events WHERE created_at < %s", (now - orphan_seconds,), conn)
            gone += await self._exec("DELETE FROM bus_cancels WHERE created_at < %s", (now - orphan_seconds,), conn)
            gone += await self._exec("DELETE FROM bus_thread_events WHERE created_at < %s",
                                     (now - orphan_seconds,), conn)
            gone += await self._exec(
                "DELETE FROM bus_thread_events t USING (SELECT thread_id, id FROM (SELECT thread_id, id, "
                "row_number() OVER (PARTITION BY thread_id ORDER BY id DESC) AS n FROM bus_thread_events) r "
                "WHERE n = %s) cut WHERE t.thread_id = cut.thread_id AND t.id < cut.id", (thread_keep,), conn)
        return gone

    async def bus_listen(self: "PostgresStorage", on_message: Callable[[str], None],
                         ready: asyncio.Event | None = None) -> None:
        """Deliver every notification on the bus's channel until cancelled, reconnecting when lost.

        Runs on a connection of its own (a listening session cannot serve the pool).
        """
        while True:
            try:
                conn: AsyncConnection[Any] = await AsyncConnection.connect(self.url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if ready is not None:
                        ready.set()
                    # Whatever was said while (re)connecting may be missed: listeners poll as well.
                    on_message("wake")
                    async for note in conn.notifies():
                        on_message(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server restarted or the network blipped: listen again
                logger.warning("bus notifications lost (%s: %s); listening again", type(exc).__name__, exc)
                await asyncio.sleep(1)
