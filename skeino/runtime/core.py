"""The runtime: storage, graphs, queue and services wired together, with one lifecycle."""

from __future__ import annotations

import asyncio
import logging
import socket

from skeino.auth.custom import Authorizer, CustomAuth
from skeino.config import Config, ConfigError
from skeino.errors import Unavailable
from skeino.graphs import GraphRegistry
from skeino.runtime.assistants import AssistantService
from skeino.runtime.broker import StreamBroker
from skeino.runtime.bus import RedisBus, namespace
from skeino.runtime.pgbus import PostgresBus
from skeino.runtime.crons import Clock, CronScheduler, CronService
from skeino.runtime.executor import RunExecutor
from skeino.runtime.idempotency import Idempotency
from skeino.runtime.metrics import Metrics
from skeino.runtime.queue import RunQueue
from skeino.runtime.replicas import SharedRunQueue
from skeino.runtime.runs import RunService
from skeino.runtime.store import StoreService
from skeino.runtime.threads import ThreadService
from skeino.runtime.ttl import ThreadSweeper
from skeino.runtime.webhooks import WebhookPolicy, WebhookSender
from skeino.storage import Storage, create_storage

logger = logging.getLogger("skeino")


class Runtime:
    """Everything below the routers. `start` opens it, `stop` winds it down."""

    def __init__(self, config: Config, registry: GraphRegistry, storage: Storage | None = None,
                 custom_auth: CustomAuth | None = None) -> None:
        self.config = config
        self.settings = config.settings
        self.registry = registry
        self.storage: Storage = storage or create_storage(config)
        # Custom auth's handlers, asked by every service for each action (a no-op without auth.path).
        self.authz = Authorizer(custom_auth)
        self.bus = self._bus()
        self.broker = StreamBroker(self.storage, self.settings.stream_keep_seconds, self.bus)
        self.metrics = Metrics(self.storage.run_counts) if self.settings.metrics else None
        self.executor = RunExecutor(self.storage, registry, self.broker, self.settings.run_timeout, self.metrics)
        self.queue: RunQueue | SharedRunQueue
        if self.bus is not None:
            self.queue = SharedRunQueue(self.storage, self.executor, self.broker, self.bus,
                                        self.settings.max_concurrent_runs, self.settings.run_lease_seconds,
                                        self.settings.replica_id or f"{socket.gethostname()}:{self.settings.port}")
        else:
            self.queue = RunQueue(self.storage, self.executor, self.broker, self.settings.max_concurrent_runs)
        # With replicas another process may change an assistant, so none is cached here.
        self.assistants = AssistantService(self.storage, registry, self.authz, cache=self.bus is None)
        self.webhooks = WebhookSender(WebhookPolicy.from_config(self.settings, config.webhooks), self.storage,
                                      config.webhooks, disabled=bool(config.http.get("disable_webhooks")))
        self.executor.on_run_end.append(self.webhooks.run_ended)
        self.idempotency = Idempotency(self.storage, self.settings.idempotency_ttl_seconds)
        self.runs = RunService(self.storage, self.assistants, self.broker, self.queue, self.settings, self.webhooks,
                               self.authz)
        thread_ttl = config.checkpointer.get("ttl") or {}
        self.threads = ThreadService(self.storage, registry, self.runs, self.authz,
                                     default_ttl=thread_ttl.get("default_ttl"))
        # Always running: a thread created with its own ttl expires even without checkpointer.ttl.
        self.thread_sweeper = ThreadSweeper(self.storage, self.threads, thread_ttl.get("sweep_interval_minutes"))
        self.crons = CronService(self.storage, self.assistants, self.runs, self.webhooks,
                                 Clock(self.settings.clock_offset_seconds), self.authz)
        self.cron_scheduler = CronScheduler(self.storage, self.crons)
        self._draining: asyncio.Task[None] | None = None  # begin_shutdown's wind-down of the queue
        self.drained = asyncio.Event()  # set once no run executes any more (streams that follow threads end)
        self.store: StoreService  # bound to the storage's store once it is open

    def _bus(self) -> RedisBus | PostgresBus | None:
        """What replicas share live events and cancels through (SKEINO_BUS): Redis, Postgres itself
        (LISTEN/NOTIFY), or nothing when this server serves its database alone.

        A lone server keeps events in memory and queues runs in process: on Postgres that is a
        fraction of the transactions per run the bus costs, so replicas are asked for, not assumed.
        """
        settings = self.settings
        if not settings.bus:
            return None
        if not settings.database_url:
            raise ConfigError(f"{'SKEINO_REDIS_URL' if settings.bus == 'redis' else 'SKEINO_BUS'} connects replicas "
                              "sharing one database: set SKEINO_DATABASE_URL (postgresql://...) as well")
        if settings.bus == "redis" and settings.redis_url:
            return RedisBus(settings.redis_url, namespace(settings.database_url), settings.stream_keep_seconds)
        return PostgresBus(self.storage, settings.stream_keep_seconds)

    async def delete_assistant(self, assistant_id: str, *, delete_threads: bool) -> None:
        """Delete an assistant and, when asked, every thread it ran on."""
        record = await self.assistants.get(assistant_id)
        await self.assistants.delete(assistant_id)
        if delete_threads:
            await self.threads.delete_for_assistant(record["assistant_id"])

    async def delete_run(self, thread_id: str, run_id: str) -> None:
        """Delete a finished run with the checkpoints it wrote; the thread shows the state before it."""
        await self.runs.delete(thread_id, run_id)
        await self.threads.refresh(thread_id)

    async def check_ready(self) -> None:
        """Raise Unavailable unless storage answers a query now."""
        try:
            await asyncio.wait_for(self.storage.run_counts(), timeout=5)
        except Exception as exc:
            logger.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            raise Unavailable(f"Storage is not answering: {type(exc).__name__}") from None

    async def start(self) -> None:
        await self.storage.open()
        if not await self.storage.serve(shared=self.bus is not None):
            # A lone server's live events and cancels stay in its process: replicas beside it
            # would accept runs whose events their clients could never see, and the reverse.
            raise ConfigError(
                "another skeino server is already serving this database "
                + ("alone; stop it, or start every replica with SKEINO_BUS=postgres or SKEINO_REDIS_URL"
                   if self.bus is not None else
                   "as a replica; start this one with the same bus (SKEINO_BUS=postgres or SKEINO_REDIS_URL)"
                   " or, to serve it alone, stop the others")
                + " (see docs/deployment.md)")
        if self.bus is not None:
            await self.bus.start()
        self.registry.bind(self.storage.checkpointer, self.storage.store)
        self.store = StoreService(self.storage.store, self.authz, indexed=bool(self.config.store.get("index")))
        await self.assistants.ensure_defaults()
        await self.cron_scheduler.recover_claims()
        await self.runs.recover()
        if isinstance(self.queue, SharedRunQueue):
            await self.queue.start()
        self.thread_sweeper.start()
        await self.cron_scheduler.start()

    def begin_shutdown(self) -> None:
        """The server was told to stop: take no more runs, give running ones the grace period.

        Called as the stop signal arrives, before the HTTP server waits for its connections,
        so the streams of runs finishing in the grace period go on and then end properly.
        """
        if self._draining is None:
            self.runs.closing.set()
            self._draining = asyncio.get_running_loop().create_task(self._drain(), name="skeino-drain")

    async def _drain(self) -> None:
        try:
            await self.queue.shutdown(self.settings.shutdown_grace)
        finally:
            self.drained.set()

    async def stop(self) -> None:
        await self.cron_scheduler.stop()
        await self.thread_sweeper.stop()
        self.runs.closing.set()
        if self._draining is not None:
            await self._draining
        await self.queue.shutdown(self.settings.shutdown_grace)
        self.drained.set()
        await self.webhooks.stop()
        self.broker.close()
        if self.bus is not None:
            await self.bus.stop()
        await self.storage.close()
