"""JSON schemas of a graph, as `/assistants/{id}/schemas` and `/subgraphs` publish them."""

from __future__ import annotations

import logging
import typing
import warnings
from typing import Any

from langgraph.pregel import Pregel

from skeino import serde

logger = logging.getLogger("skeino.assistants")

# LangGraph's own name for a graph compiled without one.
DEFAULT_GRAPH_NAME = "LangGraph"

# Keys of `configurable` the server fills in itself: not something a client configures.
_SERVER_CONFIGURABLE = ("__pregel_checkpointer", "__pregel_store", "checkpoint_id", "checkpoint_ns", "thread_id")


def display_name(graph: Any, graph_id: str) -> str:
    """A graph's name, or its id when it was compiled without one (as the official server names it)."""
    name = getattr(graph, "name", None) if isinstance(graph, Pregel) else None
    return name if name and name != DEFAULT_GRAPH_NAME else graph_id


def _typeddict_compat(typ: Any) -> Any:
    """The typing_extensions twin of a typing.TypedDict, which pydantic refuses before Python 3.12."""
    import typing_extensions

    hints = typing.get_type_hints(typ, include_extras=True)
    required = getattr(typ, "__required_keys__", frozenset(hints))
    fields = {k: (v if k in required else typing_extensions.NotRequired[v]) for k, v in hints.items()}
    twin = typing_extensions.TypedDict(typ.__name__, fields)  # type: ignore[operator]
    twin.__doc__ = typ.__doc__
    return twin


def _json_schema(typ: Any) -> dict[str, Any]:
    from pydantic import PydanticUserError, TypeAdapter

    try:
        return TypeAdapter(typ).json_schema()
    except PydanticUserError:
        # The most common state declaration (typing.TypedDict) fails on Python 3.11 only.
        if not (typing.is_typeddict(typ) and type(typ).__module__ == "typing"):
            raise
        return TypeAdapter(_typeddict_compat(typ)).json_schema()


def _state_schema(graph: Pregel) -> dict[str, Any]:
    """The channels a client reads in `values`, each typed by what it accepts.

    Built from the stream channels, as the official server does, so LangGraph's managed
    values (e.g. `remaining_steps`) and internal channels stay out of it.
    """
    from langchain_core.runnables.utils import create_model

    fields: dict[str, Any] = {}
    for key in graph.stream_channels_list:
        update_type = graph.channels[key].UpdateType
        try:
            create_model(key, __root__=(update_type, None)).model_json_schema()
            fields[key] = (update_type, None)
        except Exception:  # a type pydantic cannot describe is published as "any"
            fields[key] = (Any, None)
    return create_model(graph.get_name("State"), **fields).model_json_schema()


def _config_schema(graph: Pregel) -> dict[str, Any]:
    """What a client may put under `config.configurable`: the inside of it, not the whole RunnableConfig."""
    from pydantic import TypeAdapter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # config_schema is kept for exactly this use
        model = graph.config_schema()
    fields = getattr(model, "model_fields", None) or {}
    if "configurable" not in fields:
        return {}
    schema = TypeAdapter(fields["configurable"].annotation).json_schema()
    if schema:
        for key in _SERVER_CONFIGURABLE:
            schema.get("properties", {}).pop(key, None)
    config_type = getattr(graph, "config_type", None)
    if config_type is not None and hasattr(config_type, "__name__"):
        schema["title"] = config_type.__name__  # pydantic loses the declared type's name
    return schema


def graph_schemas(graph: Pregel) -> dict[str, Any]:
    """input, output, state, config and context schemas; null for a slot that cannot be described."""
    builder = getattr(graph, "builder", None)

    def attempt(slot: str, fn: Any) -> Any:
        try:
            return serde.to_jsonable(fn())
        except Exception as exc:
            logger.debug("no %s for graph %s: %s: %s", slot, graph.name, type(exc).__name__, exc)
            return None

    def io_schema(slot: str, method: Any, attr: str) -> Any:
        # The graph's own method first; if it fails, the builder's declared type (see _json_schema).
        schema = attempt(slot, method)
        if schema is None and getattr(builder, attr, None) is not None:
            schema = attempt(slot, lambda: _json_schema(getattr(builder, attr)))
        return schema

    return {
        "input_schema": io_schema("input_schema", graph.get_input_jsonschema, "input_schema"),
        "output_schema": io_schema("output_schema", graph.get_output_jsonschema, "output_schema"),
        "state_schema": attempt("state_schema", lambda: _state_schema(graph)),
        "config_schema": attempt("config_schema", lambda: _config_schema(graph)),
        "context_schema": io_schema("context_schema", graph.get_context_jsonschema, "context_schema"),
    }


def named(graph: Pregel, graph_id: str) -> Pregel:
    """The graph renamed to its id when it has no name of its own, as the official server serves it."""
    return graph if graph.name != DEFAULT_GRAPH_NAME else graph.copy(update={"name": graph_id})
