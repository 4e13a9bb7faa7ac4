"""/mcp: every assistant as a tool behind a Model Context Protocol endpoint (Streamable HTTP).

The protocol is spoken by the official MCP SDK; this module only answers `tools/list` and
`tools/call` from skeino/runtime/tools.py. Like the official server it is stateless (no
session id) and answers JSON, not SSE. The route is an ordinary FastAPI route, so the API
key and scope checks apply to it as to every other route; the SDK's session manager is
started and stopped by the app's lifespan (`lifespan` below). The SDK handles each message in
tasks started from the request's own task, so they see its context (request id, the caller of
custom auth) like any route's code.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import mcp.types as types
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import McpError
from starlette.types import Receive, Scope, Send

from skeino import __version__
from skeino.errors import SkeinoError
from skeino.runtime.tools import AssistantTools, ToolError

logger = logging.getLogger("skeino.mcp")

router = APIRouter(tags=["mcp"])

# What the official server says about every assistant-tool.
_ANNOTATIONS = types.ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False,
                                     openWorldHint=True)


def _error(code: int, message: str) -> McpError:
    return McpError(types.ErrorData(code=code, message=message))


def _translate(exc: Exception) -> McpError:
    """A JSON-RPC error object for a failure; never the internals of an unexpected one."""
    if isinstance(exc, ToolError):
        return _error(types.INVALID_PARAMS, str(exc))
    if isinstance(exc, SkeinoError) and exc.status_code < 500:
        return _error(types.INVALID_PARAMS, exc.detail)
    logger.exception("MCP request failed")
    return _error(types.INTERNAL_ERROR, "Internal server error")


def build_server(tools: AssistantTools) -> Server[Any, Any]:
    """An MCP server whose tools are the assistants."""
    server: Server[Any, Any] = Server("skeino", version=__version__)

    async def list_tools(request: types.ListToolsRequest | None) -> types.ServerResult:
        cursor = request.params.cursor if request is not None and request.params is not None else None
        try:
            offset = max(int(cursor or 0), 0)
        except ValueError:
            offset = 0  # as the official server: an unreadable cursor starts over
        try:
            specs, following = await tools.page(offset)
        except Exception as exc:
            raise _translate(exc) from None
        listed = [types.Tool(name=s.name, title=s.title, description=s.description, inputSchema=s.input_schema,
                             annotations=_ANNOTATIONS) for s in specs]
        return types.ServerResult(types.ListToolsResult(
            tools=listed, nextCursor=str(following) if following is not None else None))

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        params = request.params
        extra = params.model_extra or {}
        context = extra.get("context") if isinstance(extra.get("context"), dict) else None
        try:
            outcome = await tools.call(params.name, params.arguments or {}, context)
        except Exception as exc:
            raise _translate(exc) from None
        return types.ServerResult(types.CallToolResult(
            content=[types.TextContent(type="text", text=outcome.text)], isError=outcome.is_error))

    # Registered directly rather than through the SDK's decorators: those turn every
    # exception into a tool result, while an unknown tool is a JSON-RPC error (-32602)
    # for the official server and the MCP specification.
    server.request_handlers[types.ListToolsRequest] = list_tools
    server.request_handlers[types.CallToolRequest] = call_tool
    return server


class _Forward(Response):
    """Hands the raw request to the SDK's transport, which writes the response itself."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        super().__init__()
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.manager.handle_request(scope, receive, send)


@router.api_route("/mcp", methods=["GET", "POST", "DELETE"], include_in_schema=False)
async def mcp_endpoint(request: Request) -> Response:
    """Streamable HTTP transport: JSON-RPC requests by POST."""
    return _Forward(request.app.state.mcp)


def install(app: FastAPI, tools: AssistantTools) -> Any:
    """Add /mcp to the app; the returned context manager is entered by the app's lifespan."""
    manager = StreamableHTTPSessionManager(app=build_server(tools), stateless=True, json_response=True)
    app.state.mcp = manager
    app.include_router(router)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with manager.run():
            yield

    return lifespan()
