"""Shared fixtures: a real server process per session, and the official SDK client."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from langgraph_sdk import get_client

import pgdb
import serverproc
from serverproc import Server


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Databases made for servers under SKEINO_TEST_BACKEND=postgres go with the session."""
    yield
    serverproc.drop_databases()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One skeino process on the test graphs, shared by the tests that only need a server."""
    srv = Server(db=tmp_path_factory.mktemp("db") / "skeino.db").start()
    yield srv
    srv.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[object]:
    c = get_client(url=server.url)
    yield c
    await c.http.client.aclose()


@pytest.fixture
def no_server_errors(server: Server) -> Iterator[None]:
    """Whatever a test sends, the server must never answer with an unhandled error (500)."""
    assert server.log is not None
    start = server.log.stat().st_size
    yield
    with server.log.open("rb") as f:
        f.seek(start)
        new = f.read().decode(errors="replace")
    # The app logs "unhandled error on <route>" for every 500; uvicorn logs the rest.
    assert "unhandled error" not in new and "Exception in ASGI application" not in new, new


@pytest.fixture
def fresh_db(tmp_path: Path) -> Path:
    return tmp_path / "skeino.db"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for this session; the tests using it skip without SKEINO_TEST_DATABASE_URL."""
    if pgdb.BASE_URL is None:
        pytest.skip("SKEINO_TEST_DATABASE_URL is not set")
    url = pgdb.create_database()
    yield url
    pgdb.drop_database(url)
