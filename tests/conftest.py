"""Shared fixtures: a real PostgreSQL for the whole session, migrated once, cleaned per test.

They serve the three levels (tests/unit uses none that needs a database or a server:
tests/unit/conftest.py refuses them; CONTRIBUTING.md says which level a test belongs to).

The server is the embedded one (started in a temporary folder), or ``TEST_DATABASE_URL`` when
set. Personas ``alice`` and ``bob`` are real ``auth.users`` rows.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator
from services.db import Database
from services.migrations import apply_migrations
from tests.fake_supabase_auth import FakeSupabaseAuth
from tests.harness import Chat, Clock, bot_running, make_settings

TEST_DB = "aelpher_test"

# Tables cleaned between tests; auth.users cascades to every per-user table.
_CLEAN = "truncate auth.users, bot_persistence, link_attempts, open_questions cascade"


def dsn_for(server_dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A maintenance connection string for the test PostgreSQL server."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")))
    yield server.start()
    server.stop()


def create_database(server_dsn: str, name: str) -> str:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    return dsn_for(server_dsn, name)


@pytest.fixture(scope="session")
def database_dsn(server_dsn: str) -> str:
    """The migrated test database."""
    dsn = create_database(server_dsn, TEST_DB)
    asyncio.run(apply_migrations(dsn))
    return dsn


@pytest.fixture
def empty_database(server_dsn: str) -> Iterator[str]:
    """A brand-new empty database, dropped after the test."""
    name = f"aelpher_empty_{uuid.uuid4().hex[:8]}"
    dsn = create_database(server_dsn, name)
    yield dsn
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A migrated PostgreSQL of this test's own, so it can be stopped, restarted or have its
    backends terminated without disturbing other tests."""
    pg = EmbeddedPostgres(tmp_path / "db")
    dsn = await asyncio.to_thread(pg.start)
    await apply_migrations(dsn)
    yield pg, dsn
    await asyncio.to_thread(pg.stop)


@pytest.fixture(scope="session")
async def database(database_dsn: str) -> AsyncIterator[Database]:
    db = Database(database_dsn, max_size=8)
    await db.open()
    yield db
    await db.close()


@pytest.fixture
async def db(database: Database, database_dsn: str) -> AsyncIterator[Database]:
    """The session's pool over a clean database."""
    async with await psycopg.AsyncConnection.connect(database_dsn, autocommit=True) as conn:
        await conn.execute(_CLEAN)
    yield database


async def make_user(db: Database, email: str) -> uuid.UUID:
    """Insert an auth.users row the way Supabase Auth would."""
    user_id = uuid.uuid4()
    async with db.privileged() as uow:
        await uow.execute(
            "insert into auth.users (id, email, aud, role) values (%s, %s, 'authenticated',"
            " 'authenticated')",
            (user_id, email),
        )
        await uow.commit()
    return user_id


@pytest.fixture
async def alice(db: Database) -> uuid.UUID:
    return await make_user(db, "alice@example.com")


@pytest.fixture
async def bob(db: Database) -> uuid.UUID:
    return await make_user(db, "bob@example.com")


@pytest.fixture
def emulator() -> Iterator[BotApiEmulator]:
    with BotApiEmulator() as emu:
        yield emu


@pytest.fixture
async def bot(db: Database, database_dsn: str, emulator: BotApiEmulator) -> AsyncIterator[BotEnv]:
    """The running bot plus a clock; ``bot.chat(user_id)`` gives a conversation."""
    clock = Clock()
    async with bot_running(emulator, database_dsn, clock=clock) as app:
        yield BotEnv(emulator, app, clock)


SUPABASE_ANON_KEY = "anon-test-key"


@pytest.fixture
def fake() -> Iterator[FakeSupabaseAuth]:
    """A fake Supabase Auth over HTTP (tests/fake_supabase_auth.py), for the linking tests."""
    with FakeSupabaseAuth() as server:
        yield server


@pytest.fixture
async def supabase_bot(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> AsyncIterator[tuple[BotEnv, FakeSupabaseAuth]]:
    """The running bot in Supabase mode, with Supabase Auth faked at its HTTP boundary."""
    with FakeSupabaseAuth() as fake:
        settings = make_settings(supabase_url=fake.url, supabase_anon_key=SUPABASE_ANON_KEY)
        clock = Clock()
        async with bot_running(emulator, database_dsn, clock=clock, settings=settings) as app:
            yield BotEnv(emulator, app, clock), fake


class BotEnv:
    """The emulator, the running application and its clock."""

    def __init__(self, emu: BotApiEmulator, app: Any, clock: Clock) -> None:
        self.emu = emu
        self.app = app
        self.clock = clock

    def chat(self, user_id: int, first_name: str = "Test") -> Chat:
        return Chat(self.emu, user_id, first_name)
