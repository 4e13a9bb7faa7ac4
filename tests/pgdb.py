"""A throwaway Postgres database per test session, on the server SKEINO_TEST_DATABASE_URL names.

Each session gets its own database, so test runs sharing one server never see each
other's rows (or wait on each other's migrations).
"""

from __future__ import annotations

import os
import uuid

import psycopg
from urllib.parse import urlsplit, urlunsplit

BASE_URL = os.environ.get("SKEINO_TEST_DATABASE_URL") or None
REDIS_URL = os.environ.get("SKEINO_TEST_REDIS_URL") or None


def create_database() -> str:
    """Create an empty database; its connection string."""
    assert BASE_URL is not None
    name = f"skeino_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return urlunsplit(urlsplit(BASE_URL)._replace(path=f"/{name}"))


def drop_database(url: str) -> None:
    assert BASE_URL is not None
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def has_pgvector() -> bool:
    """Whether the server can give the store a vector index (the pgvector extension)."""
    assert BASE_URL is not None
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None
