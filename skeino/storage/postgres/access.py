"""Access filters (see storage/access.py) translated to jsonb conditions, so Postgres applies them in the query."""

from __future__ import annotations

from typing import Any

from skeino.storage.access import AccessFilter
from skeino.storage.postgres.common import jsonb


def _holds(col: str, key: str, item: Any) -> tuple[str, list[Any]]:
    # Exact element equality (not jsonb's deep containment), and no error on a non-list value.
    return (f"EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({col} -> %s) = 'array' "
            f"THEN {col} -> %s ELSE '[]'::jsonb END) e WHERE e = %s)", [key, key, jsonb(item)])


def _condition(col: str, where: dict[str, Any]) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for key, value in where.items():
        if key in ("$or", "$and"):
            groups = [_condition(col, group) for group in value]
            parts.append("(" + f" {key[1:].upper()} ".join(sql for sql, _ in groups) + ")")
            params.extend(p for _, group_params in groups for p in group_params)
        elif isinstance(value, dict) and next(iter(value)) == "$contains":
            operand = value["$contains"]
            for item in operand if isinstance(operand, list) else [operand]:
                sql, item_params = _holds(col, key, item)
                parts.append(sql)
                params.extend(item_params)
        else:
            # A plain value or $eq: the key is present and its value equal (a missing key is NULL).
            expected = value["$eq"] if isinstance(value, dict) else value
            parts.append(f"{col} -> %s = %s")
            params.extend([key, jsonb(expected)])
    return ("(" + " AND ".join(parts) + ")") if parts else "TRUE", params


def access_sql(col: str, access: AccessFilter) -> tuple[str, list[Any]]:
    """The filter as a condition on the jsonb at `col`, with its parameters."""
    return _condition(col, access.where)
