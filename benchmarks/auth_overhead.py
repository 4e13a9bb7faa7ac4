"""What custom auth adds to each request and run, measured in-process as CPU time.

On a busy machine the server figures of `runs.py --auth …` swing more between identical
runs than authentication could change them; this script times skeino's own custom-auth
steps for `langgraph.auth.json` (bearer token, owner filter) directly, so the cost per run
can be read against the server CPU per run that `runs.py` prints.

    python benchmarks/auth_overhead.py > auth_overhead.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any, Awaitable, Callable

from _common import AUTH_CONFIG, BENCH_API_KEY, CUSTOM_TOKEN, emit, environment_record, log

from skeino.auth.custom import Authorizer, CustomAuth
from skeino.auth.keys import KeyRing
from skeino.auth.user import caller, caller_from_run, run_configurable
from skeino.config import load_config
from skeino.storage.access import matches_json

SCOPE = {"type": "http", "method": "POST", "path": "/threads/x/runs/wait", "query_string": b"",
         "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {CUSTOM_TOKEN}".encode()),
                     (b"content-type", b"application/json")]}
THREAD_METADATA = '{"graph_id": "counter", "assistant_id": "6ba7b821", "owner": "bench-user"}'


async def cpu_us(n: int, step: Callable[[], Awaitable[Any]]) -> float:
    """CPU microseconds per call of `step` (process time: what a busy machine distorts least)."""
    started = time.process_time()
    for _ in range(n):
        await step()
    return round((time.process_time() - started) / n * 1e6, 2)


async def main(args: argparse.Namespace) -> None:
    emit(environment_record("auth_overhead.py", "asyncio", {"n": args.n}))
    auth = CustomAuth.load(load_config(AUTH_CONFIG))
    assert auth is not None
    authz = Authorizer(auth)
    ctx = await auth.authenticate(SCOPE)
    caller.set(ctx)
    access = await authz("threads", "create_run", {"thread_id": "x", "metadata": {}, "kwargs": {}})
    assert access is not None

    async def authenticate() -> Any:
        return await auth.authenticate(SCOPE)

    async def authorize() -> Any:
        return await authz("threads", "create_run", {"thread_id": "x", "metadata": {}, "kwargs": {}})

    async def run_user() -> Any:
        return caller_from_run(run_configurable(ctx))

    async def filter_row() -> Any:
        return matches_json(THREAD_METADATA, access.json)

    keys = KeyRing.from_settings(BENCH_API_KEY, None)

    async def api_key() -> Any:  # --auth apikey: the whole per-request cost (digest, constant-time compare)
        return keys.lookup(BENCH_API_KEY)

    steps = {"authenticate": authenticate, "authorize": authorize, "run_user": run_user, "filter_row": filter_row,
             "api_key": api_key}
    figures = {name: await cpu_us(args.n, step) for name, step in steps.items()}
    # A thread run as runs.py makes it: two requests (create the thread, create+wait the run),
    # each authenticated and authorized, the user written into and read out of the run's
    # config, and the owner filter checked once on the thread's row.
    per_run = 2 * figures["authenticate"] + 2 * figures["authorize"] + figures["run_user"] + figures["filter_row"]
    emit({"bench": "auth_overhead", **{f"{k}_cpu_us": v for k, v in figures.items()},
          "thread_run_cpu_us": round(per_run, 2), "thread_run_api_key_cpu_us": round(2 * figures["api_key"], 2)})
    log(f"custom auth: about {per_run:.0f} µs of CPU per thread run; API keys {2 * figures['api_key']:.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="calls timed per step (default 20000)")
    asyncio.run(main(parser.parse_args()))
