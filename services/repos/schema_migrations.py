"""SQL for ``public.schema_migrations``: the versions the migration runner applied
(services/migrations.py), and the advisory lock it takes around each migration.

The runner works before the pool exists, on a connection of its own (autocommit, no prepared
statements), so these functions take that connection, not a unit of work. Versions the
Supabase CLI recorded in ``supabase_migrations.schema_migrations`` count as applied too (that
table is the CLI's: read here, never written).
"""

from __future__ import annotations

import psycopg

Connection = psycopg.AsyncConnection[tuple[object, ...]]

#: the advisory lock of the migration runner ("AELP")
_LOCK_KEY = 0x4145_4C50

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
_RECORD = "insert into public.schema_migrations (version, name) values (%s, %s)"


async def lock(conn: Connection) -> None:
    """Take the runner's transaction-scoped lock (two instances starting at once wait for
    each other; it works through a transaction-mode pooler, session locks would not)."""
    await conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


async def ensure_table(conn: Connection) -> None:
    await conn.execute(_ENSURE_TABLE)


async def applied_versions(conn: Connection) -> set[str]:
    """Versions recorded by this runner, plus those the Supabase CLI recorded (if readable)."""
    versions = {str(r[0]) for r in await (await conn.execute(_APPLIED_HERE)).fetchall()}
    cli = await (await conn.execute(_SUPABASE_CLI_TABLE)).fetchone()
    if cli is not None and cli[0]:
        versions |= {str(r[0]) for r in await (await conn.execute(_APPLIED_BY_CLI)).fetchall()}
    return versions


async def record(conn: Connection, version: str, name: str) -> None:
    """Record a migration as applied (in the transaction that applied it)."""
    await conn.execute(_RECORD, (version, name))
