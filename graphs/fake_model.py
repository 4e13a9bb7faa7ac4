"""A deterministic offline chat model that streams token by token and can call tools.

It lets the examples, tests and benchmarks run without network or API keys, while
exercising exactly the code paths a real streaming model does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any, AsyncIterator, Iterator, Sequence

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))


class FakeChatModel(BaseChatModel):
    """Replies deterministically; asks for the `get_weather` tool when the user mentions weather."""

    token_delay: float = float(os.environ.get("SKEINO_FAKE_TOKEN_DELAY", "0.01"))
    tokens: int | None = None  # reply with exactly this many word tokens (benchmarks)

    @property
    def _llm_type(self) -> str:
        return "skeino-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _reply(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> AIMessage:
        last = messages[-1] if messages else HumanMessage("")
        if isinstance(last, ToolMessage):
            return AIMessage(f"The tool answered: {_text(last)}")
        text = _text(last).strip()
        tool_names = {t["function"]["name"] for t in tools or []}
        if "get_weather" in tool_names and "weather" in text.lower():
            match = re.search(r"\bin ([A-Z][\w-]*)", text)
            city = match.group(1) if match else "Paris"
            return AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": city}, "id": "call_weather_1"}])
        if self.tokens:
            return AIMessage(" ".join(f"tok{i}" for i in range(self.tokens)))
        return AIMessage(f"You said: {text}" if text else "Hello! I am skeino's offline model.")

    @staticmethod
    def _usage(messages: list[BaseMessage], reply: AIMessage) -> dict[str, int]:
        prompt = sum(len(_text(m).split()) for m in messages)
        completion = len(_text(reply).split()) + len(reply.tool_calls)
        return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        reply = self._reply(messages, kwargs.get("tools"))
        reply.usage_metadata = self._usage(messages, reply)  # type: ignore[assignment]
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _chunks(self, messages: list[BaseMessage], tools: Any) -> Iterator[AIMessageChunk]:
        reply = self._reply(messages, tools)
        usage = self._usage(messages, reply)
        if reply.tool_calls:
            call = reply.tool_calls[0]
            args = json.dumps(call["args"])
            half = len(args) // 2
            yield AIMessageChunk(content="", tool_call_chunks=[
                {"name": call["name"], "args": args[:half], "id": call["id"], "index": 0, "type": "tool_call_chunk"}])
            yield AIMessageChunk(content="", tool_call_chunks=[
                {"name": None, "args": args[half:], "id": None, "index": 0, "type": "tool_call_chunk"}],
                usage_metadata=usage)  # type: ignore[arg-type]
            return
        # Benchmark replies stream like a real tokenizer (each token carries its leading
        # space); chat replies split words and spaces, like LangChain's own fake model.
        pattern = r"\s*\S+" if self.tokens else r"\S+|\s+"
        pieces = re.findall(pattern, str(reply.content)) or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield AIMessageChunk(content=piece, usage_metadata=usage if last else None)  # type: ignore[arg-type]

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, kwargs.get("tools")):
            if run_manager:
                run_manager.on_llm_new_token(str(chunk.content), chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, kwargs.get("tools")):
            # Even without a delay, yield to the event loop between tokens as a real
            # network-bound model does; otherwise every token would arrive at once at the end.
            await asyncio.sleep(self.token_delay)
            generation = ChatGenerationChunk(message=chunk)
            if run_manager:
                await run_manager.on_llm_new_token(str(chunk.content), chunk=generation)
            yield generation
