"""The custom auth the benchmark's `--auth custom` serves: one bearer token, an owner filter on everything."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

TOKEN = "bench-user-token"
auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    if authorization != f"Bearer {TOKEN}":
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid token")
    return "bench-user"


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    """The usual multi-user policy: stamp the owner on create, see only one's own records."""
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}
