"""A custom Auth object written as for the official server: users by bearer token, each owning their records."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

# token -> user; "carol" may read but never create threads.
USERS = {
    "token-alice": {"identity": "alice", "team": "red", "permissions": ["threads:write"]},
    "token-bob": {"identity": "bob", "team": "blue", "permissions": ["threads:write"]},
    "token-carol": {"identity": "carol", "team": "green", "permissions": []},
}


@auth.authenticate
async def authenticate(authorization: str | None, path: str, method: str, headers: dict[bytes, bytes]) -> Any:
    assert isinstance(path, str) and isinstance(method, str) and isinstance(headers, dict)
    if not authorization or not authorization.startswith("Bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="Bearer token required")
    user = USERS.get(authorization.removeprefix("Bearer "))
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Unknown token")
    return user


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    """Every resource: stamp the caller as owner on what they create, and see only what they own."""
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.create
async def create_thread(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    if "threads:write" not in ctx.permissions:
        raise Auth.exceptions.HTTPException(status_code=403, detail="You may not create threads")
    metadata = value.setdefault("metadata", {})
    metadata["owner"] = ctx.user.identity
    metadata["team"] = ctx.user["team"]  # value modification: a field the caller never sent
    return {"owner": ctx.user.identity}


@auth.on.assistants
async def assistants(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> bool | None:
    """Assistants are shared: anyone may use and read them, only alice may change them."""
    if ctx.action in ("create", "update", "delete") and ctx.user.identity != "alice":
        return False
    if ctx.action == "create":
        value["metadata"] = {**(value.get("metadata") or {}), "owner": ctx.user.identity}
    return None


@auth.on.store()
async def store(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    """Each user's items live under their own identity: the namespace is rewritten, as the docs show."""
    namespace = tuple(value.get("namespace") or ())
    value["namespace"] = (ctx.user.identity, *namespace)
