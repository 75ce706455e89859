"""Migrations apply to an empty database, re-run as no-ops, race safely, fit hosted Supabase."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from services.db import Database
from services.migrations import apply_migrations, discover

PER_USER_TABLES = [
    "theaters",
    "nba_items",
    "execution_logs",
    "reflections",
    "global_metrics",
    "sync_queue",
    "telegram_links",
    "user_settings",
    "nudges",
    "focus_sessions",
]


def as_role(dsn: str, user: str) -> str:
    params = conninfo_to_dict(dsn)
    params["user"] = user
    return make_conninfo(**params)  # type: ignore[arg-type]


async def test_apply_to_empty_database_then_noop(empty_database: str) -> None:
    versions = [m.version for m in discover()]
    assert await apply_migrations(empty_database) == versions
    assert await apply_migrations(empty_database) == []
    async with await psycopg.AsyncConnection.connect(empty_database) as conn:
        rows = await (await conn.execute("select version from schema_migrations")).fetchall()
        assert sorted(r[0] for r in rows) == versions
        for table in PER_USER_TABLES:
            cur = await conn.execute(
                "select relrowsecurity from pg_class where oid = %s::regclass", (table,)
            )
            assert (await cur.fetchone()) == (True,), f"{table} has no RLS"


async def test_two_runners_at_once_apply_each_file_once(empty_database: str) -> None:
    first, second = await asyncio.gather(
        apply_migrations(empty_database), apply_migrations(empty_database)
    )
    assert sorted(first + second) == [m.version for m in discover()]
    assert not set(first) & set(second)


async def test_schema_has_the_contract_names(database: Database) -> None:
    expected = {
        "telegram_links": {"telegram_user_id", "user_id", "chat_id", "active", "linked_at"},
        "user_settings": {
            "user_id", "timezone", "quiet_start", "quiet_end", "brief_time", "review_day",
            "review_time", "idle_after_hours", "overload_threshold", "weekly_capacity_hours",
            "overload_snoozed_until",
        },
        "nudges": {
            "id", "user_id", "kind", "arm_type", "dedupe_key", "status", "attempts",
            "claimed_at", "sent_at",
        },
    }  # fmt: skip
    async with database.privileged() as uow:
        for table, columns in expected.items():
            rows = await uow.fetchall(
                "select column_name from information_schema.columns"
                " where table_schema = 'public' and table_name = %s",
                (table,),
            )
            assert columns <= {r["column_name"] for r in rows}, table
        extra = await uow.fetchall(
            "select table_name, column_name from information_schema.columns"
            " where (table_name, column_name) in"
            " (('theaters', 'snoozed_until'), ('nba_items', 'completed_at'))"
        )
        assert len(extra) == 2
        idx = await uow.fetchone(
            "select indexdef from pg_indexes where indexname = 'nba_items_one_current'"
        )
        assert idx is not None and "UNIQUE" in idx["indexdef"]


HOSTED_SHAPE = """
do $$ begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin; end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin; end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin bypassrls; end if;
  if not exists (select 1 from pg_roles where rolname = 'app_owner') then
    create role app_owner login nosuperuser createrole bypassrls; end if;
end $$;
grant anon, authenticated, service_role to app_owner;
create schema auth;
create table auth.users (id uuid primary key, email varchar(255) unique,
  aud varchar(255), role varchar(255), raw_user_meta_data jsonb,
  created_at timestamptz default now(), updated_at timestamptz default now());
create function auth.uid() returns uuid language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $f$;
grant usage on schema auth to app_owner, anon, authenticated, service_role;
grant select, insert, references on auth.users to app_owner;
grant execute on function auth.uid() to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
grant create on schema public to app_owner;
"""


async def test_hosted_supabase_shape(empty_database: str) -> None:
    """Auth already there and not writable by the app role, no superuser, no default grants."""
    async with await psycopg.AsyncConnection.connect(empty_database, autocommit=True) as conn:
        await conn.execute(HOSTED_SHAPE)
    app_dsn = as_role(empty_database, "app_owner")
    async with await psycopg.AsyncConnection.connect(app_dsn) as conn:
        cur = await conn.execute(
            "select rolsuper, has_schema_privilege('auth', 'create')"
            " from pg_roles where rolname = current_user"
        )
        assert await cur.fetchone() == (False, False)

    applied = await apply_migrations(app_dsn)
    assert "20261126000000" in applied  # recorded, but its body did nothing:
    async with await psycopg.AsyncConnection.connect(empty_database) as conn:
        cur = await conn.execute("select count(*) from pg_proc where proname = 'jwt'")
        assert await cur.fetchone() == (0,)

    user_id = uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(app_dsn, autocommit=True) as conn:
        await conn.execute("insert into auth.users (id, email) values (%s, 'h@x.io')", (user_id,))
    async with Database(app_dsn, max_size=1) as db, db.user_uow(user_id) as uow:
        for table in PER_USER_TABLES:
            await uow.fetchall(f"select * from {table}")  # no InsufficientPrivilege
        await uow.execute("insert into theaters (user_id, arm_type) values (%s, 'cs')", (user_id,))
        await uow.execute(
            "insert into nba_items (user_id, arm_type, title) values (%s, 'cs', 't')", (user_id,)
        )
        await uow.execute("insert into user_settings (user_id) values (%s)", (user_id,))
        assert await uow.fetchone("select current_user as u") == {"u": "authenticated"}


async def test_malformed_migration_name_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "1_bad.sql").write_text("select 1")
    with pytest.raises(ValueError, match="14 digits"):
        discover(folder)
