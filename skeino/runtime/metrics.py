"""Prometheus metrics: HTTP traffic, runs, queue and streams, in a registry per runtime.

A registry per runtime (not prometheus_client's global one) lets several apps live in
one process, as they do in tests, without colliding on metric names.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


def _epoch(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


class Metrics:
    """The server's counters; `render` reads the storage-backed gauges fresh on each scrape."""

    def __init__(self, run_counts: Callable[[], Awaitable[dict[str, int]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.http_requests = Counter("skeino_http_requests", "HTTP requests answered, by route template and status.",
                                     ["method", "route", "status"], registry=reg)
        self.http_latency = Histogram("skeino_http_request_duration_seconds",
                                      "Time to the response's first byte, by route template.",
                                      ["method", "route"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.runs_finished = Counter("skeino_runs_finished", "Runs that ended, by final status.", ["status"],
                                     registry=reg)
        self.run_duration = Histogram("skeino_run_duration_seconds", "Run execution time, start to end.",
                                      buckets=_RUN_BUCKETS, registry=reg)
        self.queue_wait = Histogram("skeino_run_queue_wait_seconds",
                                    "Time a run waited between being due and starting.",
                                    buckets=_RUN_BUCKETS, registry=reg)
        self.active_streams = Gauge("skeino_active_streams", "Open SSE streams.", registry=reg)
        self.runs_by_status = Gauge("skeino_runs", "Runs in storage, by status (pending is the queue depth).",
                                    ["status"], registry=reg)
        self._run_counts = run_counts
        # The labelled series of each (method, route, status): looking one up by its labels
        # on every request cost more than counting.
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (self.http_requests.labels(method, route, str(status)),
                                                  self.http_latency.labels(method, route))
        series[0].inc()
        series[1].observe(seconds)

    def run_started(self, run_at: float, created_at: str | None) -> None:
        """`run_at` is when a delayed run became due (0 if not delayed), in epoch seconds."""
        due = max(run_at, _epoch(created_at) or 0.0)
        if due:
            self.queue_wait.observe(max(time.time() - due, 0.0))

    def run_finished(self, status: str, seconds: float) -> None:
        self.runs_finished.labels(status).inc()
        self.run_duration.observe(seconds)

    async def render(self) -> bytes:
        for status, count in (await self._run_counts()).items():
            self.runs_by_status.labels(status).set(count)
        return generate_latest(self.registry)
