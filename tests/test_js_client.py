"""The official JavaScript client (@langchain/langgraph-sdk) against a real skeino process.

tests/js/client_check.mjs drives the server through the JS client and prints what it
saw; the assertions live here. The client is installed from tests/js/package-lock.json
on first use.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from serverproc import Server

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def js_client(node: tuple[str, str]) -> Path:
    node_path, npm = node
    if not (JS_DIR / "node_modules" / "@langchain" / "langgraph-sdk").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR, check=True,
                       timeout=300)
    return Path(node_path)


@pytest.fixture(scope="module")
def seen(js_client: Path, server: Server) -> dict[str, Any]:
    proc = subprocess.run([str(js_client), "client_check.mjs", server.url], cwd=JS_DIR, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_assistants_and_wait(seen: dict[str, Any]) -> None:
    assert seen["counterAssistant"] == [{"graph_id": "counter", "name": "counter"}]
    assert seen["waitResult"] == {"count": 3}
    t = seen["threadAfterWait"]
    assert t["status"] == "idle" and t["values"] == {"count": 3}
    assert t["metadata"]["from"] == "js" and t["metadata"]["graph_id"] == "counter"


def test_token_stream_with_two_modes(seen: dict[str, Any]) -> None:
    first = seen["firstEvent"]
    assert first["event"] == "metadata" and first["id"] == "0" and first["data"]["run_id"]
    assert set(seen["streamEvents"]) == {"metadata", "messages", "values"}
    assert len(seen["tokens"]) > 1
    assert "".join(seen["tokens"]) == "You said: hello from js"
    last = seen["lastValues"]["messages"][-1]
    assert last["type"] == "ai" and last["content"] == "You said: hello from js"


def test_interrupt_and_resume(seen: dict[str, Any]) -> None:
    [pending] = seen["interrupt"]
    assert pending["id"] and pending["value"]["question"] == "Approve this plan?"
    assert seen["hitlStatus"] == "interrupted" and seen["hitlNext"] == ["review"]
    assert seen["resumed"]["result"].startswith("Executed") and seen["hitlStatusAfter"] == "idle"


def test_background_join_and_resumable_replay(seen: dict[str, Any]) -> None:
    assert seen["joined"] == {"count": 4} and seen["runStatus"] == "success"
    assert seen["replay"] == [{"id": "0", "event": "metadata"}] + [
        {"id": str(i), "event": "updates"} for i in (1, 2, 3)
    ]
    assert seen["replayAfter1"] == [
        {"id": "2", "event": "updates", "data": {"b": {"count": 3}}},
        {"id": "3", "event": "updates", "data": {"c": {"count": 4}}},
    ]


def test_stateless_and_errors(seen: dict[str, Any]) -> None:
    assert seen["stateless"] == {"count": 8}
    assert seen["missingThread"]["status"] == 404
