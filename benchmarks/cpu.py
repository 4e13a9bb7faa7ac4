"""Server CPU per run, an older commit against this tree, side by side.

Starts a server from each source tree in turn (the old commit is exported with
`git archive` into a temporary directory; the new one is this work tree, local changes
included), runs `--runs` runs of the `counter` graph at `--concurrency` clients for each
variant (as `runs.py`'s throughput figure: thread runs `POST /threads/{id}/runs/wait`,
each client on its own thread; stateless runs `POST /runs/wait`), and reads the server
process's CPU time (user + system, its children included) from /proc around the timed runs.
Old and new alternate within every round, and the order flips from round to round, so load
from other processes on the machine falls on both alike. With `--together` both servers run
at once instead, each with its own `--concurrency` clients, one variant at a time: the load of
each moment falls on both, which a shared machine whose load swings within a minute needs
for differences of a few percent (each server then also competes with the other).

Figures (one JSON line each, on stdout):

  cpu_round   one tree, one variant, one round: runs/s, server CPU ms per run, latency,
              and the 1-minute load average before it started;
  cpu_summary per variant: medians over rounds for each tree and new/old ratios.

Examples:
  python benchmarks/cpu.py --old 6812c6b
  python benchmarks/cpu.py --old 6812c6b --new HEAD --rounds 5 --runs 800
  python benchmarks/cpu.py --old HEAD --together --rounds 4   # a change in the work tree, A/B
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from _common import REPO_DIR, ServerProcess, emit, environment_record, log, loop_name, raise_nofile, \
    run_main, sigterm_as_exit
from runs import HttpxClient, _check, _throughput


def _export(commit: str, into: Path) -> str:
    """The tree of `commit` written under `into`; its short id."""
    short = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", commit], check=True,
                           capture_output=True, text=True).stdout.strip()
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO_DIR), "archive", "--format=tar", commit], check=True, stdout=out)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "src", filter="data")
    archive.unlink()
    return short


def _load() -> float:
    return round(os.getloadavg()[0], 2)


async def _measure(source: Path, args: argparse.Namespace, variants: list[str] | None = None) -> list[dict[str, Any]]:
    """One server from `source`: each variant's throughput and server CPU per run."""
    out = []
    with ServerProcess(source / "benchmarks" / "langgraph.json", source=source) as server:
        client = HttpxClient(server.url, args.concurrency, {})
        try:
            for variant in variants or args.variants:
                thread = variant == "thread"

                async def run(thread_id: Any) -> bool:
                    return _check(await client.wait(thread_id))

                setup = (lambda _i: client.create_thread()) if thread else (lambda _i: None)
                load = _load()
                record = await _throughput(args.concurrency, args.runs, setup, run, server.pid)
                out.append({"variant": variant, "load_avg_1m": load, **record})
        finally:
            await client.aclose()
    return out


async def _round(trees: dict[str, tuple[str, Path]], i: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One round: each tree's figures, tagged with the tree."""
    rows: list[dict[str, Any]] = []

    def tag(name: str, records: list[dict[str, Any]]) -> None:
        for record in records:
            row = {"bench": "cpu_round", "round": i + 1, "tree": name, "commit": trees[name][0], **record}
            rows.append(row)
            emit(row)

    if args.together:
        for variant in args.variants:
            log(f"round {i + 1}/{args.rounds}: {variant}, old and new at once")
            old, new = await asyncio.gather(*(_measure(trees[name][1], args, [variant]) for name in ("old", "new")))
            tag("old", old)
            tag("new", new)
        return rows
    order = ["old", "new"] if i % 2 == 0 else ["new", "old"]
    for name in order:
        log(f"round {i + 1}/{args.rounds}: {name} ({trees[name][0]})")
        tag(name, await _measure(trees[name][1], args))
    return rows


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="skeino-cpu-"))
    try:
        trees: dict[str, tuple[str, Path]] = {}
        for name, commit in (("old", args.old), ("new", args.new)):
            if commit:
                (tmp / name).mkdir()
                trees[name] = (_export(commit, tmp / name), tmp / name / "src")
        if not args.new:
            head = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
            trees["new"] = (f"{head} (work tree)", REPO_DIR)
        emit(environment_record("cpu.py", loop_name(args.loop), {
            "old": trees["old"][0], "new": trees["new"][0], "rounds": args.rounds, "runs": args.runs,
            "concurrency": args.concurrency, "variants": args.variants, "together": args.together}))
        rows: list[dict[str, Any]] = []
        for i in range(args.rounds):
            rows += await _round(trees, i, args)
        for variant in args.variants:
            summary: dict[str, Any] = {"bench": "cpu_summary", "variant": variant, "concurrency": args.concurrency,
                                       "runs": args.runs, "rounds": args.rounds}
            for name, (commit, _) in trees.items():
                mine = [r for r in rows if r["tree"] == name and r["variant"] == variant]
                summary[name] = {"commit": commit, "server_cpu_ms_per_run": _median(mine, "server_cpu_ms_per_item"),
                                 "runs_per_s": _median(mine, "runs_per_s"), "p50_ms": _median(mine, "p50_ms"),
                                 "errors": sum(r["errors"] for r in mine)}
            for key in ("server_cpu_ms_per_run", "runs_per_s"):
                before, after = summary["old"][key], summary["new"][key]
                if before and after:
                    summary[f"{key}_new_over_old"] = round(after / before, 3)
            # Per round, new against old: the load both saw was the same only within a round.
            ratios = [new["server_cpu_ms_per_item"] / old["server_cpu_ms_per_item"]
                      for old, new in zip(*([r for r in rows if r["tree"] == name and r["variant"] == variant]
                                            for name in ("old", "new")))
                      if old.get("server_cpu_ms_per_item") and new.get("server_cpu_ms_per_item")]
            if ratios:
                summary["server_cpu_ratio_per_round"] = [round(r, 3) for r in ratios]
                summary["server_cpu_ratio_median"] = round(statistics.median(ratios), 3)
            summary["load_avg_1m"] = [r["load_avg_1m"] for r in rows if r["variant"] == variant]
            emit(summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", default="6812c6b", help="the commit to compare against (default 6812c6b)")
    p.add_argument("--new", default=None, help="a commit for the new side (default: this work tree as it is)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of old and new (default 3)")
    p.add_argument("--runs", type=int, default=400, help="timed runs per variant and server (default 400)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--variants", type=lambda s: s.split(","), default=["thread", "stateless"],
                   help="thread, stateless (default both)")
    p.add_argument("--together", action="store_true",
                   help="run old and new at the same time in each round instead of one after the other")
    p.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"], help="client event loop")
    args = p.parse_args(argv)
    for v in args.variants:
        if v not in ("thread", "stateless"):
            p.error(f"unknown variant {v!r}")
    if args.rounds < 1 or args.runs < 1 or args.concurrency < 1:
        p.error("--rounds, --runs and --concurrency must be positive")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sigterm_as_exit()
    raise_nofile((8 if arguments.together else 4) * arguments.concurrency + 256)
    try:
        run_main(lambda: main(arguments), arguments.loop)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
