"""Persistence behind one contract (see base.Storage); pick a backend from the config."""

from __future__ import annotations

from skeino.config import Config
from skeino.storage.base import Storage


def create_storage(config: Config) -> Storage:
    """The backend the config asks for: Postgres for a postgresql:// URL, else SQLite in a local file."""
    from skeino.storage.index import resolve_index
    from skeino.storage.sqlite import SqliteStorage

    index = resolve_index(config.store.get("index"), config.base_dir, config.config_path)
    if config.settings.database_url:
        from skeino.storage.postgres import PostgresStorage

        return PostgresStorage(config.settings.database_url, store_config=config.store, index=index,
                               pool_size=config.settings.database_pool_size)
    return SqliteStorage(config.db_path, store_config=config.store, index=index)


__all__ = ["Storage", "create_storage"]
