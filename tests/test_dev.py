"""`skeino dev` starts like `langgraph dev`: its CORS, its flags (acted on or refused by name), a missing .env.

Compared with `langgraph dev`: with no `http.cors` it answers preflights from any origin with
`access-control-allow-origin: *` (never with credentials) and `access-control-allow-private-network`,
and exposes the pagination and Content-Location headers. `skeino serve` keeps CORS to `http.cors`.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from serverproc import Server
from skeino.config import ConfigError, load_config
from test_cli import assert_refused, serve, write

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
STUDIO = "https://studio.example"
PREFLIGHT = {"Origin": "http://ui.example", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-api-key",
             "Access-Control-Request-Private-Network": "true"}


def config_in(folder: Path, **extra: object) -> Path:
    config = {"dependencies": [str(GRAPHS)], "graphs": {"counter": f"{GRAPHS}/pipeline.py:counter"}, **extra}
    return write(folder / "langgraph.json", json.dumps(config))


async def test_dev_answers_browsers_like_langgraph_dev(tmp_path: Path) -> None:
    # Reloading, as `skeino dev` runs by default: the settings must reach the reloaded worker.
    server = Server(db=tmp_path / "skeino.db", config=config_in(tmp_path), command="dev",
                    extra_args=["--no-browser", "--allow-blocking", "--studio-url", STUDIO,
                                "--server-log-level", "WARNING", "--n-jobs-per-worker", "3"]).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            res = await http.options("/threads", headers=PREFLIGHT)
            assert res.status_code == 200
            assert res.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in res.headers
            assert res.headers["access-control-allow-private-network"] == "true"
            assert {"post", "get", "delete", "patch", "put"} <= {
                m.strip().lower() for m in res.headers["access-control-allow-methods"].split(",")}
            assert {"content-type", "x-api-key"} <= {
                h.strip().lower() for h in res.headers["access-control-allow-headers"].split(",")}

            res = await http.post("/assistants/search", json={}, headers={"Origin": "http://ui.example"})
            assert res.status_code == 200 and res.headers["access-control-allow-origin"] == "*"
            exposed = {h.strip().lower() for h in res.headers["access-control-expose-headers"].split(",")}
            assert {"x-pagination-next", "content-location"} <= exposed

            # CORS lets pages read answers; a simple cross-site POST still changes nothing...
            res = await http.post("/threads", content=b"{}", headers={"Origin": "http://ui.example",
                                                                      "Content-Type": "text/plain"})
            assert res.status_code == 403
            # ...except from the hosted Studio named by --studio-url, which sends JSON as text/plain.
            res = await http.post("/threads", content=b'{"metadata": {"from": "studio"}}',
                                  headers={"Origin": STUDIO, "Content-Type": "text/plain"})
            assert res.status_code == 200 and res.json()["metadata"] == {"from": "studio"}
    finally:
        server.stop()
    assert server.log is not None
    banner = server.log.read_text()
    assert f"Hosted Studio: {STUDIO}/studio/?baseUrl={server.url}" in banner
    assert "Runs:   up to 3 at once" in banner
    assert "CORS:   any origin, without credentials" in banner


async def test_serve_keeps_cors_to_what_is_configured(tmp_path: Path) -> None:
    server = Server(db=tmp_path / "skeino.db", config=config_in(tmp_path)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            res = await http.options("/threads", headers=PREFLIGHT)
            assert "access-control-allow-origin" not in res.headers
            res = await http.post("/assistants/search", json={}, headers={"Origin": "http://ui.example"})
            assert res.status_code == 200 and "access-control-allow-origin" not in res.headers
    finally:
        server.stop()
    assert server.log is not None and "CORS:   off" in server.log.read_text()


async def test_dev_without_reload_and_configured_cors(tmp_path: Path) -> None:
    config = config_in(tmp_path, http={"cors": {"allow_origins": ["http://ui.example"], "allow_methods": ["*"]}})
    server = Server(db=tmp_path / "skeino.db", config=config, command="dev", extra_args=["--no-reload"]).start()
    try:
        assert server.proc is not None
        # No reloader: the process serving is the one started.
        children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
        assert children.strip() == ""
        async with httpx.AsyncClient(base_url=server.url) as http:
            res = await http.options("/threads", headers=PREFLIGHT)
            assert res.headers["access-control-allow-origin"] == "http://ui.example"
            res = await http.options("/threads", headers={**PREFLIGHT, "Origin": "http://other.example"})
            assert "access-control-allow-origin" not in res.headers
    finally:
        server.stop()
    assert server.log is not None and "CORS:   http://ui.example" in server.log.read_text()


@pytest.mark.parametrize("flags,needles", [
    (["--tunnel"], ["--tunnel", "not supported"]),
    (["--ssl-certfile", "cert.pem"], ["--ssl-certfile", "--ssl-keyfile", "together"]),
    (["--ssl-certfile", "nope.pem", "--ssl-keyfile", "nope.key"], ["--ssl-certfile", "not found"]),
    (["--wait-for-client"], ["--wait-for-client", "--debug-port"]),
    (["--n-jobs-per-worker", "0"], ["--n-jobs-per-worker"]),
    (["--studio-url", "smith"], ["--studio-url", "'smith'"]),
])
def test_dev_flags_that_cannot_work_are_refused_by_name(tmp_path: Path, flags: list[str], needles: list[str]) -> None:
    assert_refused(serve(config_in(tmp_path), *flags, command="dev"), *needles)


def test_debug_port_without_debugpy_is_refused(tmp_path: Path) -> None:
    try:
        import debugpy  # noqa: F401
    except ImportError:
        assert_refused(serve(config_in(tmp_path), "--debug-port", "5678", command="dev"), "--debug-port", "debugpy")
    else:
        pytest.skip("debugpy is installed here")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
async def test_https_with_a_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = Server(db=tmp_path / "skeino.db", config=config_in(tmp_path), scheme="https",
                    extra_args=["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, verify=False) as http:
            assert (await http.get("/ok")).json() == {"ok": True}
    finally:
        server.stop()
    assert server.log is not None and f"API:    https://127.0.0.1:{server.port}" in server.log.read_text()


def test_a_missing_env_file_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = config_in(tmp_path, env=".env")
    with caplog.at_level(logging.WARNING, logger="skeino"):
        loaded = load_config(config)
    assert loaded.env == {}
    assert any("'.env'" in r.getMessage() and "does not exist" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("cors,needle", [
    ({"allow_origins": ["*"], "allow_credentials": True}, "allow_credentials"),
    ({"allow_origin": ["http://x"]}, "http.cors.allow_origin"),
    ({"allow_origins": "http://x"}, "allow_origins"),
])
def test_cors_settings_that_would_be_unsafe_or_ignored_are_refused(tmp_path: Path, cors: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(config_in(tmp_path, http={"cors": cors}))
