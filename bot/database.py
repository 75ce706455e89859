"""Choosing and preparing the database: the configured one, or the embedded server."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.embedded_db import EmbeddedPostgres
from bot.settings import Settings
from services.db import Database
from services.migrations import apply_migrations

logger = logging.getLogger(__name__)


@dataclass
class DatabaseHandle:
    """The connection string in use and, in embedded mode, the server behind it."""

    dsn: str
    embedded: EmbeddedPostgres | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def resolve_database(settings: Settings) -> DatabaseHandle:
    """Return DATABASE_URL, or start the embedded PostgreSQL in DATA_DIR."""
    if settings.database_url is not None:
        return DatabaseHandle(settings.database_url.get_secret_value())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(settings.data_dir)
    return DatabaseHandle(server.start(), server)


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations, logging what was applied."""
    applied = await apply_migrations(dsn)
    if applied:
        logger.info("applied migrations: %s", ", ".join(applied))
    else:
        logger.info("database schema is up to date")
    return applied


def make_database(settings: Settings, dsn: str) -> Database:
    """The pool every service uses (opened later, inside the running event loop)."""
    return Database(
        dsn,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_connect_timeout_seconds,
    )
