"""The authenticated user as handlers and graphs see it, and the caller of the current request.

Handlers written for the official server read the user both ways (`user.identity`,
`user["identity"]`, extra fields returned by `@auth.authenticate`); this class answers both.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

from langgraph_sdk.auth.types import BaseAuthContext

from skeino import serde

_BASE_FIELDS = ("identity", "is_authenticated", "display_name")


class User(Mapping[str, Any]):
    """A user from an authenticate handler's result: a string, a dict with `identity`, or an object with one."""

    def __init__(self, source: Any) -> None:
        if isinstance(source, User):
            source = source._source
        if isinstance(source, str):
            source = {"identity": source}
        if isinstance(source, Mapping):
            if not isinstance(source.get("identity"), str):
                raise ValueError("the user must have a string 'identity'")
            self._source: Any = dict(source)
            self._extra = dict(source)
        elif isinstance(getattr(source, "identity", None), str):
            self._source = source
            dump = getattr(source, "model_dump", None) or getattr(source, "dict", None)
            extra = dump() if callable(dump) else {}
            self._extra = dict(extra) if isinstance(extra, Mapping) else {}
        else:
            raise ValueError(
                "@auth.authenticate must return a string identity, a dict with 'identity', or an object with an "
                f"'identity' attribute; got {type(source).__name__}")

    @property
    def identity(self) -> str:
        return self._get("identity")

    @property
    def is_authenticated(self) -> bool:
        value = self._get("is_authenticated", True)
        return True if value is None else bool(value)

    @property
    def display_name(self) -> str:
        return self._get("display_name", None) or self.identity

    @property
    def permissions(self) -> list[str]:
        return list(self._get("permissions", None) or [])

    def _get(self, name: str, *default: Any) -> Any:
        if isinstance(self._source, dict):
            return self._source.get(name, *default) if default else self._source[name]
        return getattr(self._source, name, *default)

    def dict(self) -> dict[str, Any]:
        """Plain JSON data: the base fields and every extra one the handler returned."""
        return serde.to_jsonable({**self._extra, "identity": self.identity,
                                  "is_authenticated": self.is_authenticated, "display_name": self.display_name})

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return self.dict()

    def __getattr__(self, name: str) -> Any:
        # Extra fields read as attributes too (user.org_id), as on the official server.
        if name.startswith("_"):
            raise AttributeError(name)
        if isinstance(self._source, dict):
            if name in self._source:
                return self._source[name]
            raise AttributeError(f"the user has no attribute {name!r}")
        return getattr(self._source, name)

    def __getitem__(self, key: str) -> Any:
        return self.dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.dict())

    def __len__(self) -> int:
        return len(self.dict())

    def __repr__(self) -> str:
        return f"User(identity={self.identity!r})"


# The keys of a run's configurable that say who it runs for; set from authentication only.
AUTH_CONFIG_KEYS = ("langgraph_auth_user", "langgraph_auth_user_id", "langgraph_auth_permissions")

# The caller of the request being served, or of the run being executed; None without custom auth.
caller: contextvars.ContextVar[BaseAuthContext | None] = contextvars.ContextVar("skeino_caller", default=None)


def caller_from_run(configurable: Mapping[str, Any]) -> BaseAuthContext | None:
    """The caller a run was created by, from what its config recorded."""
    data = configurable.get("langgraph_auth_user")
    if not data:
        return None
    try:
        user = User(data)
    except ValueError:
        return None
    return BaseAuthContext(permissions=list(configurable.get("langgraph_auth_permissions") or []), user=user)


def run_configurable(ctx: BaseAuthContext | None) -> dict[str, Any]:
    """What a run's config records about its caller, as the official server writes it (JSON only)."""
    if ctx is None:
        return {"langgraph_auth_user": None, "langgraph_auth_user_id": None, "langgraph_auth_permissions": []}
    user = ctx.user
    return {"langgraph_auth_user": user.dict() if isinstance(user, User) else User(user).dict(),
            "langgraph_auth_user_id": user.identity, "langgraph_auth_permissions": list(ctx.permissions)}
