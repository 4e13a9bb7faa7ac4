"""Schemathesis against skeino's own /openapi.json: no 500, and every answer as the schema documents it.

A bounded number of generated requests per operation (valid and invalid ones), on a server of
its own so the fuzzing cannot disturb other tests. Each answer must have a documented status
code, content type and body shape. A 501 is a documented refusal of an option skeino does not
implement, not a server failure; a 500 always is.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

from serverproc import Server

EXAMPLES_PER_OPERATION = 4
CONFIG = SchemathesisConfig.from_dict({
    "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "stateful": {"enabled": False},
               "fuzzing": {"enabled": True}},
})


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(db=tmp_path_factory.mktemp("openapi") / "skeino.db").start()
    yield srv
    srv.stop()
    assert srv.log is not None
    log = srv.log.read_text(errors="replace")
    assert "unhandled error" not in log and "Exception in ASGI application" not in log, log[-4000:]


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: Server) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json", config=CONFIG)


def _answers_as_documented(operation: Any, mode: GenerationMode, base_url: str) -> list[str]:
    """Draw a bounded number of requests for one operation; the problems found, one line each."""
    problems: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=30)
        where = f"{case.method} {case.formatted_path} ({mode.value})"
        if response.status_code == 500:
            problems.append(f"{where}: 500 {response.text[:300]}")
            return
        try:
            case.validate_response(response, checks=[checks.status_code_conformance, checks.content_type_conformance,
                                                     checks.response_schema_conformance])
        except Exception as exc:  # schemathesis raises a group of check failures
            failures = getattr(exc, "exceptions", [exc])
            problems.extend(f"{where}: {type(f).__name__}: {' '.join(str(f).split())[:300]}" for f in failures)

    try:
        check()
    except Unsatisfiable:
        pass  # an operation without inputs has no invalid request to draw
    return problems


def test_every_answer_is_documented(api_schema: Any, fuzzed_server: Server) -> None:
    problems: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            problems += _answers_as_documented(operation, mode, fuzzed_server.url)
    assert not problems, "\n".join(problems)


def test_the_schema_documents_error_bodies_once(api_schema: Any) -> None:
    raw = api_schema.raw_schema
    detail = raw["components"]["schemas"]["ErrorBody"]
    assert detail["properties"]["detail"]["type"] == "string"
    # FastAPI's list-of-errors model is never documented: skeino's 422 is a sentence.
    assert "HTTPValidationError" not in raw["components"]["schemas"]
    thread_get = raw["paths"]["/threads/{thread_id}"]["get"]
    assert {"404", "422", "500"} <= set(thread_get["responses"])
    param = next(p for p in thread_get["parameters"] if p["name"] == "thread_id")
    assert param["schema"].get("format") == "uuid"
    stream = raw["paths"]["/threads/{thread_id}/runs/stream"]["post"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
