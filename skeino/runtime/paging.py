"""Pages of searches: the next offset the official clients read, and skeino's keyset cursor.

The official API pages with `limit`/`offset` and marks a further page with
X-Pagination-Next (the next offset); skeino answers the same. An offset counts rows from
the start of the order on every request, so a deep page reads every row before it, and a
row inserted ahead of the page (a new thread, newest first) shifts it: the page repeats the
previous one's last row. The cursor is skeino's extension for callers that page deep or
while rows are written: an opaque token naming the last row served (its sort value and its
insertion position), sent back as `?cursor=`; the next page starts right after that row,
read straight off the index.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson

from skeino.errors import Invalid
from skeino.storage.base import Record
from skeino.storage.query import POS, Position

CURSOR_HEADER = "X-Skeino-Cursor"


@dataclass
class Page:
    """One page of a search and where the next one starts (None when this is the last)."""

    rows: list[Record]
    next_offset: int | None = None
    cursor: str | None = None
    # What the official server sends as X-Pagination-Total: not a count of all matches (that
    # would cost a count per page) but the rows up to this page's end, plus one when more follow.
    total: int = 0


def encode(key: str, order: str, row: Record) -> str | None:
    """The cursor after `row` in a search sorted by `key` (None when the row has no sort value)."""
    value = row.get(key) if key != POS else None
    if key != POS and value is None:
        return None  # NULLs sort differently per backend: such a page goes on by offset only
    raw = orjson.dumps([key, order, value, row[POS]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, key: str, order: str) -> Position:
    """The position a cursor names; Invalid when it is not one, or was made for another order."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        made_key, made_order, value, pos = orjson.loads(raw)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise Invalid("'cursor' is not a cursor this server returned (X-Skeino-Cursor)") from None
    # Every sort column is text; a forged value of another type or size must not reach SQL.
    if (not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos < 2**63
            or not (value is None if made_key == POS else isinstance(value, str))):
        raise Invalid("'cursor' is not a cursor this server returned (X-Skeino-Cursor)")
    if (made_key, made_order) != (key, order):
        raise Invalid(f"'cursor' continues a search sorted by {made_key} {made_order}, not by {key} {order}: "
                      "send the same sort_by and sort_order, or page with 'offset'")
    return value, pos


async def fetch(search: Callable[[int, Position | None], Awaitable[list[Record]]], *, limit: int, offset: int,
                cursor: str | None, key: str, order: str) -> Page:
    """A page from `search(limit, after)`, asking one row more to learn whether another page exists."""
    after = decode(cursor, key, order) if cursor else None
    rows = await search(limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    page = Page(rows, total=offset + len(rows) + (1 if more else 0))
    if more:
        page.next_offset = offset + limit
        page.cursor = encode(key, order, rows[-1])
    for row in rows:
        row.pop(POS, None)
    return page
