"""Small helpers shared by the end-to-end test modules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx


def tag() -> str:
    """A unique marker for metadata filters, so tests never see each other's records."""
    return uuid.uuid4().hex


def is_iso(ts: str) -> bool:
    return datetime.fromisoformat(ts).tzinfo is not None


async def raw(client: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request the SDK would never send (unknown fields, bad types), on the SDK's own connection."""
    return await client.http.client.request(method, path, **kwargs)


def names(resp: httpx.Response, field: str) -> bool:
    """A 422 whose `detail` is one sentence naming the field, as every skeino 4xx is."""
    detail = resp.json().get("detail")
    return resp.status_code == 422 and isinstance(detail, str) and f"'{field}'" in detail
