"""The one place SQL lives. `open_store(settings)` picks the backend from DATABASE_URL."""

from __future__ import annotations

from ..settings import Settings
from .base import StoreError
from .sqlite import SQLiteStore

__all__ = ["SQLiteStore", "StoreError", "open_store"]


def open_store(settings: Settings) -> SQLiteStore:
    """The store for the configured database."""
    if settings.database_is_sqlite:
        return SQLiteStore(settings.sqlite_path)
    raise StoreError(
        "DATABASE_URL points at PostgreSQL, which this build does not support yet; "
        "use sqlite:///path/to/notifier.db"
    )
