"""Shared fixtures: a real server process per session, the official SDK client, the tools the
browser and JS-client tests need, and the check that no server logged an unexpected error."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, NoReturn

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


# A server log line that means something went wrong, whatever the test saw: a traceback,
# an unhandled error (the app logs one for every 500), an ERROR record, or "... failed".
_UNEXPECTED = re.compile(
    r"Traceback \(most recent call last\)|Exception in ASGI application|unhandled error|^ERROR\b"
    r'|"level": ?"(ERROR|CRITICAL)"|\bfailed\b',
    re.IGNORECASE,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_server_log(*patterns): server log lines matching these regexes are expected by the test")


@pytest.fixture(autouse=True)
def server_log_is_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every server a test started or used logged nothing unexpected while the test ran."""
    before = {log: log.stat().st_size for log in serverproc.LOGS if log.exists()}
    yield
    allowed = [re.compile(p) for mark in request.node.iter_markers("allow_server_log") for p in mark.args]
    problems = []
    for log in dict.fromkeys(serverproc.LOGS):
        if not log.exists():
            continue
        data = log.read_bytes()
        start = before.get(log, 0)
        if len(data) < start:
            start = 0  # rewritten by a server started again on the same port
        for line in data[start:].decode(errors="replace").splitlines():
            if _UNEXPECTED.search(line) and not any(a.search(line) for a in allowed):
                problems.append(f"{log}: {line}")
    if problems:
        pytest.fail("unexpected errors in the server log:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def no_server_errors() -> None:
    """Kept for modules that name it: `server_log_is_clean` now checks every test's servers."""


# Browser and JS-client tests need tools outside Python. Locally a missing one skips them;
# under CI (CI set) it fails, so those tests never vanish from a green run unnoticed.
def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(what: str) -> NoReturn:
    if _ci():
        pytest.fail(f"{what}; CI is set, so this fails instead of skipping the tests that need it", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("no Chromium on PATH (the Studio browser tests need it)")
    return path


@pytest.fixture(scope="session")
def playwright_api() -> Any:
    try:
        import playwright.async_api as api
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[test]')")
    return api


@pytest.fixture(scope="session")
def node() -> tuple[str, str]:
    """The paths of node and npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("Node.js (node and npm) is not installed (the JS client tests need it)")
    return node, npm


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
