"""Operations: Prometheus metrics, readiness, request ids, JSON logs, body limit, security headers, safe 500s."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from langgraph_sdk import get_client
from prometheus_client.parser import text_string_to_metric_families

from serverproc import Server
from skeino.api.middleware import RequestLayer
from skeino.runtime.metrics import Metrics
from skeino.config import ConfigError, Settings


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_after_a_run(server: Server, client) -> None:
    before = _samples(httpx.get(f"{server.url}/metrics").text)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "pipeline", input={"text": "hi"})
    async for _ in client.runs.stream(thread["thread_id"], "pipeline", input={"text": "again"}):
        pass
    resp = httpx.get(f"{server.url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    after = _samples(resp.text)

    assert _value(after, "skeino_runs_finished_total", status="success") >= \
        _value(before, "skeino_runs_finished_total", status="success") + 2
    assert _value(after, "skeino_run_duration_seconds_count") >= _value(before, "skeino_run_duration_seconds_count") + 2
    assert _value(after, "skeino_run_queue_wait_seconds_count") >= \
        _value(before, "skeino_run_queue_wait_seconds_count") + 2
    # Requests are labelled by route template, never by raw path with ids in it.
    wait_route = "/threads/{thread_id}/runs/wait"
    assert _value(after, "skeino_http_requests_total", method="POST", route=wait_route, status="200") >= 1
    assert _value(after, "skeino_http_request_duration_seconds_count", method="POST", route=wait_route) >= 1
    assert not any(thread["thread_id"] in str(labels) for _, labels in after)
    # Storage-backed gauges: the queue depth and finished runs by status.
    assert ("skeino_runs", (("status", "success"),)) in after
    # The stream the client finished leaves the gauge once the server has closed it.
    assert await _eventually(lambda: _value(_samples(httpx.get(f"{server.url}/metrics").text),
                                            "skeino_active_streams") == 0)


async def test_active_streams_gauge_counts_open_streams(server: Server, client) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "slow", input={"seconds": 2})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async with http.stream("GET", f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream") as resp:
            assert resp.status_code == 200
            text = httpx.get(f"{server.url}/metrics").text
            assert _value(_samples(text), "skeino_active_streams") >= 1
            await client.runs.cancel(thread["thread_id"], run["run_id"])
            async for _ in resp.aiter_bytes():
                pass


def test_readiness_checks_storage(server: Server) -> None:
    assert httpx.get(f"{server.url}/ok?check_db=1").json() == {"ok": True}
    assert httpx.get(f"{server.url}/ok?check_db=2").status_code == 422


def test_request_id_and_security_headers(server: Server) -> None:
    rid = uuid.uuid4().hex
    resp = httpx.get(f"{server.url}/info", headers={"X-Request-Id": rid})
    assert resp.headers["x-request-id"] == rid
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert len(httpx.get(f"{server.url}/ok").headers["x-request-id"]) == 32
    made = {httpx.get(f"{server.url}/ok").headers["x-request-id"] for _ in range(5)}
    assert len(made) == 5 and all(len(r) == 32 and int(r, 16) >= 0 for r in made)  # new, distinct, hex

    studio = httpx.get(f"{server.url}/studio/")
    csp = studio.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


def test_body_limit_is_413(tmp_path: Path) -> None:
    srv = Server(db=tmp_path / "s.db", env={"SKEINO_MAX_BODY_BYTES": "100000"}).start()
    try:
        big = {"metadata": {"blob": "x" * 200_000}}
        resp = httpx.post(f"{srv.url}/threads", json=big)
        assert resp.status_code == 413
        assert "100000 bytes" in resp.json()["detail"]

        def chunks():  # no Content-Length: the limit holds while the body streams in
            data = json.dumps(big).encode()
            for i in range(0, len(data), 16384):
                yield data[i:i + 16384]

        resp = httpx.post(f"{srv.url}/threads", content=chunks(), headers={"content-type": "application/json"})
        assert resp.status_code == 413
        # Under the limit all is as usual, and nothing was created by the refused requests.
        assert httpx.post(f"{srv.url}/threads", json={"metadata": {"ok": 1}}).status_code == 200
        assert httpx.post(f"{srv.url}/threads/count", json={}).json() == 1
    finally:
        srv.stop()


@pytest.mark.allow_server_log(r"run \S+ failed: ValueError: boom")  # the line this test reads
def test_json_logs_carry_request_and_run_ids(tmp_path: Path) -> None:
    srv = Server(db=tmp_path / "s.db", extra_args=["--log-format", "json", "--log-level", "info"]).start()
    try:
        rid = uuid.uuid4().hex
        httpx.post(f"{srv.url}/threads/{uuid.uuid4()}/runs/wait", headers={"X-Request-Id": rid},
                   json={"assistant_id": "failing", "input": {}, "if_not_exists": "create"}, timeout=30)
    finally:
        srv.stop()
    records = [json.loads(line) for line in srv.log.read_text().splitlines() if line.startswith("{")]
    assert records, srv.log.read_text()
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    failed = [r for r in records if r["logger"] == "skeino.runs" and "failed" in r["message"]]
    assert failed and failed[0].get("run_id")
    assert any(r.get("request_id") == rid for r in records)


async def test_unhandled_error_answers_an_error_id(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    metrics = Metrics(lambda: _no_counts())
    app.add_middleware(RequestLayer, metrics=metrics, max_body_bytes=1000)  # as create_app does
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t") as http:
        resp = await http.get("/boom")
    assert resp.status_code == 500
    body = resp.json()
    assert "secret internals" not in resp.text
    assert body["detail"] == f"Internal server error (error id {body['error_id']})"
    assert body["error_id"] in caplog.text and "secret internals" in caplog.text
    assert _value(_samples((await metrics.render()).decode()), "skeino_http_requests_total",
                  method="GET", route="/boom", status="500") == 1


async def _eventually(check, timeout: float = 10) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _no_counts() -> dict[str, int]:
    return {}


async def test_startup_freezes_the_heap_it_built(tmp_path: Path) -> None:
    """Full collections scan only what requests made, not the libraries and graphs loaded at start."""
    import dataclasses
    import gc

    from skeino.api.app import create_app
    from skeino.config import Settings, load_config

    config_file = tmp_path / "langgraph.json"
    config_file.write_text(json.dumps({"graphs": {"counter": str(Path(__file__).parent.parent / "graphs" / "pipeline.py")
                                                  + ":counter"}}))
    settings = dataclasses.replace(Settings.from_env({}), db_path=tmp_path / "skeino.db")
    app = create_app(load_config(config_file, settings))
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold()[0] > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.parametrize("env, message", [
    ({"SKEINO_BUS": "kafka"}, "SKEINO_BUS must be 'postgres' or 'redis'"),
    ({"SKEINO_BUS": "redis", "SKEINO_DATABASE_URL": "postgresql://db/x"}, "needs SKEINO_REDIS_URL"),
    ({"SKEINO_BUS": "postgres", "SKEINO_DATABASE_URL": "postgresql://db/x",
      "SKEINO_REDIS_URL": "redis://127.0.0.1:6379/0"}, "name two buses"),
])
def test_a_bus_that_cannot_be_had_is_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_bus_follows_redis_unless_named() -> None:
    assert Settings.from_env({}).bus is None
    assert Settings.from_env({"SKEINO_DATABASE_URL": "postgresql://db/x"}).bus is None
    assert Settings.from_env({"SKEINO_DATABASE_URL": "postgresql://db/x", "SKEINO_BUS": "Postgres"}).bus == "postgres"
    assert Settings.from_env({"SKEINO_DATABASE_URL": "postgresql://db/x",
                              "SKEINO_REDIS_URL": "redis://127.0.0.1:6379/0"}).bus == "redis"


@pytest.mark.parametrize("env", [{"SKEINO_BUS": "postgres"}, {"SKEINO_REDIS_URL": "redis://127.0.0.1:6379/0"}])
def test_a_bus_without_a_shared_database_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    import dataclasses

    from skeino.api.app import create_app
    from skeino.config import load_config

    config_file = tmp_path / "langgraph.json"
    config_file.write_text(json.dumps({"graphs": {"counter": str(Path(__file__).parent.parent / "graphs" / "pipeline.py")
                                                  + ":counter"}}))
    settings = dataclasses.replace(Settings.from_env(env), db_path=tmp_path / "skeino.db")
    with pytest.raises(ConfigError, match=r"connects replicas sharing one database: set SKEINO_DATABASE_URL"):
        create_app(load_config(config_file, settings))
