"""Schema migrations for skeino's own tables, versioned in code and applied in order."""

from __future__ import annotations

import sqlite3

# Append new steps; never edit a step that has shipped.
MIGRATIONS: list[str] = [
    # 1: assistants, threads, runs, stream logs
    """
    CREATE TABLE assistants (
        assistant_id TEXT PRIMARY KEY,
        graph_id TEXT NOT NULL,
        config TEXT NOT NULL,
        context TEXT NOT NULL,
        metadata TEXT NOT NULL,
        name TEXT,
        description TEXT,
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX assistants_graph ON assistants (graph_id);
    CREATE TABLE assistant_versions (
        assistant_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        graph_id TEXT NOT NULL,
        config TEXT NOT NULL,
        context TEXT NOT NULL,
        metadata TEXT NOT NULL,
        name TEXT,
        description TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (assistant_id, version)
    );
    CREATE TABLE threads (
        thread_id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        state_updated_at TEXT NOT NULL,
        metadata TEXT NOT NULL,
        status TEXT NOT NULL,
        config TEXT NOT NULL,
        "values" TEXT,
        interrupts TEXT NOT NULL,
        error TEXT
    );
    CREATE INDEX threads_status ON threads (status);
    CREATE INDEX threads_created ON threads (created_at);
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL,
        assistant_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        status TEXT NOT NULL,
        metadata TEXT NOT NULL,
        kwargs TEXT NOT NULL,
        multitask_strategy TEXT,
        run_at REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_thread_status ON runs (thread_id, status, seq);
    CREATE INDEX runs_status ON runs (status);
    CREATE TABLE stream_events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    """,
    # 2: thread time-to-live (expires_at in seconds since the epoch, UTC)
    """
    CREATE TABLE thread_ttl (
        thread_id TEXT PRIMARY KEY,
        strategy TEXT NOT NULL,
        ttl_minutes REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX thread_ttl_expires ON thread_ttl (expires_at);
    """,
    # 3: crons; `claimed_run_id` is the run a claimed tick is starting (see CronTables)
    """
    CREATE TABLE crons (
        cron_id TEXT PRIMARY KEY,
        assistant_id TEXT NOT NULL,
        thread_id TEXT,
        user_id TEXT,
        schedule TEXT NOT NULL,
        timezone TEXT,
        end_time TEXT,
        payload TEXT NOT NULL,
        metadata TEXT NOT NULL,
        on_run_completed TEXT,
        enabled INTEGER NOT NULL,
        next_run_date TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        claimed_run_id TEXT
    );
    CREATE INDEX crons_due ON crons (enabled, next_run_date);
    CREATE INDEX crons_thread ON crons (thread_id);
    """,
    # 4: run leases (see Storage.runs_claim); unused by a single process, kept for one schema
    """
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN lease_until REAL;
    """,
    # 5: Idempotency-Key claims (see Storage.idempotency_claim); times in seconds since the epoch
    """
    CREATE TABLE idempotency_keys (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        response TEXT,
        claimed_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
    """,
    # 6: thread search by the metadata keys clients and auth filter on, and by status, looks
    # rows up in creation order (written exactly as skeino.storage.query writes the filters)
    """
    CREATE INDEX threads_metadata_graph_id ON threads (json_extract(metadata, '$.graph_id'), created_at);
    CREATE INDEX threads_metadata_assistant_id ON threads (json_extract(metadata, '$.assistant_id'), created_at);
    CREATE INDEX threads_metadata_owner ON threads (json_extract(metadata, '$.owner'), created_at);
    DROP INDEX threads_status;
    CREATE INDEX threads_status ON threads (status, created_at);
    """,
    # 7: a thread's run list, newest first, read off an index instead of sorting all its runs
    """
    CREATE INDEX runs_thread_seq ON runs (thread_id, seq);
    """,
    # 8: lease epochs (see Storage.run_finish's fence), kept for one schema with Postgres
    """
    ALTER TABLE runs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: the indexed metadata keys carry their JSON type too: a filter checks that the stored
    # value is a string, which the index alone then answers, so a count by such a key reads
    # only index entries instead of every matching thread's JSON (11x at 33,000 matches)
    """
    DROP INDEX threads_metadata_graph_id;
    DROP INDEX threads_metadata_assistant_id;
    DROP INDEX threads_metadata_owner;
    CREATE INDEX threads_metadata_graph_id ON threads (json_extract(metadata, '$.graph_id'),
        json_type(metadata, '$.graph_id'), created_at);
    CREATE INDEX threads_metadata_assistant_id ON threads (json_extract(metadata, '$.assistant_id'),
        json_type(metadata, '$.assistant_id'), created_at);
    CREATE INDEX threads_metadata_owner ON threads (json_extract(metadata, '$.owner'),
        json_type(metadata, '$.owner'), created_at);
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns the version reached."""
    conn.execute("CREATE TABLE IF NOT EXISTS skeino_migrations (v INTEGER PRIMARY KEY)")
    row = conn.execute("SELECT COALESCE(MAX(v), 0) FROM skeino_migrations").fetchone()
    current = int(row[0]) if row else 0
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                conn.execute(statement)
            conn.execute("INSERT INTO skeino_migrations (v) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current
