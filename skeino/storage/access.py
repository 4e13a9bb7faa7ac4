"""Access filters: which records a caller may see, as a custom auth handler decided.

A handler (`@auth.on.threads.read`, …) may return a filter over a record's metadata, such
as `{"owner": "alice"}`, `{"owner": {"$eq": "alice"}}`, `{"tags": {"$contains": "x"}}`,
or `$or` / `$and` lists of such filters. Every backend applies it in the same query that
reads the records (passed as `access=`), so a record outside it is simply not there.
Runs are filtered by their thread's metadata, assistants and crons by their own.

The semantics are those of the official server: a key must be present and equal, `$contains`
needs a list value holding the element (or every element of a list), `$or`/`$and` take at
least two filters and nest at most two levels deep. Unknown operators are refused, not ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

_OPERATORS = ("$eq", "$contains")
_MAX_NESTING = 2


class AccessFilterError(ValueError):
    """An auth handler returned a filter skeino cannot apply."""


def _check(where: Any, depth: int) -> None:
    if depth > _MAX_NESTING:
        raise AccessFilterError("the auth handler's filter nests $or/$and more than two levels deep")
    if not isinstance(where, dict):
        raise AccessFilterError(f"an auth filter must be a dict, not {type(where).__name__}")
    for key, value in where.items():
        if key in ("$or", "$and"):
            if not isinstance(value, list) or len(value) < 2:
                raise AccessFilterError(f"the auth handler's {key} must be a list of at least two filters")
            for group in value:
                _check(group, depth + 1)
        elif not isinstance(key, str) or key.startswith("$"):
            raise AccessFilterError(f"the auth handler's filter has an unknown operator {key!r}")
        elif isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in _OPERATORS:
                raise AccessFilterError(
                    f"the auth handler's filter on {key!r} must be a value or one of {', '.join(_OPERATORS)}")


def _match(metadata: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, value in where.items():
        if key == "$or":
            if not any(_match(metadata, group) for group in value):
                return False
        elif key == "$and":
            if not all(_match(metadata, group) for group in value):
                return False
        elif key not in metadata:
            return False
        elif isinstance(value, dict):
            op, operand = next(iter(value.items()))
            if op == "$eq":
                if metadata[key] != operand:
                    return False
            else:  # $contains
                held = metadata[key]
                if not isinstance(held, list):
                    return False
                wanted = operand if isinstance(operand, list) else [operand]
                if any(item not in held for item in wanted):
                    return False
        elif metadata[key] != value:
            return False
    return True


@dataclass(frozen=True)
class AccessFilter:
    """A validated filter over a record's metadata; `matches` is its meaning for every backend."""

    where: dict[str, Any]
    json: str = field(compare=False, default="")

    @classmethod
    def of(cls, where: dict[str, Any]) -> "AccessFilter":
        """Validate a handler's filter; AccessFilterError says what is wrong with it."""
        _check(where, 0)
        return cls(where, orjson.dumps(where, option=orjson.OPT_SORT_KEYS).decode())

    def matches(self, metadata: dict[str, Any] | None) -> bool:
        return _match(metadata or {}, self.where)


@lru_cache(maxsize=256)
def _parsed(filter_json: str) -> dict[str, Any]:
    return orjson.loads(filter_json)


def matches_json(metadata_json: str | bytes | None, filter_json: str) -> bool:
    """`matches` over JSON text, for backends that call it from SQL (one parse per distinct filter)."""
    metadata = orjson.loads(metadata_json) if metadata_json else {}
    return _match(metadata if isinstance(metadata, dict) else {}, _parsed(filter_json))
