"""`skeino serve` refuses a broken configuration with one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serverproc import free_port
from skeino.config import ConfigError, load_config

EXIT_CONFIG = 2


def serve(config: Path, *extra: str, command: str = "serve", env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skeino.cli", command, "--config", str(config), "--port", str(free_port()), *extra],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2, exactly one line on stderr containing every needle, and no traceback anywhere."""
    assert proc.returncode == EXIT_CONFIG, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("skeino: ")
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_config(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    assert_refused(serve(config), str(config), "not found")


def test_invalid_json(tmp_path: Path) -> None:
    config = write(tmp_path / "langgraph.json", '{\n  "graphs": {"g": "./g.py:graph",}\n}\n')
    assert_refused(serve(config), str(config), "invalid JSON", "line 2")


def test_sqlite_folder_that_cannot_be_made(tmp_path: Path) -> None:
    # As on a read-only mount of the project: the database's folder cannot be created.
    write(tmp_path / "g.py", "graph = None\n")  # refused before graphs are imported
    config = write(tmp_path / "langgraph.json", '{"graphs": {"g": "./g.py:graph"}}')
    blocker = write(tmp_path / "a-file", "")
    assert_refused(serve(config, env={"SKEINO_DB": str(blocker / "skeino.db")}), str(blocker), "SKEINO_DB")


# Each graph case imports LangGraph in a fresh interpreter (seconds each): start them all at once.
GRAPH_CASES: dict[str, tuple[dict[str, str], str, str]] = {
    "raises": ({"exploding.py": 'raise RuntimeError("kaboom at import")\n'}, "my_graph", "./exploding.py:graph"),
    "not_a_graph": ({"numbers.py": "graph = 42\n"}, "answer", "./numbers.py:graph"),
    "missing_attribute": ({"empty.py": "x = 1\n"}, "ghost", "./empty.py:graph"),
    "missing_file": ({}, "lost", "./nowhere.py:graph"),
}


@pytest.fixture(scope="module")
def graph_refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    started = {}
    for name, (files, graph_id, spec) in GRAPH_CASES.items():
        root = tmp_path_factory.mktemp(name)
        for filename, text in files.items():
            write(root / filename, text)
        config = write(root / "langgraph.json", json.dumps({"graphs": {graph_id: spec}}))
        args = [sys.executable, "-m", "skeino.cli", "serve", "--config", str(config), "--port", str(free_port())]
        started[name] = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = {}
    for name, proc in started.items():
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_graph_module_that_raises(graph_refusals: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert_refused(graph_refusals["raises"], "exploding.py", "'my_graph'", "RuntimeError", "kaboom at import")


def test_attribute_that_is_not_a_graph(graph_refusals: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert_refused(graph_refusals["not_a_graph"], "numbers.py", "'answer'", "int", "not a compiled graph")


def test_missing_attribute(graph_refusals: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert_refused(graph_refusals["missing_attribute"], "empty.py", "'ghost'", "'graph'")


def test_missing_graph_file(graph_refusals: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert_refused(graph_refusals["missing_file"], "nowhere.py", "'lost'", "not found")


@pytest.mark.parametrize("body, needles", [
    ('{"graphs": {}}', ["'graphs'"]),
    ('["not", "an", "object"]', ["top level"]),
    ('{"graphs": {"g": "no_colon_here"}}', ["'g'", "no_colon_here"]),
    ('{"graphs": {"g": "./g.py:graph"}, "dependencies": "./src"}', ["'dependencies'"]),
    ('{"graphs": {"g": "./g.py:graph"}, "http": []}', ["'http'"]),
    ('{"graphs": {"g": "./g.py:graph"}, "auth": {"path": "./auth.py:auth", "openapi": {}}}', ["auth.openapi", "not supported"]),
    ('{"graphs": {"g": "./g.py:graph"}, "auth": {"path": "./auth.py"}}', ["auth.path", "./auth.py:auth"]),
    ('{"graphs": {"g": "./g.py:graph"}, "auth": {"path": "./auth.py:auth"}}', ["auth.py", "not found"]),
])
def test_invalid_config_values(tmp_path: Path, body: str, needles: list[str]) -> None:
    config = write(tmp_path / "langgraph.json", body)
    assert_refused(serve(config), str(config), *needles)


def test_invalid_environment_variable(tmp_path: Path) -> None:
    config = write(tmp_path / "langgraph.json", '{"graphs": {"g": "./g.py:graph"}}')
    assert_refused(serve(config, env={"SKEINO_MAX_CONCURRENT_RUNS": "lots"}), "SKEINO_MAX_CONCURRENT_RUNS", "lots")
    assert_refused(serve(config, env={"SKEINO_RECOVERY": "pray"}), "SKEINO_RECOVERY", "pray")


def test_dev_refuses_the_same_way(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    assert_refused(serve(config, command="dev"), str(config), "not found")


def test_unknown_keys_are_warned_about_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "g.py", "graph = None\n")
    config = write(tmp_path / "langgraph.json",
                   '{"graphs": {"g": "./g.py:graph"}, "python_version": "3.12", "flavour": "mint"}')
    with caplog.at_level(logging.WARNING, logger="skeino"):
        loaded = load_config(config)
    assert [g.graph_id for g in loaded.graphs] == ["g"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'flavour'" in warnings[0] and str(config) in warnings[0]


def test_load_config_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.json")


def test_unsupported_http_and_checkpointer_keys_are_refused(tmp_path) -> None:
    """Options skeino cannot honour stop the start instead of being dropped."""
    import json
    import subprocess
    import sys

    for extra, named in (({"http": {"app": "./app.py:app"}}, "http.app"),
                         ({"checkpointer": {"ttl": {"strategy": "keep_latest"}}}, "checkpointer.ttl.strategy"),
                         ({"checkpointer": {"ttl": {"default_ttl": -5}}}, "checkpointer.ttl.default_ttl"),
                         ({"store": {"ttl": {"sweep_interval_minutes": "often"}}}, "store.ttl.sweep_interval_minutes"),
                         ({"store": {"index": {"dims": 3}}}, "store.index.embed"),
                         ({"store": {"index": {"dims": 0, "embed": "./e.py:f"}}}, "store.index.dims")):
        config = tmp_path / "langgraph.json"
        config.write_text(json.dumps({"graphs": {"g": "./g.py:graph"}, **extra}))
        proc = subprocess.run([sys.executable, "-m", "skeino.cli", "serve", "--config", str(config)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert named in proc.stderr and "Traceback" not in proc.stderr
