"""Crons: schedules that start ordinary runs, and the scheduler that starts each tick once."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from langgraph_sdk.auth.types import BaseAuthContext

from skeino.auth.custom import Authorizer
from skeino.auth.user import User, caller
from skeino.errors import BadRequest, Invalid, NotFound, SkeinoError
from skeino.runtime.assistants import AssistantService, is_uuid
from skeino.runtime.runs import RunService
from skeino.runtime.webhooks import WebhookSender
from skeino.runtime import paging
from skeino.storage import query
from skeino.storage.base import Record, Storage, now_iso

logger = logging.getLogger("skeino.crons")

# The fields of a cron's payload that become the run's request body.
_RUN_FIELDS = ("assistant_id", "input", "config", "context", "webhook", "multitask_strategy", "interrupt_before",
               "interrupt_after", "stream_mode", "stream_subgraphs", "stream_resumable", "durability",
               "checkpoint_during")
_BATCH = 100
_MAX_IDLE = 30.0  # re-read the schedule at least this often (another process may share the database)
# A tick's claim younger than this belongs to a replica writing its run right now; an older
# one was left by a crash between claim and run.
_STALE_CLAIM = 60.0


def tick_run_id(now: float | None = None) -> str:
    """A UUIDv7 for a tick's run: its first 48 bits say when the tick was claimed (see recover_claims)."""
    value = (int((time.time() if now is None else now) * 1000) << 80) | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def claim_age(run_id: str, now: float | None = None) -> float | None:
    """Seconds since a tick's claim, from its run id; None for ids that carry no time (older versions)."""
    value = uuid.UUID(run_id)
    if value.version != 7:
        return None
    return (time.time() if now is None else now) - (value.int >> 80) / 1000


class Clock:
    """The scheduler's notion of now: wall time plus an offset (SKEINO_CLOCK_OFFSET_SECONDS, for tests)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def check_schedule(schedule: str) -> None:
    # Five fields as crontab has them (or an @-shorthand); croniter would also take a
    # seconds field, which a scheduler with minute ticks in mind should not silently accept.
    fields = schedule.split()
    if not (len(fields) == 5 or (len(fields) == 1 and schedule.startswith("@"))) or not croniter.is_valid(schedule):
        raise Invalid(f"Invalid cron schedule: {schedule!r}. Use the five-field cron format "
                      "(minute hour day_of_month month day_of_week), e.g. '*/5 * * * *' for every 5 minutes.")


def check_timezone(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"Invalid timezone: {name!r}. Use an IANA timezone name (e.g. 'America/New_York').") from None
    return name


def next_run(schedule: str, after: datetime, tz: str | None) -> datetime:
    """The first tick strictly after `after`, read in the cron's timezone (UTC by default)."""
    base = after.astimezone(ZoneInfo(tz)) if tz else after.astimezone(timezone.utc)
    return croniter(schedule, base).get_next(datetime).astimezone(timezone.utc)


def _end_time(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"end_time {value!r} is not an ISO-8601 date-time") from None
    return _iso(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))


class CronService:
    """Create, read, change and fire crons; firing creates a run through the RunService."""

    def __init__(self, storage: Storage, assistants: AssistantService, runs: RunService, webhooks: WebhookSender,
                 clock: Clock, authz: Authorizer | None = None) -> None:
        self._storage = storage
        self._authz = authz or Authorizer(None)
        self._assistants = assistants
        self._runs = runs
        self._webhooks = webhooks
        self.clock = clock
        self.changed = asyncio.Event()  # set on every write the scheduler should look at now

    async def create(self, thread_id: str | None, body: dict[str, Any]) -> Record:
        check_schedule(body["schedule"])
        tz = check_timezone(body.get("timezone"))
        end_time = _end_time(body.get("end_time"))
        await self._webhooks.check(body.get("webhook"))
        assistant = await self._assistants.usable(body["assistant_id"])
        if thread_id is not None:
            thread_access = await self._authz("threads", "read", {"thread_id": thread_id}) if is_uuid(thread_id) else None
            if not is_uuid(thread_id) or await self._storage.thread_get(thread_id, access=thread_access) is None:
                raise NotFound(f"Thread with ID {thread_id} not found")
        cron_id = str(uuid.uuid4())
        payload = {**body, "assistant_id": assistant["assistant_id"]}
        payload["config"] = self._tag_config(payload.get("config"), cron_id)
        ctx = caller.get()
        # The crons.create handler may change the value in place (e.g. stamp an owner into metadata).
        value = {"payload": payload, "schedule": body["schedule"], "cron_id": cron_id, "thread_id": thread_id,
                 "user_id": ctx.user.identity if ctx is not None else None, "end_time": end_time,
                 "metadata": dict(body.get("metadata") or {})}
        await self._authz("crons", "create", value)
        now = now_iso()
        record = {
            "cron_id": cron_id, "assistant_id": assistant["assistant_id"], "thread_id": thread_id,
            "user_id": value["user_id"], "schedule": body["schedule"], "timezone": tz, "end_time": end_time,
            "payload": value["payload"], "metadata": value["metadata"] or {},
            "on_run_completed": None if thread_id else (body.get("on_run_completed") or "delete"),
            "enabled": body.get("enabled", True),
            "next_run_date": _iso(next_run(body["schedule"], self.clock.now(), tz)),
            "created_at": now, "updated_at": now,
        }
        await self._storage.cron_create(record)
        self.changed.set()
        return record

    @staticmethod
    def _tag_config(config: Record | None, cron_id: str) -> Record:
        # Every run a cron starts carries its cron_id in configurable, as on the official server.
        config = dict(config or {})
        config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron_id}
        return config

    async def get(self, cron_id: str, action: str = "read", value: dict[str, Any] | None = None) -> Record:
        """The cron, if the caller's crons `action` handler lets them reach it."""
        if not is_uuid(cron_id):
            raise Invalid("Invalid cron ID: must be a UUID")
        access = await self._authz("crons", action, value or {"cron_id": cron_id})
        cron = await self._storage.cron_get(cron_id, access=access)
        if cron is None:
            raise NotFound(f"Cron with ID {cron_id} not found")
        return cron

    async def patch(self, cron_id: str, body: dict[str, Any]) -> Record:
        if not body:
            raise BadRequest("Request body cannot be empty")
        cron = await self.get(cron_id, "update", {"cron_id": cron_id, "payload": body, "schedule": body.get("schedule")})
        changes: Record = {}
        schedule = body.get("schedule") or cron["schedule"]
        if "schedule" in body:
            check_schedule(schedule)
            changes["schedule"] = schedule
        tz = check_timezone(body["timezone"]) if "timezone" in body else cron["timezone"]
        if "timezone" in body:
            changes["timezone"] = tz
        if "end_time" in body:
            changes["end_time"] = _end_time(body["end_time"])
        await self._webhooks.check(body.get("webhook"))
        if body.get("enabled") is not None:
            changes["enabled"] = body["enabled"]
        if body.get("on_run_completed") is not None:
            changes["on_run_completed"] = body["on_run_completed"]
        if body.get("metadata") is not None:
            changes["metadata"] = {**cron["metadata"], **body["metadata"]}
        # Re-enabling does not replay the ticks the cron slept through: it resumes from now.
        resumed = changes.get("enabled") is True and not cron["enabled"]
        if "schedule" in changes or "timezone" in changes or resumed:
            changes["next_run_date"] = _iso(next_run(schedule, self.clock.now(), tz))
        payload = {**cron["payload"], **body, "assistant_id": cron["assistant_id"]}
        payload["config"] = self._tag_config(payload.get("config"), cron_id)
        changes["payload"] = payload
        updated = await self._storage.cron_update(cron_id, changes)
        if updated is None:
            raise NotFound(f"Cron with ID {cron_id} not found")
        self.changed.set()
        return updated

    async def delete(self, cron_id: str) -> None:
        if not await self._storage.cron_delete((await self.get(cron_id, "delete"))["cron_id"]):
            raise NotFound(f"Cron with ID {cron_id} not found")

    def _filters(self, body: dict[str, Any]) -> dict[str, Any]:
        assistant_id = body.get("assistant_id")
        return {"assistant_id": self._assistants.resolve_id(assistant_id) if assistant_id else None,
                "thread_id": body.get("thread_id"), "metadata": body.get("metadata")}

    async def _access(self, filters: dict[str, Any], body: dict[str, Any]) -> Any:
        return await self._authz("crons", "search", {"assistant_id": filters["assistant_id"],
                                                     "thread_id": filters["thread_id"],
                                                     "limit": body.get("limit", 10), "offset": body.get("offset", 0)})

    async def search(self, body: dict[str, Any], cursor: str | None = None) -> paging.Page:
        """A page of crons, after `cursor` when given (see runtime/paging.py)."""
        filters = self._filters(body)
        access = await self._access(filters, body)
        sort_by, sort_order = body.get("sort_by") or "created_at", body.get("sort_order") or "desc"
        offset = body.get("offset", 0)
        page = await paging.fetch(
            lambda limit, after: self._storage.cron_search(
                **filters, enabled=body.get("enabled"), limit=limit, offset=offset, sort_by=sort_by,
                sort_order=sort_order, access=access, after=after),
            limit=body.get("limit", 10), offset=offset, cursor=cursor,
            key=query.sort_column(sort_by, query.CRON_SORT), order=sort_order)
        select = body.get("select")
        if select:
            page.rows = [{k: r.get(k) for k in select} for r in page.rows]
        return page

    async def count(self, body: dict[str, Any]) -> int:
        filters = self._filters(body)
        return await self._storage.cron_count(**filters, access=await self._access(filters, body))

    async def fire(self, cron: Record, run_id: str) -> None:
        """Start the run of one tick, as an ordinary run (its failure to start is logged, not raised)."""
        payload = cron["payload"]
        body = {k: payload[k] for k in _RUN_FIELDS if payload.get(k) is not None}
        body["metadata"] = {**cron["metadata"], **(payload.get("metadata") or {})}
        body["run_id"] = run_id
        if cron["thread_id"] is None:
            body["on_completion"] = cron["on_run_completed"] or "delete"
        # The tick runs as the cron's owner, so the create_run handler and the graph see that user.
        token = caller.set(BaseAuthContext(permissions=[], user=User(cron["user_id"])) if cron.get("user_id") else None)
        try:
            run, _ = await self._runs.create(cron["thread_id"], body)
        except SkeinoError as exc:
            logger.warning("cron %s: run not started: %s", cron["cron_id"], exc.detail)
            return
        except Exception:  # the tick is spent either way; a bug must not stop the scheduler or the start-up
            logger.exception("cron %s: run not started", cron["cron_id"])
            return
        finally:
            caller.reset(token)
        logger.info("cron %s started run %s on thread %s", cron["cron_id"], run_id, run["thread_id"])


class CronScheduler:
    """Owned by the runtime: `start` catches up on missed ticks, then a task fires ticks as they fall due."""

    def __init__(self, storage: Storage, service: CronService) -> None:
        self._storage = storage
        self._service = service
        self._task: asyncio.Task[None] | None = None

    async def recover_claims(self) -> None:
        """Finish ticks a crash interrupted between claiming them and writing their run.

        Called before interrupted runs are settled, so a run that was written is still there to
        be found, and by the scheduler as it goes (a replica may have died since). Replicas share
        the claims: a young one is another replica's tick in progress and is left alone, and of
        replicas recovering one claim at once only the one whose release takes it fires the run
        (a crash right after the release loses that tick rather than firing it twice).
        """
        for cron, run_id in await self._storage.crons_claimed():
            age = claim_age(run_id)
            if age is not None and age < _STALE_CLAIM:
                continue
            if not await self._storage.cron_release(cron["cron_id"], run_id):
                continue  # another replica recovered it
            if await self._storage.run_get(run_id) is None:
                await self._service.fire(cron, run_id)

    async def start(self) -> None:
        # Ticks that fell due while the server was down fire now, once per cron, before it serves.
        await self.tick()
        self._task = asyncio.create_task(self._loop(), name="skeino-cron-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)
            self._task = None

    async def tick(self) -> int:
        """Fire every cron due by the clock's now; returns how many runs were started."""
        now = self._service.clock.now()
        fired = 0
        while True:
            due = await self._storage.crons_due(_iso(now), _BATCH)
            for cron in due:
                run_id = tick_run_id()
                following = _iso(next_run(cron["schedule"], now, cron["timezone"]))
                if await self._storage.cron_claim(cron["cron_id"], cron["next_run_date"], following, run_id):
                    await self._service.fire(cron, run_id)
                    await self._storage.cron_release(cron["cron_id"], run_id)
                    fired += 1
            if len(due) < _BATCH:
                return fired

    async def _delay(self) -> float:
        upcoming = await self._storage.cron_next_due()
        if upcoming is None:
            return _MAX_IDLE
        wait = (datetime.fromisoformat(upcoming) - self._service.clock.now()).total_seconds()
        return min(max(wait, 0.01), _MAX_IDLE)

    async def _loop(self) -> None:
        changed = self._service.changed
        while True:
            changed.clear()
            try:
                await self.recover_claims()
                await self.tick()
                delay = await self._delay()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep scheduling; the next pass retries
                logger.exception("cron scheduler pass failed")
                delay = _MAX_IDLE
            try:
                await asyncio.wait_for(changed.wait(), timeout=delay)
            except TimeoutError:
                pass
