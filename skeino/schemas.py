"""Request bodies of the HTTP API (the wire contract).

Unknown fields are refused (422 naming the field): a field skeino would silently ignore
is worse than an error. Responses are the plain records the runtime returns.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

StreamMode = Literal["values", "updates", "messages", "messages-tuple", "custom", "debug", "checkpoints", "tasks", "events"]
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
SortOrder = Literal["asc", "desc"]
AssistantField = Literal["assistant_id", "graph_id", "config", "context", "metadata", "name", "description",
                         "version", "created_at", "updated_at"]
ThreadField = Literal["thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "status", "config",
                      "values", "interrupts", "error"]
StateField = Literal["values", "next", "tasks", "metadata", "created_at", "checkpoint", "parent_checkpoint",
                     "interrupts", "checkpoint_id", "parent_checkpoint_id"]
Json = Union[dict[str, Any], list[Any], str, int, float, bool, None]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def data(self) -> dict[str, Any]:
        """The fields the client sent (unset ones left out)."""
        return self.model_dump(exclude_unset=True)


# assistants ---------------------------------------------------------------------------
class AssistantCreate(Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"


class AssistantPatch(Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(Body):
    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[AssistantField] | None = None


class AssistantCount(Body):
    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None


class AssistantVersions(Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class AssistantLatest(Body):
    version: int


# threads ----------------------------------------------------------------------------
class ThreadCreate(Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: Any = None
    supersteps: list[dict[str, Any]] | None = None


class ThreadPatch(Body):
    metadata: dict[str, Any] | None = None
    ttl: Any = None


class ThreadSearch(Body):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[ThreadField] | None = None
    extract: dict[str, str] | None = None


class ThreadCount(Body):
    ids: list[str] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class ThreadPrune(Body):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


class CheckpointRef(BaseModel):
    """A checkpoint as the SDKs send it, bare or as a config (`{"configurable": {...}}`)."""
    model_config = ConfigDict(extra="forbid")

    thread_id: str | None = None
    checkpoint_ns: str | None = ""
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None
    configurable: dict[str, Any] | None = None


class StateUpdate(Body):
    values: Json = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None


class StateAtCheckpoint(Body):
    checkpoint: CheckpointRef
    subgraphs: bool = False
    select: list[StateField] | None = None


class HistoryQuery(Body):
    limit: int = Field(10, ge=1, le=1000)
    before: str | CheckpointRef | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: CheckpointRef | None = None
    select: list[StateField] | None = None


# runs -------------------------------------------------------------------------------
class CommandBody(Body):
    resume: Any = None
    update: Any = None
    goto: Any = None


# The longest a run may be delayed (30 days): a run waiting longer holds its thread busy
# and every later run of it behind it; a cron is the tool for later starts.
MAX_AFTER_SECONDS = 30 * 24 * 3600


class RunCreate(Body):
    assistant_id: str
    input: Json = None
    command: CommandBody | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    multitask_strategy: MultitaskStrategy | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = Field(None, ge=0, le=MAX_AFTER_SECONDS)
    durability: Literal["sync", "async", "exit"] | None = None
    strict_resume: bool | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    langsmith_tracer: Any = None

    def data(self) -> dict[str, Any]:
        """The fields the client sent; the checkpoint without its empty keys (they address nothing)."""
        data = super().data()
        if self.checkpoint is not None:
            data["checkpoint"] = self.checkpoint.model_dump(exclude_none=True)
        return data


RunField = Literal["run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata", "kwargs",
                   "multitask_strategy"]


class RunsCancel(Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


# crons ------------------------------------------------------------------------------
CronField = Literal["cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time", "schedule", "timezone",
                    "created_at", "updated_at", "user_id", "payload", "next_run_date", "metadata", "enabled"]


class CronRun(Body):
    """What every run of a cron is made from (stored as the cron's payload)."""

    input: Json = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    webhook: str | None = Field(None, min_length=1)
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: bool | None = None
    timezone: str | None = None
    end_time: str | None = None
    enabled: bool | None = None


class ThreadCronCreate(CronRun):
    assistant_id: str
    schedule: str
    multitask_strategy: MultitaskStrategy | None = None


class CronCreate(ThreadCronCreate):
    on_run_completed: Literal["delete", "keep"] | None = None


class CronPatch(CronRun):
    schedule: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None


class CronCount(Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


class CronSearch(CronCount):
    enabled: bool | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: Literal["cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at",
                     "updated_at"] | None = None
    sort_order: SortOrder | None = None
    select: list[CronField] | None = None


# store ------------------------------------------------------------------------------
class StorePut(Body):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = None


class StoreDelete(Body):
    namespace: list[str]
    key: str


class StoreSearch(Body):
    namespace_prefix: list[str] = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(Body):
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    max_depth: int | None = Field(None, ge=1)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)
