"""Forward-only SQL migrations from ``migrations/``, applied in file-name order.

Each file runs in its own transaction that first takes a transaction-scoped advisory lock, so
two instances starting at once apply each file exactly once (and this works through a
transaction-mode pooler, where session-level advisory locks do not). Applied versions are
recorded in ``public.schema_migrations``; versions the Supabase CLI recorded in
``supabase_migrations.schema_migrations`` count as applied too.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_KEY = 0x4145_4C50  # "AELP"
_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")

_ENSURE_TABLE = """
create table if not exists public.schema_migrations (
  version text primary key,
  name text not null,
  applied_at timestamptz not null default now()
);
alter table public.schema_migrations enable row level security;
"""

_SUPABASE_CLI_TABLE = """
select to_regclass('supabase_migrations.schema_migrations') is not null
   and has_table_privilege('supabase_migrations.schema_migrations', 'select')
"""
_APPLIED_HERE = "select version from public.schema_migrations"
_APPLIED_BY_CLI = "select version from supabase_migrations.schema_migrations"


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
            await conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            await conn.execute(_ENSURE_TABLE)
        for migration in discover(directory):
            async with conn.transaction():
                await conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                if migration.version in await _applied_versions(conn):
                    continue
                logger.info("applying migration %s_%s", migration.version, migration.name)
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "insert into public.schema_migrations (version, name) values (%s, %s)",
                    (migration.version, migration.name),
                )
                applied.append(migration.version)
    return applied


async def _applied_versions(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> set[str]:
    """Versions recorded by this runner, plus those the Supabase CLI recorded (if readable)."""
    versions = {str(r[0]) for r in await (await conn.execute(_APPLIED_HERE)).fetchall()}
    cli = await (await conn.execute(_SUPABASE_CLI_TABLE)).fetchone()
    if cli is not None and cli[0]:
        versions |= {str(r[0]) for r in await (await conn.execute(_APPLIED_BY_CLI)).fetchall()}
    return versions
