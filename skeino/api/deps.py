"""What every router needs: the runtime, a response class that encodes graph values, paging."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

from fastapi import Header, Query, Request
from fastapi.responses import JSONResponse, Response

from skeino import serde
from skeino.api.inputs import direct_dependency
from skeino.runtime import paging
from skeino.runtime.core import Runtime
from skeino.runtime.idempotency import check_key, fingerprint

T = TypeVar("T")


class JSON(JSONResponse):
    """JSON via orjson, understanding LangChain messages and other graph values.

    A JSONResponse, so /openapi.json documents the routes' answers as JSON, not as strings.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return serde.dumps(content)


def _runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


@direct_dependency(_runtime_of)
async def runtime(request: Request) -> Runtime:
    # async: FastAPI would run a plain function dependency in its thread pool per request.
    return request.app.state.runtime


# skeino's extension to the official `limit`/`offset` paging (see runtime/paging.py).
CURSOR = Query(None, max_length=1000, description=(
    "skeino extension: continue after the last row of a previous page, from that response's "
    f"{paging.CURSOR_HEADER} header. The page is read straight off the index and is not shifted by rows "
    "inserted or deleted since; `offset` then counts from the cursor. Send the same sort."))


def paged(page: paging.Page, response: Response) -> list[Any]:
    """The page's rows, with X-Pagination-Total, and X-Pagination-Next (and the cursor) when another exists.

    The official clients read the next offset from X-Pagination-Next
    (assistants.search(response_format="object")["next"]), as the official server sends it.
    """
    response.headers["X-Pagination-Total"] = str(page.total)
    if page.next_offset is not None:
        response.headers["X-Pagination-Next"] = str(page.next_offset)
    if page.cursor is not None:
        response.headers[paging.CURSOR_HEADER] = page.cursor
    return page.rows


class Idempotent:
    """Runs a creation at most once per Idempotency-Key (see runtime/idempotency.py)."""

    def __init__(self, request: Request, key: str | None) -> None:
        self._request = request
        self._key = key

    async def __call__(self, body: Any, create: Callable[[], Awaitable[T]]) -> T:
        """`create()`'s result; with a key, the first result for the same route and body."""
        if self._key is None:
            return await create()
        request = self._request
        route = getattr(request.scope.get("route"), "path", request.url.path)
        # Keys are per caller: the same key from two identities names two requests.
        scope = request.scope.get("state", {}).get("identity") or ""
        rt: Runtime = request.app.state.runtime
        return await rt.idempotency.once(scope, check_key(self._key),
                                         fingerprint(f"{request.method} {route}", dict(request.path_params), body),
                                         create)


@direct_dependency(lambda request: Idempotent(request, request.headers.get("idempotency-key")))
async def idempotent(request: Request, idempotency_key: str | None = Header(
        None, alias="Idempotency-Key",
        description="Retrying with the same key and body answers the first request's object; "
                    "nothing is created twice. The same key with another body is a 422.")) -> Idempotent:
    return Idempotent(request, idempotency_key)
