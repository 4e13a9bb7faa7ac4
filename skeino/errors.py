"""Domain errors raised below the routers; the API maps each to one HTTP status.

Also the one place that turns request validation errors into the `detail` sentence every 4xx carries.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


class SkeinoError(Exception):
    status_code = 500

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers) if headers else None  # e.g. Retry-After, sent with the answer


class NotFound(SkeinoError):
    status_code = 404


class Conflict(SkeinoError):
    status_code = 409


class Invalid(SkeinoError):
    """A request that parsed but makes no sense (e.g. input and command together)."""

    status_code = 422


class BadRequest(SkeinoError):
    status_code = 400


class NotSupported(SkeinoError):
    """A documented option skeino does not implement yet: refused, never silently ignored."""

    status_code = 501


class TooManyRequests(SkeinoError):
    """The caller must slow down (e.g. a thread with too many queued runs); Retry-After says when."""

    status_code = 429


class Unavailable(SkeinoError):
    """The server cannot serve now (e.g. storage does not answer); the client may retry."""

    status_code = 503


# Request validation → one sentence ------------------------------------------------------
_PLACES = {"body": "the request body", "query": "the query string", "path": "the path", "header": "the headers"}
_MAX_LISTED = 3


# pydantic's tags for the members of a union, which it puts between field names.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list", "bytes"})


def _is_field(part: object) -> bool:
    if isinstance(part, int):
        return True
    return isinstance(part, str) and part not in _UNION_TAGS and not any(c in part for c in "[]()")


def _field(loc: Sequence[object]) -> str:
    out = ""
    for part in loc:
        if not _is_field(part):
            break
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text


def _sentence(error: Mapping[str, Any]) -> str:
    loc = list(error.get("loc", ()))
    place = str(loc[0]) if loc else "body"
    where = _PLACES.get(place, place)
    field = _field(loc[1:])
    kind = error.get("type")
    msg = _lower_first(str(error.get("msg", "is invalid")))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error")
        return "Invalid JSON in request body" + (f" ({reason})" if reason else "")
    if kind == "missing":
        if not field:
            return "The request body is missing"
        return f"'{field}' is required in {where}"
    if kind == "extra_forbidden":
        if place == "query":
            return f"'{field}' is not a query parameter of this route"
        return f"'{field}' is not a field of {where}"
    if place == "path" and kind == "uuid_parsing" and field.endswith("_id"):
        return f"Invalid {field.replace('_id', ' ID')}: must be a UUID"  # the official server's words
    if not field:
        return f"The request body is invalid: {msg}"
    return f"Invalid '{field}' in {where}: {msg}"


def describe_validation(errors: Sequence[Mapping[str, Any]]) -> str:
    """Validation errors as one readable sentence naming each wrong field (the first problem of each)."""
    seen: dict[str, str] = {}
    for error in errors:
        loc = list(error.get("loc", ()))
        key = f"{loc[:1]}{_field(loc[1:2])}"
        seen.setdefault(key, _sentence(error))
    sentences = list(seen.values())
    text = "; ".join(sentences[:_MAX_LISTED])
    if len(sentences) > _MAX_LISTED:
        text += f" (and {len(sentences) - _MAX_LISTED} more)"
    return text or "The request is invalid"
