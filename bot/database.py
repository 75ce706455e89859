"""Choosing and preparing the database: the configured one, or the embedded server."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bot.embedded_db import EmbeddedPostgres
from bot.settings import Settings
from services.db import Database
from services.files import private_dir
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
    private_dir(settings.data_dir)
    server = EmbeddedPostgres(settings.data_dir)
    dsn = server.start()
    # As root the embedded server runs as a system user of its own and opens every folder
    # above its pgdata to others (g+rx, o+rx); they keep the right to pass through, not to
    # list or read (private_dir keeps execute bits on a folder that exists).
    private_dir(settings.data_dir)
    return DatabaseHandle(dsn, server)


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations, logging what was applied."""
    applied = await apply_migrations(dsn)
    if applied:
        logger.info("applied migrations: %s", ", ".join(applied))
    else:
        logger.info("database schema is up to date")
    return applied


#: Supabase's pooler in transaction mode (Supavisor) listens here; it hands each transaction
#: to any server connection, so a statement prepared on one is unknown on the next.
TRANSACTION_POOLER_PORT = 6543


def behind_transaction_pooler(settings: Settings, dsn: str) -> bool:
    """Whether the connection goes through a pooler in transaction mode, where the pool
    prepares no statements and sends no pipelines: DB_TRANSACTION_POOLER, or with "auto",
    on the transaction pooler's port only (direct connections, the session pooler and the
    embedded server are not)."""
    if settings.db_transaction_pooler != "auto":
        return settings.db_transaction_pooler == "on"
    try:
        port = conninfo_to_dict(dsn).get("port")
    except psycopg.ProgrammingError:
        return True  # unparsable here: let the connection report it; the safe way meanwhile
    return str(port or "5432").split(",")[0].strip() == str(TRANSACTION_POOLER_PORT)


def make_database(settings: Settings, dsn: str) -> Database:
    """The pool every service uses (opened later, inside the running event loop)."""
    return Database(
        dsn,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_connect_timeout_seconds,
        transaction_pooler=behind_transaction_pooler(settings, dsn),
    )


class DatabaseNeverAnswered(RuntimeError):
    """The database stayed unreachable for as long as the caller was willing to wait."""


async def wait_for_database(
    dsn: str, *, max_delay: float = 30.0, give_up_after: float | None = None
) -> None:
    """Block until the database accepts a connection, retrying with backoff.

    A bot restarted during a database outage waits here (saying so in the log) instead of
    crashing; Telegram keeps the updates that arrive meanwhile. With ``give_up_after``
    (seconds), raise DatabaseNeverAnswered after that long instead.
    """
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after is None else loop.time() + give_up_after
    delay = 0.5
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=5)
        except psycopg.OperationalError as exc:
            if deadline is not None and loop.time() + delay > deadline:
                raise DatabaseNeverAnswered(
                    f"the database did not answer ({_first_line(exc)})"
                ) from None
            logger.warning(
                "database unreachable (%s); retrying in %.0f s", _first_line(exc), delay
            )
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
        else:
            await conn.close()
            return


def _first_line(exc: BaseException) -> str:
    """The error's first line, without the connection string (which holds the password)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(" failed: ")[-1][:200]
