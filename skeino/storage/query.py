"""SQL pieces every backend shares: columns, sortable keys, filters and pages.

Each backend names its dialect (placeholder, JSON containment, case-insensitive match)
and gets the same WHERE clauses back, so a filter is written once for all backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from skeino.storage.access import AccessFilter
from skeino.storage.base import Record, SortOrder

ASSISTANT_COLS = ("assistant_id", "graph_id", "config", "context", "metadata", "name", "description", "version",
                  "created_at", "updated_at")
VERSION_COLS = ("assistant_id", "version", "graph_id", "config", "context", "metadata", "name", "description",
                "created_at")
THREAD_COLS = ("thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status", "config", "values",
               "interrupts", "error")
RUN_COLS = ("run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata", "kwargs",
            "multitask_strategy", "run_at")
CRON_COLS = ("cron_id", "assistant_id", "thread_id", "user_id", "schedule", "timezone", "end_time", "payload",
             "metadata", "on_run_completed", "enabled", "next_run_date", "created_at", "updated_at")
JSON_COLS = frozenset({"config", "context", "metadata", "values", "interrupts", "error", "kwargs", "payload"})

ASSISTANT_SORT = frozenset({"assistant_id", "graph_id", "name", "created_at", "updated_at"})
THREAD_SORT = frozenset({"thread_id", "status", "created_at", "updated_at", "state_updated_at"})
CRON_SORT = frozenset({"cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"})

# Thread metadata keys with an expression index on every backend: the keys the official
# clients filter by (`graph_id`, `assistant_id`) and the one custom auth handlers stamp and
# filter on (`owner`). Other keys still filter correctly, by reading every row's JSON.
INDEXED_METADATA_KEYS = ("graph_id", "assistant_id", "owner")


def q(col: str) -> str:
    """A quoted column name (`values` is a reserved word in SQL)."""
    return f'"{col}"'


def cols(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + q(c) for c in names)


@dataclass(frozen=True)
class Dialect:
    """What differs between backends in the SQL this module writes."""

    param: str  # the placeholder: "?" or "%s"
    contains: str  # JSON containment with {col} and {param}, e.g. "{col} @> {param}"
    ilike: str  # case-insensitive substring match with {col} and {param}
    encode_json: Callable[[Any], Any]  # a Python value → the JSON parameter the driver takes
    tiebreak: str  # a column that orders rows by insertion, so pages never overlap
    # An auth access filter over the JSON at a SQL expression: (condition, parameters).
    access: Callable[[str, AccessFilter], tuple[str, list[Any]]]
    # A top-level metadata key's text with {col} and {key}, written exactly as the expression
    # indexes are, so the planner matches them (the key is a literal from INDEXED_METADATA_KEYS).
    json_text: str
    # A condition that the top-level key {key} holds a JSON string (with {col}).
    json_is_text: str

    def placeholders(self, n: int) -> str:
        return ", ".join([self.param] * n)

    def value(self, col: str, value: Any) -> Any:
        """A column's parameter: JSON columns encoded, everything else as is."""
        return self.encode_json(value) if col in JSON_COLS and value is not None else value


@dataclass
class Where:
    """A conjunction of conditions and their parameters, built up one filter at a time."""

    dialect: Dialect
    parts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, sql: str, *params: Any) -> "Where":
        self.parts.append(sql)
        self.params.extend(params)
        return self

    def eq(self, col: str, value: Any) -> "Where":
        return self if value is None else self.add(f"{q(col)} = {self.dialect.param}", value)

    def contains(self, col: str, doc: Record | None) -> "Where":
        if not doc:
            return self
        if col == "metadata" and self._indexed(col, doc, eq_operator=False):
            return self
        return self.add(self.dialect.contains.format(col=q(col), param=self.dialect.param),
                        self.dialect.encode_json(doc))

    def _indexed(self, col: str, wanted: Record, eq_operator: bool) -> bool:
        """Conditions on the indexed keys that `wanted` pins to a string, so the database looks
        rows up instead of reading all; True when they say all `wanted` says (then the exact,
        row-by-row filter is skipped). `{"$eq": v}` means v in access filters only; in a
        metadata search it is a nested object."""
        covered = 0
        for key in INDEXED_METADATA_KEYS:
            value = wanted.get(key)
            if eq_operator and isinstance(value, dict) and len(value) == 1 and "$eq" in value:
                value = value["$eq"]
            if isinstance(value, str):
                self.add(f"{self.dialect.json_text.format(col=col, key=key)} = {self.dialect.param}", value)
                covered += 1
        if covered < len(wanted):
            return False
        # The text of an object or a number could equal the string too: the value must be one.
        for key in wanted:
            self.add(self.dialect.json_is_text.format(col=col, key=key))
        return True

    def ilike(self, col: str, text: str | None) -> "Where":
        if not text:
            return self
        return self.add(self.dialect.ilike.format(col=q(col), param=self.dialect.param), f"%{text}%")

    def any_of(self, col: str, values: Sequence[Any] | None) -> "Where":
        if not values:
            return self
        return self.add(f"{q(col)} IN ({self.dialect.placeholders(len(values))})", *values)

    def access(self, access: AccessFilter | None, col: str = "metadata") -> "Where":
        """Only records whose metadata the caller's access filter admits."""
        if access is None or self._indexed(col, access.where, eq_operator=True):
            return self
        sql, params = self.dialect.access(q(col), access)
        return self.add(sql, *params)

    def thread_access(self, access: AccessFilter | None) -> "Where":
        """Only runs whose thread the access filter admits.

        The thread is looked up by the run's own thread_id (its primary key): a subquery
        listing every admitted thread would read all threads on every run lookup."""
        if access is None:
            return self
        sql, params = self.dialect.access("t.metadata", access)
        return self.add(f"EXISTS (SELECT 1 FROM threads t WHERE t.thread_id = runs.thread_id AND {sql})", *params)

    @property
    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.parts)) if self.parts else ""


def assistant_where(d: Dialect, graph_id: str | None, name: str | None, metadata: Record | None,
                    access: AccessFilter | None = None) -> Where:
    return (Where(d).access(access).eq("graph_id", graph_id or None).ilike("name", name)
            .contains("metadata", metadata))


def thread_where(d: Dialect, ids: Sequence[str] | None, metadata: Record | None, values: Record | None,
                 status: str | None, access: AccessFilter | None = None) -> Where:
    return (Where(d).access(access).any_of("thread_id", ids).contains("metadata", metadata)
            .contains("values", values).eq("status", status or None))


def cron_where(d: Dialect, assistant_id: str | None, thread_id: str | None, enabled: bool | None,
               metadata: Record | None, access: AccessFilter | None = None) -> Where:
    return (Where(d).access(access).eq("assistant_id", assistant_id or None).eq("thread_id", thread_id or None)
            .eq("enabled", enabled).contains("metadata", metadata))


# A row's place in a sorted search: the sort column's value and the row's tie-break
# position (insertion order), which a keyset page starts after. Search rows carry their
# position as POS so the caller can hand the last one back.
Position = tuple[Any, int]
POS = "_pos"


def page(d: Dialect, table: str, columns: Sequence[str], where: Where, sort_by: str | None,
         sortable: frozenset[str], sort_order: SortOrder, limit: int, offset: int,
         after: Position | None = None) -> tuple[str, list[Any]]:
    """One page of a filtered, sorted search; unknown sort keys sort by creation time.

    The order is total (the sort column, then insertion order), so a page is a range of it.
    `after` starts the page past that position by seeking in the index instead of
    counting `offset` rows off its start: the cost of a page no longer grows with its depth,
    and rows inserted or deleted before it do not shift it.
    """
    order = "ASC" if sort_order == "asc" else "DESC"
    column = sort_column(sort_by, sortable)
    if after is not None:
        # The first condition alone is one the planners match to the column's index; the
        # row comparison then drops the rows of the boundary value already served.
        cmp = ">" if order == "ASC" else "<"
        where = Where(d, [*where.parts], [*where.params]).add(f"{q(column)} {cmp}= {d.param} AND ({q(column)}, {d.tiebreak}) {cmp} ({d.param}, {d.param})",
                  after[0], after[0], after[1])
    sql = (f"SELECT {cols(columns)}, {d.tiebreak} AS {POS} FROM {table}{where.sql} "
           f"ORDER BY {q(column)} {order}, {d.tiebreak} {order} LIMIT {d.param} OFFSET {d.param}")
    return sql, [*where.params, limit, offset]


def sort_column(sort_by: str | None, sortable: frozenset[str]) -> str:
    """The column a search sorts by (what `page` picks)."""
    return sort_by if sort_by in sortable else "created_at"


def count(table: str, where: Where) -> tuple[str, list[Any]]:
    return f"SELECT COUNT(*) FROM {table}{where.sql}", list(where.params)


def insert(d: Dialect, table: str, columns: Sequence[str], record: Record) -> tuple[str, list[Any]]:
    sql = f"INSERT INTO {table} ({cols(columns)}) VALUES ({d.placeholders(len(columns))})"
    return sql, [d.value(c, record.get(c)) for c in columns]


def assignments(d: Dialect, changes: Record) -> tuple[str, list[Any]]:
    """`"a" = ?, "b" = ?` for an UPDATE, with the encoded values."""
    return ", ".join(f"{q(c)} = {d.param}" for c in changes), [d.value(c, v) for c, v in changes.items()]


def claim_stamp(run: Record) -> Record:
    """What a claimed run stamps on its thread's metadata: the graph and assistant it runs."""
    conf = ((run.get("kwargs") or {}).get("config") or {}).get("configurable") or {}
    return {k: conf[k] for k in ("graph_id", "assistant_id") if k in conf}
