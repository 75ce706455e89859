"""What a user can do through Supabase's Data API with their own JWT (docs/operations.md,
"Security model"): each statement runs exactly as PostgREST runs a request, in a transaction
that switches to the JWT's role and sets its claims.

The grants migration (migrations/20261206000100_data_api_grants.sql) is shown to be what
refuses each write: on a database migrated up to just before it, every attack below succeeds.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from services.db import Database
from services.migrations import MIGRATIONS_DIR, apply_migrations

GRANTS_MIGRATION = "20261206000100_data_api_grants.sql"


async def as_api(
    dsn: str, who: uuid.UUID | None, statement: str, params: Any = None
) -> int | None:
    """Run ``statement`` as PostgREST would for a request with ``who``'s JWT (None: the anon
    key), then roll back. Returns the rows it touched, or None if it was refused for lack of
    privilege (42501, PostgREST's 401/403)."""
    role = "anon" if who is None else "authenticated"
    claims = {"role": role} if who is None else {"sub": str(who), "role": role}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("begin")
        await conn.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (role, json.dumps(claims)),
        )
        try:
            cur = await conn.execute(statement, params)
        except psycopg.errors.InsufficientPrivilege:
            return None
        finally:
            await conn.execute("rollback")
        return cur.rowcount


@dataclass(frozen=True)
class Attack:
    name: str
    #: "alice" (linked, with a nudge), "carol" (no link) or "anon"
    who: str
    statement: str


VICTIM_TG = 2002

ATTACKS = (
    # Telegram links: the victim's Telegram id would work inside alice's account, or alice's
    # nudges would go to the victim's chat.
    Attack(
        "re-point own link to another Telegram user",
        "alice",
        f"update telegram_links set telegram_user_id = {VICTIM_TG}",
    ),
    Attack("send own nudges to another chat", "alice", "update telegram_links set chat_id = 1"),
    Attack(
        "claim another Telegram user's id",
        "carol",
        "insert into telegram_links (telegram_user_id, user_id, chat_id)"
        f" values ({VICTIM_TG}, auth.uid(), {VICTIM_TG})",
    ),
    Attack("switch own link on again", "alice", "update telegram_links set active = true"),
    Attack("delete own link", "alice", "delete from telegram_links"),
    # The nudge ledger: garbage for the scan to retry, or sent nudges to suppress / repeat.
    Attack(
        "insert a claimed ledger row",
        "alice",
        "insert into nudges (user_id, kind, dedupe_key, status, next_attempt_at)"
        " values (auth.uid(), 'brief', 'forged', 'claimed', '-infinity')",
    ),
    Attack("mark own nudges sent", "alice", "update nudges set status = 'sent'"),
    Attack("delete own ledger rows", "alice", "delete from nudges"),
    # TRUNCATE ignores row-level security: every user's rows would go.
    Attack("truncate the theaters of everyone", "alice", "truncate theaters cascade"),
    Attack("truncate the bot's state", "alice", "truncate bot_persistence"),
    Attack("anon truncates the logs of everyone", "anon", "truncate execution_logs"),
    Attack("anon truncates the settings of everyone", "anon", "truncate user_settings"),
)


@dataclass(frozen=True)
class People:
    alice: uuid.UUID
    carol: uuid.UUID

    def who(self, name: str) -> uuid.UUID | None:
        return {"alice": self.alice, "carol": self.carol}.get(name)


async def seed_people(dsn: str) -> People:
    """alice: linked (Telegram 1001), with theaters, settings, persistence and one nudge;
    carol: an account with no link."""
    alice, carol = uuid.uuid4(), uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "insert into auth.users (id, aud, role) values (%s, 'authenticated',"
            " 'authenticated'), (%s, 'authenticated', 'authenticated')",
            (alice, carol),
        )
        await conn.execute(
            "insert into telegram_links (telegram_user_id, user_id, chat_id, active)"
            " values (1001, %s, 1001, false)",
            (alice,),
        )
        await conn.execute(
            "insert into theaters (user_id, arm_type) values (%s, 'cs'), (%s, 'cs')",
            (alice, carol),
        )
        await conn.execute(
            "insert into execution_logs (user_id, arm_type, action) values (%s, 'cs', 'x')",
            (alice,),
        )
        await conn.execute("insert into user_settings (user_id) values (%s)", (alice,))
        await conn.execute(
            "insert into nudges (user_id, kind, dedupe_key, status)"
            " values (%s, 'idle', 'idle:cs:1', 'sent')",
            (alice,),
        )
        await conn.execute(
            "insert into bot_persistence (kind, key, data) values ('user_data', '1001', '{}')"
        )
    return People(alice, carol)


def migrations_before_grants(tmp_path: Path) -> Path:
    """A copy of migrations/ without the grants migration and anything after it."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name >= GRANTS_MIGRATION:
            break
        shutil.copy(path, folder / path.name)
    return folder


async def test_each_write_is_refused_and_would_succeed_without_the_migration(
    empty_database: str, tmp_path: Path
) -> None:
    await apply_migrations(empty_database, migrations_before_grants(tmp_path))
    # A project whose default privileges granted every new public table to the API roles
    # (hosted Supabase did so for years): what the migrations granted explicitly, and more.
    async with await psycopg.AsyncConnection.connect(empty_database, autocommit=True) as conn:
        await conn.execute("grant all on all tables in schema public to anon, authenticated")
    people = await seed_people(empty_database)

    before = {
        a.name: await as_api(empty_database, people.who(a.who), a.statement) for a in ATTACKS
    }
    assert all(touched is not None for touched in before.values()), before
    assert all(
        touched for name, touched in before.items() if not name.startswith(("trunc", "anon"))
    ), before

    assert GRANTS_MIGRATION.split("_")[0] in await apply_migrations(empty_database)
    after = {a.name: await as_api(empty_database, people.who(a.who), a.statement) for a in ATTACKS}
    assert after == dict.fromkeys(before, None)


async def test_each_write_is_refused_on_the_migrated_database(
    db: Database, database_dsn: str
) -> None:
    people = await seed_people(database_dsn)
    for attack in ATTACKS:
        assert await as_api(database_dsn, people.who(attack.who), attack.statement) is None, (
            attack.name
        )


async def test_a_user_still_reads_their_own_link_and_ledger_and_nothing_else(
    db: Database, database_dsn: str
) -> None:
    people = await seed_people(database_dsn)
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as admin:
        await admin.execute(
            "insert into telegram_links (telegram_user_id, user_id, chat_id) values (3003, %s, 3)",
            (people.carol,),
        )
    for table in ("telegram_links", "nudges", "theaters"):
        mine = await as_api(database_dsn, people.alice, f"select user_id from {table}")
        assert mine == 1, table  # alice's one row; carol's is invisible
    # ... and her own seed rows and settings stay hers to change (the Aelpher app uses them)
    for statement in (
        "update theaters set total_progress = 5",
        "update execution_logs set details = 'd'",
        "update user_settings set idle_after_hours = 48",
    ):
        assert await as_api(database_dsn, people.alice, statement) == 1, statement
    for statement in (
        "select * from link_attempts",
        "select * from open_questions",
        "insert into open_questions (chat_id, telegram_user_id, flow, step, token, asked_at,"
        " expires_at) values (1, 1, 'log', 'action', 't', now(), now() + interval '1 hour')",
        "select * from bot_persistence",
        "select * from schema_migrations",
        "select * from focus_messages",
        "update focus_messages set chat_id = 1",
    ):
        for who in (people.alice, None):
            assert await as_api(database_dsn, who, statement) is None, statement


async def test_no_function_or_bot_table_is_reachable_by_the_api_roles(
    db: Database,
) -> None:
    async with db.privileged() as uow:
        functions = await uow.fetchall(
            "select p.oid::regprocedure::text as name,"
            " has_function_privilege('anon', p.oid, 'execute') as anon,"
            " has_function_privilege('authenticated', p.oid, 'execute') as authenticated"
            " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = 'public'"
        )
        tables = await uow.fetchall(
            "select c.relname as name, r.role, has_table_privilege(r.role, c.oid,"
            "   'select, insert, update, delete, truncate, references, trigger') as any"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace,"
            "   (values ('anon'), ('authenticated')) as r(role)"
            " where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'S')"
        )
    assert functions  # the trigger functions of the nudge scan, at least
    assert [f for f in functions if f["anon"] or f["authenticated"]] == []
    reachable = {(t["name"], t["role"]) for t in tables if t["any"]}
    assert {name for name, role in reachable if role == "anon"} == set()
    assert {name for name, role in reachable} == {
        "theaters",
        "nba_items",
        "execution_logs",
        "reflections",
        "global_metrics",
        "sync_queue",
        "user_settings",
        "telegram_links",
        "nudges",
        "focus_sessions",
    }
