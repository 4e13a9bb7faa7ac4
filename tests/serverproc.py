"""Start and stop real `skeino serve` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import pgdb

# SKEINO_TEST_BACKEND=postgres runs every server of the suite on Postgres: each SQLite path
# a test names stands for a database of its own, the same one each time the path is reused.
BACKEND = os.environ.get("SKEINO_TEST_BACKEND", "sqlite")
_DATABASES: dict[Path, str] = {}


def database_url(db: Path) -> str:
    """The Postgres database standing for SQLite file `db` (created on first use)."""
    if pgdb.BASE_URL is None:
        raise RuntimeError("SKEINO_TEST_BACKEND=postgres needs SKEINO_TEST_DATABASE_URL")
    if db not in _DATABASES:
        _DATABASES[db] = pgdb.create_database()
    return _DATABASES[db]


def sql(db: Path, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run SQL (with ? placeholders) on the database of the servers started on `db`, whichever backend."""
    if BACKEND == "postgres":
        import psycopg

        with psycopg.connect(database_url(db), autocommit=True) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute(statement, params).fetchall()


def drop_databases() -> None:
    for url in _DATABASES.values():
        pgdb.drop_database(url)
    _DATABASES.clear()

TESTS = Path(__file__).parent
TEST_CONFIG = TESTS / "langgraph.json"


# The log of every server a test started, for the check of unexpected errors in conftest.py.
LOGS: list[Path] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One server process; `start` waits until /ok answers."""

    db: Path
    config: Path = TEST_CONFIG
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    command: str = "serve"  # or "dev"
    scheme: str = "http"  # "https" when extra_args name a certificate

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "Server":
        self.log = self.db.with_suffix(f".{self.port}.log")
        LOGS.append(self.log)
        env = {**os.environ, **self.env}
        args = list(self.extra_args)
        if BACKEND == "postgres" and "--database-url" not in args:
            args += ["--database-url", database_url(self.db)]
            # A server restarted on the same data is the same replica (on another port):
            # with Redis it then recovers its runs at once instead of when their leases end.
            env.setdefault("SKEINO_REPLICA_ID", f"replica-{self.db}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skeino.cli", self.command, "--config", str(self.config), "--port", str(self.port),
             "--db", str(self.db), "--log-level", "warning", *args],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1, verify=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """Die like a crash: no shutdown hooks run."""
        self.stop(signal.SIGKILL)
