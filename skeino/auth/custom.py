"""Custom auth: a `langgraph_sdk.Auth` object named by langgraph.json `auth.path`, run as the official server runs it.

`@auth.authenticate` turns a request into a user; `@auth.on…` handlers then decide each
action (resource + action + value): allow, refuse (403 or the status they raise), change the
value in place, or return a filter that storage applies to every record the action touches.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Mapping
from typing import Any, Callable

from langgraph_sdk import Auth
from langgraph_sdk.auth.types import AuthContext, BaseAuthContext
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import Scope

from skeino.auth.user import User, caller
from skeino.config import Config, ConfigError
from skeino.errors import SkeinoError
from skeino.storage.access import AccessFilter, AccessFilterError

logger = logging.getLogger("skeino.auth")

# What @auth.authenticate may ask for, by parameter name (the official server's names).
AUTHENTICATE_PARAMS = frozenset({"request", "path", "method", "scopes", "path_params", "query_params", "headers",
                                 "authorization", "scope", "user"})


# Every action skeino asks a handler about, by resource.
ACTIONS = {
    "threads": ("create", "read", "update", "delete", "search", "create_run"),
    "assistants": ("create", "read", "update", "delete", "search"),
    "crons": ("create", "read", "update", "delete", "search"),
    "store": ("put", "get", "delete", "search", "list_namespaces"),
}


class AuthRefused(SkeinoError):
    """An authenticate or authorization handler said no, with the status it chose."""

    def __init__(self, status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers)
        self.status_code = status_code


class HandlerFailed(SkeinoError):
    """A handler returned something skeino cannot use: the deployment's code is at fault, not the caller."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        logger.error("custom auth: %s", detail)  # the operator must see it, not only the caller


def _authenticate_params(fn: Callable[..., Any], where: str) -> frozenset[str]:
    params = inspect.signature(fn).parameters
    unsupported = [n for n, p in params.items() if n not in AUTHENTICATE_PARAMS and p.default is p.empty
                   and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if unsupported:
        raise ConfigError(f"{where}: @auth.authenticate asks for {', '.join(unsupported)}; it may take only "
                          f"{', '.join(sorted(AUTHENTICATE_PARAMS))}")
    return frozenset(n for n in params if n in AUTHENTICATE_PARAMS)


def _arguments(scope: Scope, names: frozenset[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    headers = scope.get("headers", [])
    for name in names:
        if name == "request":
            args[name] = Request(scope)
        elif name == "headers":
            args[name] = dict(headers)
        elif name == "authorization":
            value = next((v for k, v in headers if k == b"authorization"), None)
            args[name] = value.decode("latin-1") if value is not None else None
        elif name == "query_params":
            args[name] = QueryParams(scope.get("query_string", b""))
        elif name == "path":
            args[name] = scope["path"]
        elif name == "method":
            args[name] = scope["method"]
        elif name == "path_params":
            args[name] = {}  # authentication runs before routing, as on the official server
        elif name == "scope":
            args[name] = scope
        elif name == "scopes":
            args[name] = []
        else:  # user: nobody is authenticated yet
            args[name] = None
    return args


def _normalize(result: Any) -> BaseAuthContext:
    """(permissions, user), an object or dict with `permissions`, or a bare user."""
    if isinstance(result, tuple):
        if len(result) != 2:
            raise ValueError("a tuple result must be (permissions, user)")
        permissions, source = result
    elif isinstance(result, Mapping):
        permissions, source = result.get("permissions"), result
    else:
        permissions, source = getattr(result, "permissions", None), result
    return BaseAuthContext(permissions=[str(p) for p in permissions or []], user=User(source))


class CustomAuth:
    """The loaded Auth object: authenticate requests, authorize actions."""

    def __init__(self, auth: Auth, where: str, disable_studio_auth: bool = False) -> None:
        self.auth = auth
        self.disable_studio_auth = disable_studio_auth
        fn = auth._authenticate_handler
        if fn is None:
            raise ConfigError(f"{where}: the Auth object has no @auth.authenticate handler")
        self._authenticate = fn
        self._params = _authenticate_params(fn, where)
        self._handlers: dict[tuple[str, str], Callable[..., Any] | None] = {}
        # As the official server warns: an action no handler covers is allowed to every
        # authenticated caller, unfiltered (a common cause of one user seeing another's data).
        uncovered = [f"{r}.{a}" for r, actions in ACTIONS.items() for a in actions if self._handler(r, a) is None]
        if uncovered:
            logger.warning("%s: no @auth.on handler covers %s: any authenticated caller may do these, unfiltered "
                           "(a global @auth.on handler covers everything)", where, ", ".join(uncovered))

    @classmethod
    def load(cls, config: Config) -> "CustomAuth | None":
        """The Auth object langgraph.json names, or None without `auth.path`."""
        settings = config.auth
        if not settings.get("path"):
            return None
        where = f"{config.config_path}: 'auth.path' ({settings['path']})"
        from skeino.graphs import import_object

        for dep in config.dependencies:  # the auth module may import the project's own packages
            if str(dep) not in sys.path:
                sys.path.insert(0, str(dep))
        target = import_object(settings["path"], config.base_dir, where, "auth")
        if not isinstance(target, Auth):
            raise ConfigError(f"{where}: expected a langgraph_sdk.Auth object, found {type(target).__name__}")
        return cls(target, where, bool(settings.get("disable_studio_auth")))

    async def authenticate(self, scope: Scope) -> BaseAuthContext:
        """The caller of a request; AuthRefused carries the handler's status (401 by default)."""
        try:
            result = self._authenticate(**_arguments(scope, self._params))
            if inspect.isawaitable(result):
                result = await result
            return _normalize(result)
        except Auth.exceptions.HTTPException as exc:
            raise AuthRefused(exc.status_code, str(exc.detail), exc.headers) from None
        except ValueError as exc:
            raise HandlerFailed(f"@auth.authenticate returned no usable user: {exc}") from None

    def _handler(self, resource: str, action: str) -> Callable[..., Any] | None:
        key = (resource, action)
        if key not in self._handlers:
            # The most specific handler wins, the last registered among equals (the official order).
            found = None
            for candidate in (key, (resource, "*"), ("*", action), ("*", "*")):
                if candidate in self.auth._handlers:
                    found = self.auth._handlers[candidate][-1]
                    break
            if found is None and self.auth._global_handlers:
                found = self.auth._global_handlers[-1]
            self._handlers[key] = found
        return self._handlers[key]

    async def decide(self, ctx: BaseAuthContext, resource: str, action: str, value: Any) -> dict[str, Any] | None:
        """Run the handler for an action: None to allow, a filter dict to restrict; AuthRefused to refuse."""
        handler = self._handler(resource, action)
        if handler is None:
            return None
        context = AuthContext(permissions=ctx.permissions, user=ctx.user, resource=resource,  # type: ignore[arg-type]
                              action=action)  # type: ignore[arg-type]
        try:
            result = handler(ctx=context, value=value)
            if inspect.isawaitable(result):
                result = await result
        except Auth.exceptions.HTTPException as exc:
            raise AuthRefused(exc.status_code, str(exc.detail), exc.headers) from None
        except AssertionError as exc:
            raise AuthRefused(403, str(exc) or "Forbidden") from None
        if result is None or result is True:
            return None
        if result is False:
            raise AuthRefused(403, "Forbidden")
        if not isinstance(result, dict):
            raise HandlerFailed(f"the auth handler for {resource}.{action} returned {type(result).__name__}; "
                                "expected a filter dict, None, True or False")
        return result or None

    async def authorize(self, ctx: BaseAuthContext, resource: str, action: str, value: Any) -> AccessFilter | None:
        """`decide`, with the filter validated for storage (records' metadata)."""
        result = await self.decide(ctx, resource, action, value)
        if result is None:
            return None
        try:
            return AccessFilter.of(result)
        except AccessFilterError as exc:
            raise HandlerFailed(f"the auth handler for {resource}.{action} returned an unusable filter: {exc}") from None


class Authorizer:
    """What services call for each action: the handlers' verdict for the current caller, or None to allow all."""

    def __init__(self, custom: CustomAuth | None) -> None:
        self.custom = custom

    async def __call__(self, resource: str, action: str, value: Any) -> AccessFilter | None:
        if self.custom is None:
            return None
        ctx = caller.get()
        if ctx is None:
            return None  # the server's own work (sweepers, recovery) and open routes
        return await self.custom.authorize(ctx, resource, action, value)

    async def store(self, action: str, value: dict[str, Any]) -> dict[str, Any] | None:
        """The store handler's verdict: None, or a filter over item values (the store's own filter syntax)."""
        if self.custom is None:
            return None
        ctx = caller.get()
        if ctx is None:
            return None
        return await self.custom.decide(ctx, "store", action, value)
