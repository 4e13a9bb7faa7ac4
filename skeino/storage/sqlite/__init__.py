from skeino.storage.sqlite.backend import SqliteStorage

__all__ = ["SqliteStorage"]
