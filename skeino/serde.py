"""JSON encoding of graph values: LangChain messages, pydantic models, interrupts, sends."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    # LangChain messages and other pydantic models serialise as their plain dict,
    # which is exactly how the official server writes them on the wire.
    if hasattr(obj, "model_dump") and callable(obj.model_dump):
        return obj.model_dump()
    if hasattr(obj, "dict") and hasattr(obj, "__fields__") and callable(obj.dict):
        return obj.dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if type(obj).__name__ == "Send":
        return {"node": obj.node, "arg": obj.arg}
    if type(obj).__name__ == "Command":
        return {k: v for k, v in (("graph", obj.graph), ("update", obj.update), ("resume", obj.resume), ("goto", obj.goto)) if v not in (None, (), [])}
    if isinstance(obj, (uuid.UUID, datetime)):
        return str(obj)
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if callable(obj):
        return getattr(obj, "__name__", repr(obj))
    return repr(obj)


def dumps(value: Any) -> bytes:
    """Encode to compact JSON bytes, converting values orjson does not know."""
    return orjson.dumps(value, default=_default, option=_OPTS)


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


def loads(data: bytes | str | None) -> Any:
    if data is None:
        return None
    return orjson.loads(data)


def to_jsonable(value: Any) -> Any:
    """Round-trip through JSON so the result holds only plain types."""
    return orjson.loads(dumps(value))
