"""Schema migrations for skeino's own Postgres tables, applied in order under an advisory lock."""

from __future__ import annotations

from psycopg import AsyncConnection

# Any fixed number: every replica takes this lock around start-up migrations, so replicas
# starting together apply each step once (LangGraph's savers migrate inside the same lock).
MIGRATION_LOCK = 0x736B65696E6F  # "skeino"
# Held for a server's lifetime: exclusively by a server that serves the database alone (its
# live events and cancels stay in its process), shared by replicas with a bus between them.
SERVING_LOCK = 0x736B65696E70

# Append new steps; never edit a step that has shipped. Timestamps are ISO-8601 text, as
# the storage contract hands them over; `seq` orders rows by insertion for stable pages.
MIGRATIONS: list[str | list[str]] = [
    # 1: assistants, threads, runs (with their lease), stream logs, thread TTLs, crons
    """
    CREATE TABLE assistants (
        seq BIGSERIAL,
        assistant_id TEXT PRIMARY KEY,
        graph_id TEXT NOT NULL,
        config JSONB NOT NULL,
        context JSONB NOT NULL,
        metadata JSONB NOT NULL,
        name TEXT,
        description TEXT,
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX assistants_graph ON assistants (graph_id);
    CREATE INDEX assistants_metadata ON assistants USING GIN (metadata jsonb_path_ops);
    CREATE TABLE assistant_versions (
        assistant_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        graph_id TEXT NOT NULL,
        config JSONB NOT NULL,
        context JSONB NOT NULL,
        metadata JSONB NOT NULL,
        name TEXT,
        description TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (assistant_id, version)
    );
    CREATE TABLE threads (
        seq BIGSERIAL,
        thread_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state_updated_at TEXT NOT NULL,
        metadata JSONB NOT NULL,
        status TEXT NOT NULL,
        config JSONB NOT NULL,
        "values" JSONB,
        interrupts JSONB NOT NULL,
        error JSONB
    );
    CREATE INDEX threads_status ON threads (status);
    CREATE INDEX threads_created ON threads (created_at);
    CREATE INDEX threads_metadata ON threads USING GIN (metadata jsonb_path_ops);
    CREATE TABLE runs (
        seq BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL,
        assistant_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        status TEXT NOT NULL,
        metadata JSONB NOT NULL,
        kwargs JSONB NOT NULL,
        multitask_strategy TEXT,
        run_at DOUBLE PRECISION NOT NULL DEFAULT 0,
        owner TEXT,
        lease_until DOUBLE PRECISION
    );
    CREATE INDEX runs_thread_status ON runs (thread_id, status, seq);
    CREATE INDEX runs_status ON runs (status, seq);
    CREATE TABLE stream_events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE thread_ttl (
        thread_id TEXT PRIMARY KEY,
        strategy TEXT NOT NULL,
        ttl_minutes DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX thread_ttl_expires ON thread_ttl (expires_at);
    CREATE TABLE crons (
        seq BIGSERIAL,
        cron_id TEXT PRIMARY KEY,
        assistant_id TEXT NOT NULL,
        thread_id TEXT,
        user_id TEXT,
        schedule TEXT NOT NULL,
        timezone TEXT,
        end_time TEXT,
        payload JSONB NOT NULL,
        metadata JSONB NOT NULL,
        on_run_completed TEXT,
        enabled BOOLEAN NOT NULL,
        next_run_date TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        claimed_run_id TEXT
    );
    CREATE INDEX crons_due ON crons (enabled, next_run_date);
    CREATE INDEX crons_thread ON crons (thread_id);
    CREATE TABLE replicas (
        replica_id TEXT PRIMARY KEY,
        seen_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 2: Idempotency-Key claims (see Storage.idempotency_claim); times in seconds since the epoch
    """
    CREATE TABLE idempotency_keys (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        response JSONB,
        claimed_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
    """,
    # 3: thread search by the metadata keys clients and auth filter on, and by status, looks
    # rows up in creation order (written exactly as skeino.storage.query writes the filters)
    """
    CREATE INDEX threads_metadata_graph_id ON threads ((metadata ->> 'graph_id'), created_at);
    CREATE INDEX threads_metadata_assistant_id ON threads ((metadata ->> 'assistant_id'), created_at);
    CREATE INDEX threads_metadata_owner ON threads ((metadata ->> 'owner'), created_at);
    DROP INDEX threads_status;
    CREATE INDEX threads_status ON threads (status, created_at);
    """,
    # 4: a thread's run list, newest first, read off an index instead of sorting all its runs
    """
    CREATE INDEX runs_thread_seq ON runs (thread_id, seq);
    """,
    # 5: lease fencing. Each claim or take-over of a run starts a new epoch; the writes of a
    # run's outcome name the epoch they hold, and skeino_fence (called first in the
    # transaction of each checkpoint a leased run writes) share-locks the run row, so a
    # take-over waits for that write or the write fails with SQLSTATE SK409. (A list: the
    # function body holds semicolons.)
    [
        "ALTER TABLE runs ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0",
        """
        CREATE FUNCTION skeino_fence(p_run_id TEXT, p_epoch BIGINT) RETURNS VOID LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM runs WHERE run_id = p_run_id AND lease_epoch = p_epoch AND status = 'running' FOR SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'run %: lease lost to another replica', p_run_id USING ERRCODE = 'SK409';
            END IF;
        END $$
        """,
    ],
    # 6: statistics on the JSON type of each indexed metadata key. A search by those keys also
    # checks that the value is a JSON string; without statistics the planner guessed that one
    # row in 200 passes, took the keys' indexes for nearly empty and read and sorted every
    # thread of a graph for each page (5-15 ms instead of 0.2 at 10,000 threads).
    # Statistics on expressions need Postgres 14; older servers keep the guess.
    [
        """
        DO $$ BEGIN
            IF current_setting('server_version_num')::int >= 140000 THEN
                CREATE STATISTICS threads_metadata_types ON (jsonb_typeof(metadata -> 'graph_id')),
                    (jsonb_typeof(metadata -> 'assistant_id')), (jsonb_typeof(metadata -> 'owner')) FROM threads;
            END IF;
        END $$
        """,
        "ANALYZE threads",
    ],
    # 7: the bus between replicas without Redis (see skeino.storage.postgres.bus): run events
    # and ends, cancel signals, thread (protocol v2) events; times in seconds since the epoch
    """
    CREATE TABLE bus_events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        data BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX bus_events_created ON bus_events (created_at);
    CREATE TABLE bus_ends (
        run_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        result BYTEA NOT NULL,
        ended_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX bus_ends_ended ON bus_ends (ended_at);
    CREATE TABLE bus_cancels (
        run_id TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE bus_thread_events (
        id BIGSERIAL PRIMARY KEY,
        thread_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        run_id TEXT NOT NULL,
        method TEXT NOT NULL,
        namespace JSONB NOT NULL,
        frame BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX bus_thread_events_thread ON bus_thread_events (thread_id, id);
    CREATE INDEX bus_thread_events_created ON bus_thread_events (created_at);
    """,
]


async def migrate(conn: AsyncConnection) -> int:
    """Bring skeino's tables to the newest version (the caller holds MIGRATION_LOCK)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS skeino_migrations (v INTEGER PRIMARY KEY)")
    row = await (await conn.execute("SELECT COALESCE(MAX(v), 0) AS v FROM skeino_migrations")).fetchone()
    current = int(row["v"]) if row else 0  # type: ignore[index,call-overload]
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        statements = script if isinstance(script, list) else script.split(";")
        async with conn.transaction():
            for statement in filter(None, (s.strip() for s in statements)):
                await conn.execute(statement)  # type: ignore[arg-type]
            await conn.execute("INSERT INTO skeino_migrations (v) VALUES (%s)", (version,))
        current = version
    return current
