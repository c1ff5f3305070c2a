"""The one place SQL lives. `open_store(settings)` picks the backend from DATABASE_URL."""

from __future__ import annotations

from ..settings import Settings
from .base import StoreError
from .queries import Queries
from .sqlite import SQLiteStore

__all__ = ["Queries", "SQLiteStore", "StoreError", "open_store"]


def open_store(settings: Settings) -> Queries:
    """The store for the configured database: SQLite file, or PostgreSQL (through a pooler
    at DATABASE_URL, with migrations on DATABASE_DIRECT_URL when that is set)."""
    if settings.database_is_sqlite:
        return SQLiteStore(settings.sqlite_path)
    from .postgres import PostgresStore

    return PostgresStore(settings.database_url, direct_url=settings.database_direct_url)
