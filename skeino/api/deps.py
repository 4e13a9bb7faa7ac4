"""What every router needs: the runtime, and a response class that encodes graph values."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from skeino import serde
from skeino.runtime.core import Runtime


class JSON(Response):
    """JSON via orjson, understanding LangChain messages and other graph values."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return serde.dumps(content)


async def runtime(request: Request) -> Runtime:
    # async: FastAPI would run a plain function dependency in its thread pool per request.
    return request.app.state.runtime
