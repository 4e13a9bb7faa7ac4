"""Streaming figures: time to first token, tokens/s on one stream, many simultaneous streams.

Figures (one JSON line each, on stdout):

  first_token     `agent` graph (offline fake model, run config
                  {"configurable": {"fake_token_delay": 0, "fake_tokens": N}}),
                  stream_mode messages-tuple, one stream at a time:
                  - target=server: time from sending the request to the `metadata` event
                    (metadata_*), to the first `messages` event (p50_ms... = first token),
                    and to the end of the stream (end_*);
                    variant=thread: `POST /threads` first (not timed), then
                    `POST /threads/{id}/runs/stream`; variant=stateless: `POST /runs/stream`;
                  - target=inprocess: `graph.astream(stream_mode="messages")` with
                    AsyncSqliteSaver on a temp file: time to the first chunk.
  token_rate      one stream of --tokens word tokens (one chunk each, leading space
                  included, as a real tokenizer sends them): `messages` events and
                  non-whitespace tokens received, per second, measured from sending the
                  request to the last `messages` event; median of --token-repeats streams.
  concurrent_streams  C simultaneous stateless `POST /runs/stream` of the `sleepy`
                  graph (one node that awaits asyncio.sleep(1)): wall time until all are
                  done, completed and failed counts, per-stream latency, and the server's
                  RSS (VmRSS now, VmHWM peak, and the highest VmRSS sampled during the test).
                  A stream counts as completed when it answered 200, sent no `error`
                  event and its last `values` event holds the node's output.
  server_memory   the server's VmRSS / VmHWM after the first_token and token_rate parts.

With --resumable the first_token and token_rate streams are created with
stream_resumable: true (their figures carry "resumable": true), which measures what
persisting every event costs.

When the script starts the server itself, the concurrent part gets a fresh server
process, so its memory figures are not inflated by the earlier parts.

Examples:
  python benchmarks/streams.py
  python benchmarks/streams.py --parts concurrent --streams 100,1000
  python benchmarks/streams.py --url http://127.0.0.1:2024 --server-pid 12345
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import orjson

from _common import (
    add_common_options,
    DEFAULT_CONFIG, CpuMeter, ServerProcess, auth_setup, check_loopback, emit, environment_record, floor_checkpointer,
    RawHTTPError, http_client, import_example_graph, latency_fields, log, loop_name, parse_list, proc_memory_kb,
    raise_nofile, raw_post_stream, run_main, short_error, sigterm_as_exit, sse_events, wall,
)

AGENT = "agent"
SLEEPY = "sleepy"
PROMPT = {"messages": [{"role": "user", "content": "hello"}]}


# --resumable: every server stream of the token parts is created with stream_resumable.
RESUMABLE = False


def _agent_body(tokens: int) -> dict[str, Any]:
    body = {
        "assistant_id": AGENT,
        "input": PROMPT,
        "stream_mode": ["messages-tuple"],
        "config": {"configurable": {"fake_token_delay": 0, "fake_tokens": tokens}},
    }
    if RESUMABLE:
        body["stream_resumable"] = True
    return body


def _is_token(data: bytes) -> bool:
    """A messages-tuple event's data is [message, metadata]: does the message carry a word?"""
    try:
        message = orjson.loads(data)[0]
    except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
        return False
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, str) and bool(content.strip())


def _mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


# one agent stream over HTTP -------------------------------------------------------------
async def agent_stream(http: Any, thread_id: str | None, tokens: int, count_tokens: bool) -> dict[str, Any]:
    """Send one streaming run; timings are seconds from just before the request was sent."""
    path = f"/threads/{thread_id}/runs/stream" if thread_id else "/runs/stream"
    out: dict[str, Any] = {"metadata": None, "first": None, "last": None, "events": 0, "tokens": 0, "error": None}
    t0 = wall()
    async with http.stream("POST", path, json=_agent_body(tokens)) as response:
        if response.status_code != 200:
            await response.aread()
            out["error"] = f"HTTP {response.status_code}: {response.text[:200]}"
            return out
        async for event, data in sse_events(response.aiter_bytes()):
            now = wall() - t0
            if event == "messages":
                out["events"] += 1
                if out["first"] is None:
                    out["first"] = now
                out["last"] = now
                if count_tokens and _is_token(data):
                    out["tokens"] += 1
            elif event == "metadata" and out["metadata"] is None:
                out["metadata"] = now
            elif event == "error":
                out["error"] = f"error event: {data[:200].decode(errors='replace')}"
    out["end"] = wall() - t0
    return out


async def new_thread(http: Any) -> str:
    r = await http.post("/threads", json={})
    r.raise_for_status()
    return r.json()["thread_id"]


# in-process floor ------------------------------------------------------------------------
async def inprocess_stream(graph: Any, tokens: int, count_tokens: bool) -> dict[str, Any]:
    config = {"configurable": {"thread_id": str(uuid.uuid4()), "fake_token_delay": 0, "fake_tokens": tokens}}
    out: dict[str, Any] = {"first": None, "last": None, "events": 0, "tokens": 0}
    t0 = wall()
    async for message, _metadata in graph.astream(PROMPT, config, stream_mode="messages"):
        now = wall() - t0
        out["events"] += 1
        if out["first"] is None:
            out["first"] = now
        out["last"] = now
        if count_tokens and isinstance(message.content, str) and message.content.strip():
            out["tokens"] += 1
    out["end"] = wall() - t0
    return out


async def inprocess_part(args: argparse.Namespace, floors: dict[str, Any]) -> None:
    agent = import_example_graph("agent", "graph")  # graphs/agent.py:graph
    tmp = Path(tempfile.mkdtemp(prefix="skeino-bench-floor-"))
    try:
        conn, saver = await floor_checkpointer(tmp, args.floor_sync)
        graph = agent.copy(update={"checkpointer": saver})
        common = {"target": "inprocess", "graph": AGENT, "checkpointer": "AsyncSqliteSaver",
                  "sqlite_synchronous": args.floor_sync.upper()}
        if "first_token" in args.parts:
            for _ in range(args.warmup):
                await inprocess_stream(graph, args.first_token_tokens, False)
            results = [await inprocess_stream(graph, args.first_token_tokens, False) for _ in range(args.n)]
            record = {"bench": "first_token", **common, "tokens": args.first_token_tokens,
                      **latency_fields(r["first"] for r in results if r["first"] is not None),
                      **latency_fields((r["end"] for r in results), "end_")}
            floors["first_token_p50_ms"] = record.get("p50_ms")
            emit(record)
        if "token_rate" in args.parts:
            await inprocess_stream(graph, args.tokens, True)  # warm-up
            results = []
            with CpuMeter(None) as cpu:
                for _ in range(args.token_repeats):
                    results.append(await inprocess_stream(graph, args.tokens, True))
            record = {"bench": "token_rate", **common, **_rate_fields(results, args.tokens),
                      "client_cpu_ms_per_stream": round(cpu.client_s * 1000 / len(results), 1)}
            floors["tokens_per_s"] = record["tokens_per_s"]
            emit(record)
        await conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rate_fields(results: list[dict[str, Any]], requested: int) -> dict[str, Any]:
    ok = [r for r in results if r.get("last") and not r.get("error")]
    if not ok:
        return {"tokens_requested": requested, "streams": len(results), "errors": len(results),
                "tokens_per_s": None, "events_per_s": None}
    tps = sorted(r["tokens"] / r["last"] for r in ok)
    eps = sorted(r["events"] / r["last"] for r in ok)
    return {
        "tokens_requested": requested,
        "tokens_received": ok[0]["tokens"],
        "messages_events": ok[0]["events"],
        "streams": len(results),
        "errors": len(results) - len(ok),
        "tokens_per_s": round(statistics.median(tps)),
        "tokens_per_s_best": round(tps[-1]),
        "tokens_per_s_worst": round(tps[0]),
        "events_per_s": round(statistics.median(eps)),
        "first_token_ms": round(statistics.median(r["first"] for r in ok) * 1000, 3),
        "last_token_ms": round(statistics.median(r["last"] for r in ok) * 1000, 3),
        "end_ms": round(statistics.median(r["end"] for r in ok) * 1000, 3),
    }


# server parts ----------------------------------------------------------------------------
async def token_parts(args: argparse.Namespace, url: str, pid: int | None, floors: dict[str, Any]) -> None:
    http = http_client(url, 4, timeout=args.timeout, headers=args.auth_headers)
    common = {"target": "server", "client": "httpx", "graph": AGENT, "auth": args.auth}
    if RESUMABLE:
        common["resumable"] = True
    if args.label:
        common["label"] = args.label
    try:
        if "first_token" in args.parts:
            for variant in args.variants:
                stateless = variant == "stateless"
                for _ in range(args.warmup):
                    await agent_stream(http, None if stateless else await new_thread(http), args.first_token_tokens, False)
                results, errors, first_error = [], 0, None
                with CpuMeter(pid) as cpu:
                    for _ in range(args.n):
                        try:
                            thread_id = None if stateless else await new_thread(http)
                            r = await agent_stream(http, thread_id, args.first_token_tokens, False)
                        except Exception as exc:
                            r = {"error": short_error(exc)}
                        if r.get("error") or r.get("first") is None:
                            errors += 1
                            first_error = first_error or r.get("error") or "no messages event"
                            continue
                        results.append(r)
                record = {"bench": "first_token", **common, "variant": variant, "tokens": args.first_token_tokens,
                          **latency_fields(r["first"] for r in results),
                          **latency_fields((r["metadata"] for r in results if r["metadata"] is not None), "metadata_"),
                          **latency_fields((r["end"] for r in results), "end_"),
                          "errors": errors, **cpu.per_item_fields(len(results))}
                for k in ("metadata_n", "end_n", "end_min_ms", "end_max_ms"):
                    record.pop(k, None)
                if floors.get("first_token_p50_ms") is not None and results:
                    record["p50_over_inprocess_ms"] = round(record["p50_ms"] - floors["first_token_p50_ms"], 3)
                if first_error:
                    record["first_error"] = first_error
                emit(record)
        if "token_rate" in args.parts:
            await agent_stream(http, None, args.tokens, True)  # warm-up
            results = []
            with CpuMeter(pid) as cpu:
                for _ in range(args.token_repeats):
                    try:
                        results.append(await agent_stream(http, None, args.tokens, True))
                    except Exception as exc:
                        results.append({"error": short_error(exc)})
            record = {"bench": "token_rate", **common, "variant": "stateless", **_rate_fields(results, args.tokens),
                      "client_cpu_ms_per_stream": round(cpu.client_s * 1000 / len(results), 1)}
            if cpu.server_s is not None:
                record["server_cpu_ms_per_stream"] = round(cpu.server_s * 1000 / len(results), 1)
            if floors.get("tokens_per_s"):
                record["inprocess_tokens_per_s"] = floors["tokens_per_s"]
            errs = [r["error"] for r in results if r.get("error")]
            if errs:
                record["first_error"] = errs[0]
            emit(record)
    finally:
        await http.aclose()
    if pid:
        mem = proc_memory_kb(pid)
        emit({"bench": "server_memory", "target": "server", "after": "first_token,token_rate", "pid": pid,
              "rss_mb": _mb(mem.get("VmRSS")), "hwm_mb": _mb(mem.get("VmHWM"))})


class HttpxStreams:
    """Streams through one shared httpx.AsyncClient sized for all of them."""

    name = "httpx"

    def __init__(self, url: str, connections: int, timeout: float, headers: dict[str, str]) -> None:
        self.http = http_client(url, connections, timeout=timeout, headers=headers)

    async def create_thread(self) -> str:
        return await new_thread(self.http)

    async def events(self, path: str, body: dict[str, Any]) -> AsyncIterator[tuple[str, bytes]]:
        async with self.http.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                raise RawHTTPError(f"HTTP {response.status_code}: {response.text[:200]}")
            async for item in sse_events(response.aiter_bytes()):
                yield item

    async def aclose(self) -> None:
        await self.http.aclose()


class RawStreams:
    """Streams on bare asyncio connections (one per stream, Connection: close): a near-free client."""

    name = "raw"

    def __init__(self, url: str, connections: int, timeout: float, headers: dict[str, str]) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.headers = headers

    async def create_thread(self) -> str:
        chunks = [c async for c in raw_post_stream(self.host, self.port, "/threads", b"{}", self.timeout, self.headers)]
        return orjson.loads(b"".join(chunks))["thread_id"]

    def events(self, path: str, body: dict[str, Any]) -> AsyncIterator[tuple[str, bytes]]:
        return sse_events(raw_post_stream(self.host, self.port, path, orjson.dumps(body), self.timeout, self.headers))

    async def aclose(self) -> None:
        pass


STREAM_CLIENTS = {"httpx": HttpxStreams, "raw": RawStreams}


async def sleepy_stream(client: Any, variant: str) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "error": None, "metadata": None, "end": None}
    t0 = wall()
    try:
        if variant == "thread":
            path = f"/threads/{await client.create_thread()}/runs/stream"
        else:
            path = "/runs/stream"
        last_values = None
        async for event, data in client.events(path, {"assistant_id": SLEEPY, "input": {}, "stream_mode": ["values"]}):
            if event == "metadata" and out["metadata"] is None:
                out["metadata"] = wall() - t0
            elif event == "values":
                last_values = data
            elif event == "error":
                out["error"] = f"error event: {data[:200].decode(errors='replace')}"
        out["end"] = wall() - t0
        if out["error"] is None:
            if last_values is not None and orjson.loads(last_values).get("slept") == 1:
                out["ok"] = True
            else:
                out["error"] = "stream ended without the node's output"
    except Exception as exc:
        out["error"] = short_error(exc)
    return out


async def concurrent_part(args: argparse.Namespace, url: str, pid: int | None) -> None:
    for count in args.streams:
        for client_name in args.stream_clients:
            client = STREAM_CLIENTS[client_name](url, count, args.timeout, args.auth_headers)
            try:
                await _concurrent_once(args, client, count, pid)
            finally:
                await client.aclose()


async def _concurrent_once(args: argparse.Namespace, client: Any, count: int, pid: int | None) -> None:
    # Warm-up: a few streams so imports and connection set-up are not in the figure.
    await asyncio.gather(*(sleepy_stream(client, args.stream_variant) for _ in range(min(4, count))))
    before = proc_memory_kb(pid) if pid else {}
    peak_rss = before.get("VmRSS", 0)
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, proc_memory_kb(pid).get("VmRSS", 0))  # type: ignore[arg-type]
            try:
                await asyncio.wait_for(done.wait(), 0.05)
            except asyncio.TimeoutError:
                pass

    sampler = asyncio.create_task(sample()) if pid else None
    with CpuMeter(pid) as cpu:
        t0 = wall()
        tasks = [asyncio.create_task(sleepy_stream(client, args.stream_variant)) for _ in range(count)]
        finished, pending = await asyncio.wait(tasks, timeout=args.concurrent_deadline)
        elapsed = wall() - t0
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    done.set()
    if sampler:
        await sampler
    results = [t.result() for t in finished if not t.cancelled()]
    ok = [r for r in results if r["ok"]]
    errors = [r["error"] for r in results if not r["ok"]]
    record: dict[str, Any] = {
        "bench": "concurrent_streams", "target": "server", "client": client.name, "graph": SLEEPY, "auth": args.auth,
        "variant": args.stream_variant, "streams": count, "completed": len(ok),
        "errors": len(errors) + len(pending), "timed_out": len(pending),
        "wall_s": round(elapsed, 3),
        **latency_fields(r["end"] for r in ok),
        **latency_fields((r["metadata"] for r in ok if r["metadata"] is not None), "metadata_"),
    }
    record.pop("metadata_n", None)
    if pid:
        after = proc_memory_kb(pid)
        record.update({
            "server_rss_before_mb": _mb(before.get("VmRSS")),
            "server_rss_peak_sampled_mb": _mb(max(peak_rss, after.get("VmRSS", 0))),
            "server_rss_after_mb": _mb(after.get("VmRSS")),
            "server_hwm_mb": _mb(after.get("VmHWM")),
            "server_cpu_s": round(cpu.server_s, 3) if cpu.server_s is not None else None,
        })
    record["client_cpu_s"] = round(cpu.client_s, 3)
    if args.label:
        record["label"] = args.label
    if errors:
        record["first_error"] = errors[0]
    emit(record)


async def main(args: argparse.Namespace) -> None:
    emit(environment_record("streams.py", loop_name(args.loop), {
        "parts": args.parts, "n": args.n, "first_token_tokens": args.first_token_tokens, "tokens": args.tokens,
        "token_repeats": args.token_repeats, "streams": args.streams,
        "url": args.url or "started by the script", "targets": args.targets, "auth": args.auth,
    }))
    config, env, args.auth_headers = auth_setup(args.auth, args.config)
    floors: dict[str, Any] = {}
    token_work = [p for p in args.parts if p in ("first_token", "token_rate")]
    if "inprocess" in args.targets and token_work:
        log("in-process floor ...")
        await inprocess_part(args, floors)
    if "server" not in args.targets:
        return
    if args.url:
        url = check_loopback(args.url)
        if token_work:
            await token_parts(args, url, args.server_pid, floors)
        if "concurrent" in args.parts:
            await concurrent_part(args, url, args.server_pid)
        return
    if token_work:
        with ServerProcess(config, env=env, keep_dir=args.keep_server_files) as server:
            await token_parts(args, server.url, server.pid, floors)
    if "concurrent" in args.parts:
        with ServerProcess(config, env=env, keep_dir=args.keep_server_files) as server:
            await concurrent_part(args, server.url, server.pid)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="measure this already running server (loopback only); none is started")
    p.add_argument("--server-pid", type=int, help="with --url: the server's pid, to report its CPU time and memory")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="langgraph.json for the started server")
    p.add_argument("--parts", type=lambda s: s.split(","), default=["first_token", "token_rate", "concurrent"],
                   help="first_token,token_rate,concurrent (default all)")
    p.add_argument("--targets", type=lambda s: s.split(","), default=["inprocess", "server"],
                   help="inprocess,server (default both; the concurrent part is server only)")
    p.add_argument("--variants", type=lambda s: s.split(","), default=["thread", "stateless"],
                   help="first_token variants: thread,stateless (default both)")
    p.add_argument("--n", type=int, default=100, help="streams per first_token figure (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed streams before each first_token figure")
    p.add_argument("--first-token-tokens", type=int, default=20, help="reply length for first_token (default 20)")
    p.add_argument("--tokens", type=int, default=2000, help="reply length for token_rate (default 2000)")
    p.add_argument("--token-repeats", type=int, default=10, help="streams per token_rate figure (median; default 10)")
    p.add_argument("--streams", type=parse_list, default=[100, 1000],
                   help="comma-separated simultaneous stream counts for the concurrent part (default 100,1000)")
    p.add_argument("--stream-clients", type=lambda s: s.split(","), default=["httpx", "raw"],
                   help="concurrent part clients: httpx (one shared AsyncClient), raw (bare asyncio sockets); "
                        "default both")
    p.add_argument("--stream-variant", default="stateless", choices=["stateless", "thread"],
                   help="concurrent part: POST /runs/stream, or POST /threads + /threads/{id}/runs/stream")
    p.add_argument("--concurrent-deadline", type=float, default=60.0,
                   help="seconds after which unfinished concurrent streams are cancelled and counted as errors")
    p.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout in seconds")
    p.add_argument("--resumable", action="store_true",
                   help="first_token and token_rate streams with stream_resumable: true (events persisted)")
    add_common_options(p)
    args = p.parse_args(argv)
    global RESUMABLE
    RESUMABLE = args.resumable
    for c in args.stream_clients:
        if c not in STREAM_CLIENTS:
            p.error(f"unknown stream client {c!r}")
    for part in args.parts:
        if part not in ("first_token", "token_rate", "concurrent"):
            p.error(f"unknown part {part!r}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sigterm_as_exit()
    # Each stream is one socket in this process and one in the server (a child inherits the limit).
    raise_nofile(2 * max(arguments.streams, default=0) + 1024)
    try:
        run_main(lambda: main(arguments), arguments.loop)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
