"""langgraph.json `store.index` turned into the index configuration LangGraph's store takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import ensure_embeddings

from skeino.config import ConfigError


def _embeddings(embed: str, base_dir: Path, config_path: Path) -> Embeddings:
    # The official server's rule: a reference containing ".py:" is a file (or module) and a
    # function in it; anything else is a LangChain "provider:model" identifier.
    if ".py:" in embed:
        from skeino.graphs import import_object

        target = import_object(embed, base_dir, f"'store.index.embed' ({embed})", "store_index_embed")
        if isinstance(target, Embeddings):
            return target
        if not callable(target):
            raise ConfigError(f"{config_path}: 'store.index.embed' {embed!r} is not a function or Embeddings object")
        return ensure_embeddings(target)
    try:
        return ensure_embeddings(embed)
    except Exception as exc:  # missing packages, unknown provider, no API key: all the user's to fix
        raise ConfigError(f"{config_path}: 'store.index.embed' {embed!r} cannot be loaded: {exc}") from None


def resolve_index(index: dict[str, Any] | None, base_dir: Path, config_path: Path) -> dict[str, Any] | None:
    """The store's `index` argument, with the embedding function loaded; None without an index."""
    if not index:
        return None
    fields = index.get("fields") or ["$"]
    return {
        "dims": index["dims"],
        "embed": _embeddings(index["embed"], base_dir, config_path),
        # LangGraph's SQLite store reads the fields to embed from `text_fields`.
        "fields": fields,
        "text_fields": fields,
    }
