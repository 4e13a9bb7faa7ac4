"""What every router needs: the runtime, a response class that encodes graph values, paging."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

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


async def paged(search: Callable[[dict[str, Any]], Awaitable[list[Any]]], body: Any, response: Response) -> list[Any]:
    """One page of a search body with `limit`/`offset`, marking with X-Pagination-Next that another exists.

    One row more than asked tells whether another page exists; the official client reads
    the next offset from X-Pagination-Next (search(response_format="object")["next"]).
    """
    rows = await search({**body.data(), "limit": body.limit + 1})
    if len(rows) > body.limit:
        rows = rows[:body.limit]
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    return rows
