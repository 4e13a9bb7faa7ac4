"""Shared helpers for the benchmark scripts: output, statistics, the server process, SSE.

Every figure is printed as one JSON object on one line (stdout); progress and
diagnostics go to stderr, so `python benchmarks/runs.py > results.jsonl` keeps
only the figures.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime as _dt
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_CONFIG = BENCH_DIR / "langgraph.json"
EXAMPLE_GRAPHS_DIR = REPO_DIR / "graphs"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


# output -----------------------------------------------------------------------------
def add_common_options(p: Any) -> None:
    """Options every benchmark script takes (argparse parser)."""
    p.add_argument("--floor-sync", default="normal", choices=["normal", "full", "off"],
                   help="PRAGMA synchronous of the in-process floor's SQLite file (server uses NORMAL)")
    p.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"],
                   help="client event loop; auto = uvloop when installed (as uvicorn does for the server)")
    p.add_argument("--label", help="free text copied into every server figure (e.g. which server --url is)")
    p.add_argument("--keep-server-files", action="store_true", help="keep the started server's DB and log")
    p.add_argument("--auth", default="none", choices=AUTH_MODES,
                   help="started server's authentication: none, apikey (SKEINO_API_KEYS), or custom "
                        "(langgraph.auth.json: custom auth with an owner filter); requests carry the credential")


# The --auth modes: what the started server is given and what every request carries.
AUTH_MODES = ("none", "apikey", "custom")
BENCH_API_KEY = "bench-api-key-" + "k" * 24
AUTH_CONFIG = BENCH_DIR / "langgraph.auth.json"
CUSTOM_TOKEN = "bench-user-token"  # the one token benchmarks/auth.py accepts


def auth_setup(mode: str, config: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """(config, server environment, request headers) for an --auth mode."""
    if mode == "apikey":
        return config, {"SKEINO_API_KEYS": BENCH_API_KEY}, {"x-api-key": BENCH_API_KEY}
    if mode == "custom":
        return AUTH_CONFIG, {}, {"Authorization": f"Bearer {CUSTOM_TOKEN}"}
    return config, {}, {}


def emit(record: dict[str, Any]) -> None:
    """Print one measurement as one JSON line."""
    print(json.dumps(record, separators=(", ", ": ")), flush=True)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (same definition as numpy's default), q in [0, 100]."""
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_fields(samples: Iterable[float], prefix: str = "") -> dict[str, Any]:
    """p50/p95/p99/mean/min/max in milliseconds of durations given in seconds."""
    values = sorted(samples)
    if not values:
        return {f"{prefix}n": 0}
    return {
        f"{prefix}p50_ms": ms(percentile(values, 50)),
        f"{prefix}p95_ms": ms(percentile(values, 95)),
        f"{prefix}p99_ms": ms(percentile(values, 99)),
        f"{prefix}mean_ms": ms(sum(values) / len(values)),
        f"{prefix}min_ms": ms(values[0]),
        f"{prefix}max_ms": ms(values[-1]),
        f"{prefix}n": len(values),
    }


def environment_record(script: str, loop_name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Describe where and with what the figures were taken."""

    def version(dist: str) -> str | None:
        try:
            from importlib.metadata import version as v

            return v(dist)
        except Exception:
            return None

    def git(*cmd: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO_DIR), *cmd], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    changes = git("status", "--porcelain", "--untracked-files=no")
    return {
        "bench": "environment",
        "script": script,
        "utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "client_loop": loop_name,
        "skeino": version("skeino"),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_local_changes": None if changes is None else bool(changes),
        "langgraph": version("langgraph"),
        "langgraph_sdk": version("langgraph-sdk"),
        "httpx": version("httpx"),
        "uvicorn": version("uvicorn"),
        **(extra or {}),
    }


# event loop ---------------------------------------------------------------------------
def run_main(coro_factory: Any, loop: str) -> Any:
    """asyncio.run with uvloop when asked (`auto` uses it when installed, like uvicorn does)."""
    if loop in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.run(coro_factory())
        except ImportError:
            if loop == "uvloop":
                raise SystemExit("--loop uvloop: uvloop is not installed")
    return asyncio.run(coro_factory())


def loop_name(loop: str) -> str:
    if loop == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:
        return "asyncio"


# process figures ----------------------------------------------------------------------
def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log(f"could not raise RLIMIT_NOFILE to {target}: {exc}")
    return soft


def proc_memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since the process started) in kB, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process and its children have used so far (Linux /proc; None elsewhere).

    Children count whether they have ended (the process's cutime/cstime once it waited for
    them) or still run (their own utime/stime), so work a server hands to a subprocess is not lost.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        total = sum(int(v) for v in fields[11:15]) / ticks  # utime, stime, cutime, cstime
    except (OSError, ValueError, IndexError):
        return None
    for child in _proc_children(pid):
        try:
            with open(f"/proc/{child}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, ValueError, IndexError):
            pass  # ended meanwhile: counted in the parent's cutime/cstime once waited for
    return total


def _proc_children(pid: int) -> list[int]:
    """Every live descendant of a process (Linux /proc/<pid>/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", encoding="ascii") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            out += kids
            todo += kids
    return out


class CpuMeter:
    """CPU seconds used by this process and (if known) the server process over a span."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self._client0 = self._server0 = None

    def __enter__(self) -> "CpuMeter":
        self._client0 = time.process_time()
        self._server0 = proc_cpu_seconds(self.server_pid) if self.server_pid else None
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client_s = time.process_time() - (self._client0 or 0.0)
        end = proc_cpu_seconds(self.server_pid) if self.server_pid else None
        self.server_s = (end - self._server0) if end is not None and self._server0 is not None else None

    def per_item_fields(self, items: int) -> dict[str, Any]:
        if items <= 0:
            return {}
        out = {"client_cpu_ms_per_item": round(self.client_s * 1000 / items, 3)}
        if self.server_s is not None:
            out["server_cpu_ms_per_item"] = round(self.server_s * 1000 / items, 3)
        return out


# the server -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_loopback(url: str) -> str:
    """Benchmarks only ever send traffic to this machine."""
    import urllib.parse

    host = urllib.parse.urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise SystemExit(f"--url must point at a loopback address (127.0.0.0/8, localhost or ::1), not {host!r}")
    return url.rstrip("/")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark process dies (Linux), so no server is left behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class ServerProcess:
    """`python -m skeino.cli serve` on a free loopback port with a throwaway SQLite file.

    Use as a context manager: the process is stopped (SIGTERM, then SIGKILL) and its
    temporary directory removed on exit, also on Ctrl-C and exceptions.
    """

    def __init__(self, config: Path, *, env: dict[str, str] | None = None, keep_dir: bool = False,
                 start_timeout: float = 60.0, source: Path | None = None) -> None:
        self.config = Path(config).resolve()
        # Another source tree of skeino (e.g. an older commit) to serve instead of this one.
        self.source = Path(source).resolve() if source is not None else None
        self.env = env or {}
        self.keep_dir = keep_dir
        self.start_timeout = start_timeout
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="skeino-bench-"))
        self.db = self.dir / "skeino.db"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        # warning level: no per-request access log lines, which would cost CPU in the server.
        return [sys.executable, "-m", "skeino.cli", "serve", "--config", str(self.config),
                "--port", str(self.port), "--db", str(self.db), "--log-level", "warning"]

    def start(self) -> "ServerProcess":
        import httpx

        log(f"starting server: {' '.join(self.command())}")
        env = {**os.environ, **self.env}
        if self.source is not None:
            # Ahead of the installed package on sys.path, so this tree's skeino is imported.
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.source), env.get("PYTHONPATH")]))
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=str(self.source or REPO_DIR),
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1.0, trust_env=False).status_code == 200:
                    log(f"server pid {self.proc.pid} ready at {self.url}")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer GET /ok within {self.start_timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.keep_dir:
            log(f"server files kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "ServerProcess":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def sigterm_as_exit() -> None:
    """Turn SIGTERM into SystemExit so `with ServerProcess(...)` blocks clean up."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# HTTP -----------------------------------------------------------------------------------
def http_client(base_url: str, connections: int, timeout: float = 60.0, headers: dict[str, str] | None = None) -> Any:
    """One keep-alive httpx.AsyncClient sized for `connections` simultaneous requests."""
    import httpx

    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
        trust_env=False,  # never route loopback traffic through a proxy from the environment
    )


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """(event, data) pairs of a text/event-stream body given as byte chunks; comments (pings) are skipped."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            block, start = buffer[start:end], end + 2
            event, data = "message", []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" "))
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
            if data:
                yield event, b"\n".join(data)
        buffer = buffer[start:]
    # A final event without the blank line is incomplete by the SSE spec: ignored.


async def floor_checkpointer(directory: Path, synchronous: str = "normal") -> tuple[Any, Any]:
    """(connection, AsyncSqliteSaver) on a new SQLite file in `directory`, as the in-process floor.

    AsyncSqliteSaver.setup() switches the file to WAL; synchronous=NORMAL matches the
    settings of the server's own SQLite connections, so both pay the same fsync policy.
    """
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    conn = await aiosqlite.connect(str(directory / "checkpoints.db"))
    await conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    return conn, saver


async def postgres_floor_checkpointer(url: str) -> tuple[Any, Any]:
    """(connection, AsyncPostgresSaver) on the database at `url`, as the in-process floor on Postgres."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    conn = await AsyncConnection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    saver = AsyncPostgresSaver(conn)
    await saver.setup()
    return conn, saver


def import_example_graph(module: str, attr: str) -> Any:
    """A graph object from graphs/<module>.py, imported the way the server does (graphs/ on sys.path)."""
    import importlib

    if str(EXAMPLE_GRAPHS_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_GRAPHS_DIR))
    return getattr(importlib.import_module(module), attr)


def short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".split("\n", 1)[0]
    return text[:300]


class RawHTTPError(Exception):
    pass


async def raw_post_stream(host: str, port: int, path: str, body: bytes, timeout: float,
                          headers: dict[str, str] | None = None) -> AsyncIterator[bytes]:
    """POST on a new connection with bare asyncio streams and yield the decoded response body.

    A deliberately minimal HTTP/1.1 client (Connection: close, chunked or length-delimited
    bodies), so that with very many simultaneous streams the client's own cost stays small
    and the figures show the server. Raises RawHTTPError on a non-200 answer.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
    try:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        if status != 200:
            raise RawHTTPError(f"HTTP {status}")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await asyncio.wait_for(reader.readline(), timeout)).split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
                yield data[:-2]
        elif "content-length" in headers:
            yield await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)
        else:
            while chunk := await asyncio.wait_for(reader.read(65536), timeout):
                yield chunk
    finally:
        writer.close()


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def wall() -> float:
    return time.perf_counter()
