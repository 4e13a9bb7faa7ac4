"""Unit tests of the protocol-v2 mapper and filters (no server needed)."""

from __future__ import annotations

import json

from langchain_core.language_models._compat_bridge import _iter_protocol_blocks
from langchain_core.messages import AIMessageChunk

from skeino.runtime.threadlog import ThreadLog
from skeino.streaming.protocol import ProtocolMapper, _blocks, matches


def _frames(log: ThreadLog) -> list[dict]:
    return [json.loads(e.frame) for e in log.events]


def test_a_chunk_the_mapper_cannot_read_never_reaches_the_run() -> None:
    log = ThreadLog("t")
    mapper = ProtocolMapper(log, "r", "g")
    mapper.feed((), "messages", "not a (message, metadata) pair")
    mapper.feed((), "values", {"x": 1})
    assert [(f["method"], f["params"]["data"]) for f in _frames(log)] == [("values", {"x": 1})]


def test_plain_text_tokens_get_the_bridges_blocks() -> None:
    for chunk in (AIMessageChunk(content="tok", id="m"), AIMessageChunk(content="", id="m"),
                  AIMessageChunk(content="", id="m", chunk_position="last"),
                  AIMessageChunk(content="x", id="m", response_metadata={"model_provider": "openai"})):
        assert _blocks(chunk) == _iter_protocol_blocks(chunk)


def test_a_message_left_open_is_finished_with_the_run() -> None:
    log = ThreadLog("t")
    mapper = ProtocolMapper(log, "r", "g")
    mapper.start()
    mapper.feed((), "messages", (AIMessageChunk(content="half", id="m"), {}))
    mapper.finish("error", "boom")
    events = [f["params"]["data"].get("event") for f in _frames(log)]
    assert events == ["running", "message-start", "content-block-start", "content-block-delta",
                      "content-block-finish", "message-finish", "failed"]


def test_filters_match_namespace_prefixes_and_depth() -> None:
    log = ThreadLog("t")
    mapper = ProtocolMapper(log, "r", "g")
    mapper.feed(("child:1", "grand:2"), "values", {"x": 1})
    started_child, started_grand, values = log.events
    everything = frozenset({"values", "lifecycle"})
    assert matches(values, everything, [["child"]], None)
    assert matches(values, everything, [["child:1", "grand"]], 0)
    assert not matches(values, everything, [["child"]], 0)
    assert not matches(values, everything, [["child:9"]], None)
    assert not matches(values, everything, None, 1) and matches(started_child, everything, None, 1)
    assert not matches(values, frozenset({"lifecycle"}), None, None)
    assert matches(started_grand, frozenset({"lifecycle"}), [["child"]], 1)


def test_forgetting_a_run_keeps_every_other_runs_events_in_order() -> None:
    from skeino.runtime.threadlog import ProtocolEvent

    log = ThreadLog("t")
    # a, b interleaved (a stopped while b began), then c, a's last event, c again.
    order = ["a", "a", "b", "a", "b", "c", "a", "c"]
    for seq, run in enumerate(order, start=1):
        log.append(ProtocolEvent(seq, run, "values", (), None, b"{}"))

    def kept() -> list[tuple[int, str]]:
        return [(e.seq, e.run_id) for e in log.after(0)]

    log.forget_run("a")  # not a prefix: its events are spread out
    assert kept() == [(3, "b"), (5, "b"), (6, "c"), (8, "c")]
    log.forget_run("b")
    assert kept() == [(6, "c"), (8, "c")]
    log.forget_run("nobody")
    log.forget_run("c")
    assert kept() == [] and log.last_seq() == 0
    log.append(ProtocolEvent(9, "d", "values", (), None, b"{}"))
    assert kept() == [(9, "d")] and log.after(8) == log.events
