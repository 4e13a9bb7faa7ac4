"""The OpenAI-compatible surface, driven by the official `openai` client against a real server."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, AsyncIterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from serverproc import Server
from skeino.streaming.openai import ChunkMapper, new_messages_start

USER_HI = [{"role": "user", "content": "hello skeino"}]
WEATHER = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture
async def oai(server: Server) -> AsyncIterator[AsyncOpenAI]:
    # No retries: a 500 must surface once, not re-run the graph.
    client = AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    yield client
    await client.close()


def thread_header(thread_id: str) -> dict[str, str]:
    return {"X-Thread-Id": thread_id}


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def joined_content(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def assembled_tool_calls(chunks: list[Any]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    return calls


# models ------------------------------------------------------------------------------------
async def test_models_list_every_assistant(oai: AsyncOpenAI, client: Any) -> None:
    custom = await client.assistants.create(graph_id="agent", name="custom agent")
    models = {m.id: m async for m in oai.models.list()}
    assert {"agent", "hitl", "chat_hitl", "failing", custom["assistant_id"]} <= set(models)
    agent = models["agent"]
    assert agent.object == "model" and agent.owned_by == "skeino" and isinstance(agent.created, int)
    assert (await oai.models.retrieve(custom["assistant_id"])).id == custom["assistant_id"]
    # A default assistant answers by its graph id even when asked by its UUID.
    default = await client.assistants.get("agent")
    assert (await oai.models.retrieve(default["assistant_id"])).id == "agent"


async def test_unknown_model_is_not_found(oai: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await oai.chat.completions.create(model="gpt-nope", messages=USER_HI)
    assert info.value.code == "model_not_found"
    assert info.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        await oai.models.retrieve("gpt-nope")


# completions -------------------------------------------------------------------------------
async def test_completion(oai: AsyncOpenAI) -> None:
    reply = await oai.chat.completions.create(model="agent", messages=USER_HI)
    assert reply.object == "chat.completion" and reply.model == "agent"
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: hello skeino"
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (2, 4, 6)


async def test_streaming_deltas_equal_the_completion(oai: AsyncOpenAI) -> None:
    whole = await oai.chat.completions.create(model="agent", messages=USER_HI)
    chunks = await collect(await oai.chat.completions.create(model="agent", messages=USER_HI, stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # token by token
    assert joined_content(chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_stream_include_usage(oai: AsyncOpenAI) -> None:
    whole = await oai.chat.completions.create(model="agent", messages=USER_HI)
    chunks = await collect(await oai.chat.completions.create(
        model="agent", messages=USER_HI, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.model_dump() == whole.usage.model_dump()
    assert chunks[-2].choices[0].finish_reason == "stop"


async def test_stream_ends_with_done_and_no_event_names(server: Server) -> None:
    body = {"model": "agent", "messages": USER_HI, "stream": True}
    async with httpx.AsyncClient() as http:
        response = await http.post(server.url + "/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e.strip() and not e.startswith(":")]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


async def test_tool_call_deltas(oai: AsyncOpenAI) -> None:
    chunks = await collect(await oai.chat.completions.create(model="agent", messages=WEATHER, stream=True))
    calls = assembled_tool_calls(chunks)
    assert list(calls) == [0]
    assert calls[0]["id"] == "call_weather_1" and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Oslo"}
    # The agent ran the tool itself, so the answer follows in the same response.
    assert joined_content(chunks) == "The tool answered: It is sunny and 21 degrees in Oslo."
    assert chunks[-1].choices[0].finish_reason == "stop"


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


async def test_a_graph_ending_on_tool_calls_hands_them_to_the_client(oai: AsyncOpenAI) -> None:
    # `client_tools` binds the request's tools and stops after the model: the calls are the client's to run.
    done = await oai.chat.completions.create(model="client_tools", messages=WEATHER, tools=[WEATHER_TOOL])
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_weather_1", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Oslo"}

    chunks = await collect(await oai.chat.completions.create(model="client_tools", messages=WEATHER,
                                                             tools=[WEATHER_TOOL], stream=True))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    calls = assembled_tool_calls(chunks)
    assert calls == {0: {"id": "call_weather_1", "name": "get_weather", "arguments": call.function.arguments}}

    # The client runs the tool and sends its result back: now the model answers and stops.
    answered = await oai.chat.completions.create(model="client_tools", tools=[WEATHER_TOOL], messages=[
        *WEATHER, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Rain, 9 degrees."}])
    assert answered.choices[0].finish_reason == "stop"
    assert answered.choices[0].message.content == "The tool answered: Rain, 9 degrees."
    assert not answered.choices[0].message.tool_calls


async def test_history_with_tool_calls_and_content_parts(oai: AsyncOpenAI) -> None:
    history = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        *WEATHER,
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Rainy."},
    ]
    reply = await oai.chat.completions.create(model="agent", messages=history)
    assert reply.choices[0].message.content == "The tool answered: Rainy."
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "parts"}]}]
    reply = await oai.chat.completions.create(model="agent", messages=parts)
    assert reply.choices[0].message.content == "You said: hello parts"


# conversations -------------------------------------------------------------------------------
async def test_thread_header_continues_a_conversation(oai: AsyncOpenAI, client: Any) -> None:
    thread_id = str(uuid.uuid4())
    first = await oai.chat.completions.create(model="agent", messages=USER_HI, extra_headers=thread_header(thread_id))
    assert first.choices[0].message.content == "You said: hello skeino"
    # Only the new message: the thread holds the earlier turns.
    second = await oai.chat.completions.create(
        model="agent", messages=[{"role": "user", "content": "and again"}], extra_headers=thread_header(thread_id))
    assert second.choices[0].message.content == "You said: and again"
    state = await client.threads.get_state(thread_id)
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai", "human", "ai"]
    # A client that resends the whole history: only what follows the last assistant message is new.
    history = [*USER_HI, {"role": "assistant", "content": "You said: hello skeino"},
               {"role": "user", "content": "and again"}, {"role": "assistant", "content": "You said: and again"},
               {"role": "user", "content": "third"}]
    chunks = await collect(await oai.chat.completions.create(
        model="agent", messages=history, stream=True, extra_headers=thread_header(thread_id)))
    assert joined_content(chunks) == "You said: third"
    state = await client.threads.get_state(thread_id)
    assert len(state["values"]["messages"]) == 6
    # The runs are ordinary skeino runs on the thread.
    runs = await client.runs.list(thread_id)
    assert len(runs) == 3 and {r["status"] for r in runs} == {"success"}
    assert all(r["metadata"]["source"] == "openai" for r in runs)


async def test_stateless_calls_leave_no_thread(oai: AsyncOpenAI, client: Any) -> None:
    before = await client.threads.count()
    await oai.chat.completions.create(model="agent", messages=USER_HI)
    assert await client.threads.count() == before


async def test_options_reach_the_graph_config(oai: AsyncOpenAI, client: Any) -> None:
    thread_id = str(uuid.uuid4())
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    raw = await oai.chat.completions.with_raw_response.create(
        model="agent", messages=USER_HI, temperature=0.2, max_tokens=50, stop=["END"], top_p=0.9, seed=7,
        tools=tools, tool_choice="auto", user="alice", metadata={"app": "test"},
        extra_headers=thread_header(thread_id))
    [run] = await client.runs.list(thread_id)
    assert raw.headers["X-Thread-Id"] == thread_id
    assert raw.headers["Content-Location"] == f"/threads/{thread_id}/runs/{run['run_id']}"
    assert run["kwargs"]["config"]["configurable"]["openai"] == {
        "temperature": 0.2, "max_tokens": 50, "stop": ["END"], "top_p": 0.9, "seed": 7,
        "tools": tools, "tool_choice": "auto", "user": "alice",
    }
    assert {"app": "test", "source": "openai", "user": "alice"}.items() <= run["metadata"].items()


async def test_interrupt_is_surfaced_and_resumed(oai: AsyncOpenAI, client: Any) -> None:
    thread_id = str(uuid.uuid4())
    ask = [{"role": "user", "content": "delete the old files"}]
    paused = await oai.chat.completions.create(model="chat_hitl", messages=ask, extra_headers=thread_header(thread_id))
    text = paused.choices[0].message.content
    assert "Shall I go ahead?" in text and "delete the old files" in text and "resume" in text
    assert paused.choices[0].finish_reason == "stop"
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    # The UI resends the history including the interrupt message; the new user message resumes the run.
    answer = [*ask, {"role": "assistant", "content": text}, {"role": "user", "content": "yes"}]
    chunks = await collect(await oai.chat.completions.create(
        model="chat_hitl", messages=answer, stream=True, extra_headers=thread_header(thread_id)))
    assert joined_content(chunks) == "Confirmed with 'yes': delete the old files"
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_without_thread_says_it_cannot_resume(oai: AsyncOpenAI) -> None:
    chunks = await collect(await oai.chat.completions.create(
        model="chat_hitl", messages=[{"role": "user", "content": "go"}], stream=True))
    text = joined_content(chunks)
    assert "Shall I go ahead?" in text and "X-Thread-Id" in text


async def test_disconnect_cancels_the_run(oai: AsyncOpenAI, client: Any) -> None:
    slow = await client.assistants.create(
        graph_id="agent", config={"configurable": {"fake_tokens": 200, "fake_token_delay": 0.1}})
    thread_id = str(uuid.uuid4())
    stream = await oai.chat.completions.create(
        model=slow["assistant_id"], messages=USER_HI, stream=True, extra_headers=thread_header(thread_id))
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    for _ in range(100):
        [run] = await client.runs.list(thread_id)
        if run["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert run["status"] == "interrupted"


# errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, param", [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"extra_body": {"frobnicate": True}}, "frobnicate"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": []}, "messages"),
    ({"temperature": 9}, "temperature"),
    ({"extra_headers": {"X-Thread-Id": "not-a-uuid"}}, "X-Thread-Id"),
])
async def test_bad_requests_name_the_field(oai: AsyncOpenAI, options: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(**{"model": "agent", "messages": USER_HI, **options})
    assert info.value.param == param
    assert info.value.body["type"] == "invalid_request_error"


async def test_failing_graph_is_a_server_error_without_internals(oai: AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await oai.chat.completions.create(model="failing", messages=USER_HI)
    assert info.value.body["type"] == "server_error"
    assert "ValueError" in info.value.message and "boom" not in info.value.message


async def test_failure_mid_stream_sends_an_error_then_done(oai: AsyncOpenAI, server: Server) -> None:
    stream = await oai.chat.completions.create(model="failing", messages=USER_HI, stream=True)
    with pytest.raises(openai.APIError):
        await collect(stream)
    body = {"model": "failing", "messages": USER_HI, "stream": True}
    async with httpx.AsyncClient() as http:
        response = await http.post(server.url + "/v1/chat/completions", json=body)
    assert response.status_code == 200
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and "boom" not in error["message"]


# chunk mapping (pure functions) ------------------------------------------------------------------
def ai_chunk(msg_id: str, content: str = "", calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "AIMessageChunk", "id": msg_id, "content": content, "tool_call_chunks": calls or []}


def test_tool_call_indexes_stay_unique_across_messages() -> None:
    mapper = ChunkMapper("chatcmpl-1", "agent", 0)
    call = {"index": 0, "id": "a", "name": "f", "args": "{}"}
    mapper.feed(ai_chunk("m1", "", [call]))
    mapper.feed({"type": "tool", "id": "t1", "content": "done", "tool_call_id": "a"})
    chunks = mapper.feed(ai_chunk("m2", "", [{**call, "id": "b"}]))
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["index"] == 1
    # The run ended on a message calling tools: the client is expected to run them.
    assert mapper.finish()[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert mapper.last_message()[1] == [{"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


def test_text_of_consecutive_messages_is_separated() -> None:
    mapper = ChunkMapper("chatcmpl-1", "agent", 0)
    first = mapper.feed(ai_chunk("m1", "Looking."))
    second = mapper.feed({"type": "ai", "id": "m2", "content": [{"type": "text", "text": "Found it."}],
                          "usage_metadata": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}})
    texts = [c["choices"][0]["delta"]["content"] for c in first + second]
    assert texts == ["Looking.", "\n\nFound it."]
    assert mapper.last_message() == ("Found it.", [])
    assert mapper.finish()[-1]["choices"][0]["finish_reason"] == "stop"
    assert mapper.usage == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}


def test_new_messages_follow_the_last_assistant_message() -> None:
    history = [{"role": "user"}, {"role": "assistant"}, {"role": "tool"}, {"role": "user"}]
    assert new_messages_start(history, thread_has_history=True) == 2
    assert new_messages_start(history, thread_has_history=False) == 0
    assert new_messages_start([{"role": "user"}], thread_has_history=True) == 0
