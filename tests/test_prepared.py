"""Server-side prepared statements: on where the connection keeps them, off on the transaction
pooler, and kept across read-only units of work (which commit instead of rolling back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from bot.database import make_database, prepared_statements
from services import accounts, nba, status
from services.db import Database, TelegramUser
from tests.harness import make_settings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PG_URL = "postgresql://postgres:secret@db.example.supabase.co:5432/postgres"
POOLER_URL = "postgresql://postgres.ref:secret@aws-0-eu.pooler.supabase.com:6543/postgres"
SESSION_URL = "postgresql://postgres.ref:secret@aws-0-eu.pooler.supabase.com:5432/postgres"


@pytest.mark.parametrize(
    ("switch", "dsn", "expected"),
    [
        ("auto", PG_URL, True),
        ("auto", SESSION_URL, True),
        ("auto", POOLER_URL, False),
        ("auto", "host=localhost port=6543 dbname=postgres", False),
        ("auto", "postgresql:///postgres?host=/tmp", True),  # no port: 5432
        ("off", PG_URL, False),
        ("on", POOLER_URL, True),
    ],
)
def test_when_statements_are_prepared(switch: str, dsn: str, expected: bool) -> None:
    settings = make_settings(db_prepared_statements=switch)
    assert prepared_statements(settings, dsn) is expected
    assert make_database(settings, dsn).prepare is expected


def test_the_switch_is_checked() -> None:
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="DB_PREPARED_STATEMENTS"):
        make_settings(db_prepared_statements="sometimes")
    assert make_settings(db_prepared_statements=" OFF ").db_prepared_statements == "off"


async def one_connection(dsn: str, *, prepare: bool) -> Database:
    db = Database(dsn, min_size=1, max_size=1, prepare=prepare)
    await db.open()
    return db


@pytest.fixture
async def single(db: Database, database_dsn: str) -> AsyncIterator[Database]:
    """A pool of one connection (so every unit of work uses the same one), preparing."""
    pool = await one_connection(database_dsn, prepare=True)
    yield pool
    await pool.close()


async def prepared_on(db: Database) -> list[str]:
    """The statements prepared on the pool's only connection."""
    async with db.pool.connection() as conn:
        await conn.execute("select 1", prepare=False)  # psycopg deallocates after a statement
        cur = await conn.execute("select statement from pg_prepared_statements", prepare=False)
        return [row["statement"] for row in await cur.fetchall()]


async def test_reads_keep_the_prepared_statements(single: Database) -> None:
    await accounts.create_local_account(single, 3001, 3001, "P", T0)
    who = TelegramUser(3001)
    for _ in range(3):  # prepared on the second run, reused on the third
        view = await status.status_view(single, who, T0)
        await nba.view(single, who, ["cs"], T0)
    assert view.theaters[0].theater.arm_type == "ibm"
    kept = await prepared_on(single)
    assert any("from user_settings s cross join global_metrics g" in s for s in kept), kept
    assert any("from theaters" in s for s in kept), kept


async def test_a_failed_unit_of_work_leaves_the_connection_usable(single: Database) -> None:
    await accounts.create_local_account(single, 3002, 3002, "P", T0)
    for _ in range(2):
        await status.status_view(single, TelegramUser(3002), T0)
    with pytest.raises(RuntimeError):
        async with single.user_uow(TelegramUser(3002)) as uow:
            await uow.fetchone("select 1")
            raise RuntimeError("the service failed")
    with pytest.raises(psycopg.errors.UndefinedColumn):  # fails on the server this time
        async with single.user_uow(TelegramUser(3002), read_only=True) as uow:
            await uow.fetchone("select no_such_column from theaters")
    for _ in range(2):
        view = await status.status_view(single, TelegramUser(3002), T0)
    assert view.theaters[1].theater.arm_type == "cs"
    assert any("from user_settings s cross join global_metrics g" in s
               for s in await prepared_on(single))  # fmt: skip


async def test_read_only_units_of_work_cannot_write(single: Database) -> None:
    user_id, _ = await accounts.create_local_account(single, 3003, 3003, "P", T0)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        async with single.user_uow(user_id, read_only=True) as uow:
            await uow.execute("update theaters set total_progress = 50")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        async with single.privileged(read_only=True) as uow:
            await uow.execute("update theaters set total_progress = 50")
    async with single.privileged(read_only=True) as uow:
        rows = await uow.fetchall("select total_progress from theaters where user_id = %s",
                                  (user_id,))  # fmt: skip
    assert [r["total_progress"] for r in rows] == [0, 0]


async def test_without_prepared_statements_nothing_is_prepared(
    db: Database, database_dsn: str
) -> None:
    pool = await one_connection(database_dsn, prepare=False)
    try:
        await accounts.create_local_account(pool, 3004, 3004, "P", T0)
        who = TelegramUser(3004)
        for _ in range(3):
            await nba.add_item(pool, who, "cs", 2, "Read", T0)
            view = await status.status_view(pool, who, T0)
        assert view.theaters[1].open_items == 3
        assert await prepared_on(pool) == []
    finally:
        await pool.close()
