from skeino.storage.postgres.backend import PostgresStorage

__all__ = ["PostgresStorage"]
