"""Forward-only SQL migrations from ``migrations/``, applied in file-name order.

Each file runs in its own transaction that first takes a transaction-scoped advisory lock, so
two instances starting at once apply each file exactly once (and this works through a
transaction-mode pooler, where session-level advisory locks do not). Applied versions are
recorded in ``public.schema_migrations``; versions the Supabase CLI recorded in
``supabase_migrations.schema_migrations`` count as applied too (the statements:
services/repos/schema_migrations.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from services.repos import schema_migrations

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files, in order; a file with a malformed name is an error."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must be <14 digits>_<name>.sql: {path.name}")
        found.append(Migration(match["version"], match["name"], path))
    return found


async def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; return the versions this call applied."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, prepare_threshold=None
    ) as conn:
        async with conn.transaction():
            await schema_migrations.lock(conn)
            await schema_migrations.ensure_table(conn)
        for migration in discover(directory):
            async with conn.transaction():
                await schema_migrations.lock(conn)
                if migration.version in await schema_migrations.applied_versions(conn):
                    continue
                logger.info("applying migration %s_%s", migration.version, migration.name)
                await conn.execute(migration.sql.encode())  # the file's own SQL
                await schema_migrations.record(conn, migration.version, migration.name)
                applied.append(migration.version)
    return applied
