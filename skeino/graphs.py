"""Load the graphs named in langgraph.json and derive their default assistants."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from skeino.config import Config, ConfigError, GraphSpec

# The namespace the official server uses, so default assistant ids match across servers.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


@functools.lru_cache(maxsize=1024)
def default_assistant_id(graph_id: str) -> str:
    """The deterministic id of a graph's default assistant."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


@dataclass
class LoadedGraph:
    """A graph id bound to either a compiled graph or a factory producing one."""

    graph_id: str
    source: str
    graph: Pregel | None = None
    factory: Callable[..., Any] | None = None
    factory_takes_config: bool = False
    description: str | None = None


def import_object(ref: str, base_dir: Path, where: str, module_name: str) -> Any:
    """The attribute a `path.py:attr` or `module:attr` reference names; ConfigError says `where` it failed."""
    module_ref, _, attr = ref.rpartition(":")
    try:
        if module_ref.endswith(".py") or "/" in module_ref:
            file = (base_dir / module_ref).resolve()
            if not file.is_file():
                raise ConfigError(f"{file}: file not found for {where}")
            mod_name = f"skeino_user_graphs.{module_name}_{abs(hash(str(file)))}"
            module_spec = importlib.util.spec_from_file_location(mod_name, file)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"{file}: cannot import {where}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            # Let the file import its siblings, as it would when run directly.
            if str(file.parent) not in sys.path:
                sys.path.insert(0, str(file.parent))
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_ref)
    except ConfigError:
        raise
    except Exception as exc:  # the user's module raised while importing
        raise ConfigError(f"{module_ref}: importing {where} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        raise ConfigError(f"{module_ref}: {where} has no attribute {attr!r}")
    return getattr(module, attr)


def _import_target(spec: GraphSpec, base_dir: Path) -> Any:
    return import_object(spec.path, base_dir, f"graph {spec.graph_id!r} ({spec.path})", spec.graph_id)


def _load_one(spec: GraphSpec, base_dir: Path) -> LoadedGraph:
    target = _import_target(spec, base_dir)
    where = f"{spec.path.rpartition(':')[0]}: graph {spec.graph_id!r}"
    if isinstance(target, StateGraph):
        target = target.compile()
    if isinstance(target, Pregel):
        return LoadedGraph(spec.graph_id, spec.path, graph=target, description=spec.description)
    if callable(target) and not isinstance(target, type):
        params = [
            p for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        if len(params) > 1:
            raise ConfigError(f"{where}: a graph factory takes at most one argument (the config)")
        return LoadedGraph(
            spec.graph_id, spec.path, factory=target, factory_takes_config=bool(params),
            description=spec.description,
        )
    raise ConfigError(
        f"{where}: {spec.path} is a {type(target).__name__}, not a compiled graph, StateGraph or factory"
    )


class GraphRegistry:
    """The loaded graphs, and how to get a runnable instance of one."""

    def __init__(self, graphs: dict[str, LoadedGraph]) -> None:
        self._graphs = graphs
        self._bound: dict[tuple[str, bool], Pregel] = {}
        self.checkpointer: Any = None
        self.store: Any = None
        # Throwaway threads (stateless runs) keep their checkpoints in memory: they are
        # deleted when the run ends, so writing them to disk would be wasted work.
        self.ephemeral_checkpointer = InMemorySaver()

    @classmethod
    def load(cls, config: Config) -> "GraphRegistry":
        """Import every graph of the config; ConfigError names the first that fails."""
        for dep in config.dependencies:
            if str(dep) not in sys.path:
                sys.path.insert(0, str(dep))
        return cls({spec.graph_id: _load_one(spec, config.base_dir) for spec in config.graphs})

    def bind(self, checkpointer: Any, store: Any) -> None:
        """Attach the persistence every graph instance runs with."""
        self.checkpointer = checkpointer
        self.store = store
        self._bound.clear()

    def ids(self) -> list[str]:
        return list(self._graphs)

    def __contains__(self, graph_id: str) -> bool:
        return graph_id in self._graphs

    def info(self, graph_id: str) -> LoadedGraph:
        return self._graphs[graph_id]

    async def get(self, graph_id: str, config: RunnableConfig | None = None, *, ephemeral: bool = False) -> Pregel:
        """A graph instance with the shared checkpointer (or the in-memory one) and store attached."""
        loaded = self._graphs[graph_id]
        persistence = {"checkpointer": self.ephemeral_checkpointer if ephemeral else self.checkpointer,
                       "store": self.store}
        if loaded.graph is not None:
            bound = self._bound.get((graph_id, ephemeral))
            if bound is None:
                bound = loaded.graph.copy(update=persistence)
                self._bound[(graph_id, ephemeral)] = bound
            return bound
        assert loaded.factory is not None
        result = loaded.factory(config or {}) if loaded.factory_takes_config else loaded.factory()
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, StateGraph):
            result = result.compile()
        if not isinstance(result, Pregel):
            raise TypeError(f"graph factory {loaded.source} returned {type(result).__name__}, not a graph")
        return result.copy(update=persistence)
