"""The storage contract every backend implements.

Records are plain dicts whose JSON columns are already decoded. Timestamps are
ISO-8601 strings in UTC. Backends know nothing about HTTP; they raise no HTTP errors,
they return None / False for "not there" and let the runtime decide what that means.

Methods taking `access` apply a custom auth handler's filter (see access.AccessFilter) in
the query itself: a record outside it reads as "not there". Threads, assistants and crons
are filtered by their own metadata, runs by their thread's. None means unrestricted.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol, Sequence

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from skeino.storage.access import AccessFilter

if TYPE_CHECKING:
    from skeino.storage.query import Position

Record = dict[str, Any]
SortOrder = Literal["asc", "desc"]

@dataclass(frozen=True)
class QueueLimits:
    """The most pending (queued, not yet running) runs allowed; None for no bound."""

    server: int | None = None
    thread: int | None = None


class QueueFull(Exception):
    """run_create refused a run: `scope` ("server" or "thread") already holds `limit` pending runs."""

    def __init__(self, scope: Literal["server", "thread"], limit: int) -> None:
        super().__init__(f"{scope} queue full ({limit} pending runs)")
        self.scope = scope
        self.limit = limit


class LeaseLost(Exception):
    """A write fenced by a run's lease was refused: another replica has taken the run over."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id}: lease lost to another replica")
        self.run_id = run_id


# The (run id, lease epoch) of the run the current task executes for a shared queue. The
# checkpoints such a run writes are fenced by it as well: a backend whose checkpointer
# honours it raises LeaseLost instead of writing once the run was taken over.
LEASE_FENCE: ContextVar[tuple[str, int] | None] = ContextVar("skeino_lease_fence", default=None)

# False while a run executes whose checkpoints LangGraph writes behind its steps (durability
# "async", its default): LangGraph already lets a crash lose the latest of those, so a backend
# may commit them without waiting for the disk. The run's end is recorded with a commit that
# does wait, which makes every checkpoint before it durable too.
CHECKPOINT_FLUSH: ContextVar[bool] = ContextVar("skeino_checkpoint_flush", default=True)


RUN_INFLIGHT = ("pending", "running")
RUN_FINAL = ("success", "error", "timeout", "interrupted")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def iso_from_epoch(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def json_contains(doc: Any, query: Any) -> bool:
    """JSONB-style containment: every key/value of `query` is present in `doc`."""
    if isinstance(query, dict):
        return isinstance(doc, dict) and all(k in doc and json_contains(doc[k], v) for k, v in query.items())
    if isinstance(query, list):
        return isinstance(doc, list) and all(any(json_contains(d, q) for d in doc) for q in query)
    if isinstance(query, bool) or isinstance(doc, bool):
        return type(query) is type(doc) and query == doc
    return doc == query


class Storage(Protocol):
    """Assistants, threads, runs and stream logs, plus LangGraph's checkpointer and store."""

    checkpointer: BaseCheckpointSaver
    store: BaseStore

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def serve(self, *, shared: bool) -> bool:
        """Register this server until close: alone, or as one of replicas sharing a bus.

        False when that contradicts a server already serving this database (a lone server
        and anyone else, or replicas and a lone server).
        """

    # assistants -------------------------------------------------------------
    async def assistant_create(self, record: Record) -> Record | None:
        """Insert version 1 of a new assistant; None if the id exists."""
    async def assistant_get(self, assistant_id: str, *, access: AccessFilter | None = None) -> Record | None: ...
    async def assistant_update(self, assistant_id: str, changes: Record) -> Record | None:
        """Write a new version with `changes` applied and make it the latest."""
    async def assistant_delete(self, assistant_id: str) -> bool:
        """Delete the assistant, its versions and its crons."""
    async def assistant_search(
        self, *, graph_id: str | None, name: str | None, metadata: Record | None,
        limit: int, offset: int, sort_by: str, sort_order: SortOrder, access: AccessFilter | None = None,
        after: Position | None = None,
    ) -> list[Record]:
        """A page of assistants; each row also carries its position (query.POS) for `after`."""
    async def assistant_count(self, *, graph_id: str | None, name: str | None, metadata: Record | None,
                              access: AccessFilter | None = None) -> int: ...
    async def assistant_versions(
        self, assistant_id: str, *, metadata: Record | None, limit: int, offset: int
    ) -> list[Record]: ...
    async def assistant_set_latest(self, assistant_id: str, version: int) -> Record | None: ...

    # threads ----------------------------------------------------------------
    async def thread_create(self, record: Record) -> Record | None:
        """Insert a thread; None if the id exists."""
    async def thread_get(self, thread_id: str, *, access: AccessFilter | None = None) -> Record | None: ...
    async def thread_update(self, thread_id: str, changes: Record, *, merge_metadata: Record | None = None) -> Record | None:
        """Set columns in `changes`; shallow-merge `merge_metadata` into metadata."""
    async def thread_delete(self, thread_id: str) -> bool:
        """Delete the thread, its runs, stream logs, checkpoints and crons, in one transaction."""
    async def thread_ttl_set(self, thread_id: str, *, strategy: str, ttl_minutes: float, now: float | None = None) -> bool:
        """Make the thread expire `ttl_minutes` after `now` (epoch seconds; the current time by default).

        Replaces an earlier TTL; False, writing nothing, if the thread does not exist.
        thread_delete removes the TTL with the thread.
        """
    async def thread_ttl_get(self, thread_id: str) -> Record | None:
        """`{strategy, ttl_minutes, expires_at}` (ISO-8601), or None if the thread has no TTL."""
    async def threads_expired(self, *, now: float | None = None, limit: int = 100) -> list[str]:
        """Ids of threads whose TTL ran out at or before `now`, soonest-expired first."""
    async def store_sweep_expired(self) -> int:
        """Delete the store items whose TTL ran out; how many went. The backend's own sweeper calls it too."""
    async def thread_search(
        self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
        status: str | None, limit: int, offset: int, sort_by: str, sort_order: SortOrder,
        access: AccessFilter | None = None, after: Position | None = None,
    ) -> list[Record]:
        """A page of threads, after the position `after` when given (see query.page); rows carry query.POS."""
    async def thread_count(
        self, *, ids: Sequence[str] | None, metadata: Record | None, values: Record | None, status: str | None,
        access: AccessFilter | None = None,
    ) -> int: ...

    # runs -------------------------------------------------------------------
    async def run_create(self, record: Record, *, reject_if_busy: bool, new_thread: Record | None = None,
                         access: AccessFilter | None = None, limits: QueueLimits | None = None,
                         flush: bool = True) -> Record | None:
        """Insert a pending run and mark its thread busy, in one transaction.

        Returns None, having written nothing, when `reject_if_busy` and the thread
        already has a pending or running run. A missing thread is created from
        `new_thread` when given, else LookupError is raised and nothing is written;
        an existing thread outside `access` raises LookupError too. QueueFull is raised,
        having written nothing, when the thread or the server already holds as many
        pending runs as `limits` allows (the thread's bound is checked first; runs created
        at the same moment on other threads may overshoot the server's by a few).

        `flush=False`: no client hears of the run before a later write that waits for the
        disk (a `wait` request answers once the run's end is recorded), so the commit need
        not wait for it; a crash before then loses the run with nobody told of it.
        """
    async def run_create_superseding(self, record: Record, *, action: Literal["interrupt", "rollback"],
                                     new_thread: Record | None = None, access: AccessFilter | None = None,
                                     limits: QueueLimits | None = None, flush: bool = True) -> tuple[Record, list[Record]]:
        """Insert a pending run in place of every pending or running run of its thread, in one transaction.

        Pending runs of the thread are marked `interrupted` (action "interrupt") or deleted
        with their stream logs and checkpoints (action "rollback"); running runs are left
        for the caller to stop. Returns the record and the superseded runs as they were
        (oldest first). The thread rules are run_create's (new_thread, access, LookupError),
        and so are the queue's (`limits`, QueueFull), counted once the pending runs are gone,
        and `flush`.
        """
    async def run_transition(self, run_id: str, from_status: str, to_status: str) -> bool:
        """Atomically move a run between statuses; False if it was not in `from_status`."""
    async def run_start(self, run_id: str, thread_id: str, thread_metadata: Record) -> bool:
        """Claim a pending run (now running) and stamp its thread's metadata; False if not pending."""
    async def run_finish(self, run_id: str, thread_id: str, status: str, thread_changes: Record, *,
                         fence: int | None = None) -> bool:
        """Record a run's final status and its thread's new state in one transaction; True if written.

        The thread stays `busy` if other runs of it are still pending or running. With
        `fence` (a lease epoch from runs_claim or run_take_over) nothing is written, and
        False returned, unless the run is still running under that very lease.
        """
    async def run_get(self, run_id: str, thread_id: str | None = None, *,
                      access: AccessFilter | None = None) -> Record | None: ...
    async def run_list(self, thread_id: str, *, limit: int, offset: int, status: str | None,
                       access: AccessFilter | None = None, after: Position | None = None) -> list[Record]:
        """A thread's runs, newest first, after the position `after` when given; rows carry query.POS."""
    async def run_update(self, run_id: str, changes: Record, *, fence: int | None = None) -> Record | None:
        """Change a run's columns; None if it is absent (or, with `fence`, not running under that lease)."""
    async def run_delete(self, run_id: str, *, fence: int | None = None) -> bool:
        """Delete the run, its stream log and every checkpoint it wrote, in one transaction; False if absent.

        With `fence`, only while the run is running under that lease (see run_finish).
        """
    async def runs_inflight(self, thread_id: str) -> list[Record]:
        """Pending and running runs of a thread, oldest first."""
    async def run_next_pending(self, thread_id: str) -> Record | None: ...
    async def runs_with_status(self, statuses: Sequence[str], *, access: AccessFilter | None = None) -> list[Record]: ...
    async def run_counts(self) -> dict[str, int]:
        """How many runs are in each status (for metrics; pending is the queue depth)."""
    async def runs_by_ids(self, run_ids: Sequence[str], *, access: AccessFilter | None = None) -> list[Record]: ...

    # leases: the run queue shared by replicas on one database ------------------
    # Times are epoch seconds; `now` defaults to the current time.
    async def runs_claim(self, owner: str, lease_seconds: float, limit: int, *,
                         now: float | None = None) -> list[Record]:
        """Start up to `limit` runs for replica `owner`, oldest first, in one transaction.

        A run is claimable when it is pending, due (run_at <= now), and its thread has no
        running run and no older pending one. Claimed runs become running, leased to `owner`
        until now + lease_seconds under a new lease epoch (each record's `lease_epoch`, the
        fence for the writes of its outcome), with their thread's metadata stamped (graph_id, assistant_id)
        as run_start does. Replicas claiming at once never get the same run, nor two runs of
        one thread.
        """
    async def runs_renew(self, owner: str, lease_seconds: float, run_ids: Sequence[str], *,
                         now: float | None = None) -> list[str]:
        """Extend `owner`'s leases on these running runs; the ids it still holds."""
    async def runs_lease_expired(self, *, now: float | None = None, limit: int = 100) -> list[Record]:
        """Running runs whose lease ran out (their replica stopped renewing it), oldest first."""
    async def runs_expire_leases(self, owner: str) -> int:
        """End every lease `owner` holds now (a replica restarting under its old id); how many."""
    async def run_take_over(self, run_id: str, owner: str, lease_seconds: float, *,
                            now: float | None = None) -> int | None:
        """Lease a run whose lease ran out to `owner` (to recover it): the new lease epoch.

        None if its lease is not expired any more. Every take-over and claim starts a new
        epoch, so the writes of a replica that lost the run (see run_finish) are refused.
        """

    # crons ------------------------------------------------------------------
    # Timestamps (`next_run_date`, `end_time`) are ISO-8601 UTC strings, so they compare as text.
    async def cron_create(self, record: Record) -> Record: ...
    async def cron_get(self, cron_id: str, *, access: AccessFilter | None = None) -> Record | None: ...
    async def cron_update(self, cron_id: str, changes: Record) -> Record | None:
        """Set the columns in `changes` (and updated_at); None if there is no such cron."""
    async def cron_delete(self, cron_id: str) -> bool: ...
    async def cron_search(
        self, *, assistant_id: str | None, thread_id: str | None, enabled: bool | None, metadata: Record | None,
        limit: int, offset: int, sort_by: str, sort_order: SortOrder, access: AccessFilter | None = None,
        after: Position | None = None,
    ) -> list[Record]:
        """A page of crons; each row also carries its position (query.POS) for `after`."""
    async def cron_count(self, *, assistant_id: str | None, thread_id: str | None, metadata: Record | None,
                         access: AccessFilter | None = None) -> int: ...
    async def crons_due(self, now: str, limit: int) -> list[Record]:
        """Enabled, unclaimed crons due at `now` (next_run_date <= now) and not past their end_time."""
    async def cron_next_due(self) -> str | None:
        """The earliest next_run_date among the crons `crons_due` could return."""
    async def cron_claim(self, cron_id: str, due: str, next_run_date: str, run_id: str) -> bool:
        """Atomically take tick `due`: move next_run_date on and hold a claim naming `run_id`.

        False, having changed nothing, if the cron is no longer due at `due`, is disabled,
        or already holds a claim.
        """
    async def cron_release(self, cron_id: str, run_id: str) -> bool:
        """Drop the claim for `run_id` once that run is written; False if the cron held no such claim."""
    async def crons_claimed(self) -> list[tuple[Record, str]]:
        """Crons still holding a claim (a crash came between claim and release), with the claimed run id."""

    # Idempotency-Key claims -------------------------------------------------
    # Times are seconds since the epoch. `scope` keeps callers' keys apart (their identity).
    async def idempotency_claim(self, scope: str, key: str, fingerprint: str, *, now: float, expires_at: float,
                                stale_before: float) -> Record | None:
        """Claim (scope, key) for a request, or return the claim that already holds it.

        In one transaction: claims that expired (`expires_at` <= now) go, and so does this
        key's claim if it is still pending since before `stale_before` (its request died);
        then, if no claim holds the key, a pending one is written and None is returned.
        Otherwise `{fingerprint, response, claimed_at}` of the holder is returned; `response`
        is None while the holder's request is still in progress.
        """
    async def idempotency_complete(self, scope: str, key: str, response: Any) -> None:
        """Record the response (JSON, never None) of the request that holds the claim."""
    async def idempotency_release(self, scope: str, key: str) -> None:
        """Drop a pending claim whose request failed, so a retry may run it again."""

    # resumable stream logs --------------------------------------------------
    async def stream_append(self, run_id: str, events: Sequence[tuple[int, str, bytes]]) -> None: ...
    async def stream_read(self, run_id: str, after: int) -> list[tuple[int, str, bytes]]: ...

    # checkpoint maintenance the LangGraph savers lack -------------------------
    async def checkpoints_delete_for_run(self, thread_id: str, run_id: str) -> None: ...
    async def checkpoints_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None: ...
    async def checkpoints_prune(self, thread_ids: Sequence[str], strategy: str) -> None: ...
    async def checkpoints_delete_thread(self, thread_id: str) -> None: ...
