"""Shared fixtures: a real server process per session, and the official SDK client."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from langgraph_sdk import get_client

from serverproc import Server


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
def fresh_db(tmp_path: Path) -> Path:
    return tmp_path / "skeino.db"
