"""Server-side prepared statements and pipelines: on where the connection keeps them, off behind
a transaction pooler, and prepared statements kept across read-only units of work (which commit
instead of rolling back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from bot.database import behind_transaction_pooler, make_database
from services import accounts, nba, status, tracking
from services.db import Database, TelegramUser
from services.errors import NotLinked
from tests.harness import make_settings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PG_URL = "postgresql://postgres:secret@db.example.supabase.co:5432/postgres"
POOLER_URL = "postgresql://postgres.ref:secret@aws-0-eu.pooler.supabase.com:6543/postgres"
SESSION_URL = "postgresql://postgres.ref:secret@aws-0-eu.pooler.supabase.com:5432/postgres"


@pytest.mark.parametrize(
    ("switch", "dsn", "pooler"),
    [
        ("auto", PG_URL, False),
        ("auto", SESSION_URL, False),
        ("auto", POOLER_URL, True),
        ("auto", "host=localhost port=6543 dbname=postgres", True),
        ("auto", "postgresql:///postgres?host=/tmp", False),  # no port: 5432
        ("on", PG_URL, True),
        ("off", POOLER_URL, False),
    ],
)
def test_when_the_pool_counts_on_a_transaction_pooler(switch: str, dsn: str, pooler: bool) -> None:
    settings = make_settings(db_transaction_pooler=switch)
    assert behind_transaction_pooler(settings, dsn) is pooler
    assert make_database(settings, dsn).transaction_pooler is pooler


def test_the_switch_is_checked() -> None:
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="DB_TRANSACTION_POOLER"):
        make_settings(db_transaction_pooler="sometimes")
    assert make_settings(db_transaction_pooler=" OFF ").db_transaction_pooler == "off"


async def one_connection(dsn: str, *, pooler: bool) -> Database:
    db = Database(dsn, min_size=1, max_size=1, transaction_pooler=pooler)
    await db.open()
    return db


@pytest.fixture
async def single(db: Database, database_dsn: str) -> AsyncIterator[Database]:
    """A pool of one connection (so every unit of work uses the same one), preparing."""
    pool = await one_connection(database_dsn, pooler=False)
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


async def test_behind_a_transaction_pooler_nothing_is_prepared_or_pipelined(
    db: Database, database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines: list[object] = []
    original = psycopg.AsyncConnection.pipeline

    def pipeline(conn: psycopg.AsyncConnection[Any]) -> Any:
        pipelines.append(conn)
        return original(conn)

    monkeypatch.setattr(psycopg.AsyncConnection, "pipeline", pipeline)
    pool = await one_connection(database_dsn, pooler=True)
    try:
        await accounts.create_local_account(pool, 3004, 3004, "P", T0)
        who = TelegramUser(3004)
        for _ in range(3):
            await nba.add_item(pool, who, "cs", 2, "Read", T0)  # the write lock, then a write
            view = await status.status_view(pool, who, T0)  # a one-statement read
            (cs,) = await nba.view(pool, who, ["cs"], T0)
        logged = await tracking.log_time(pool, who, "cs", 30, "read", T0)
        assert view.theaters[1].open_items == 3 and len(cs.ranked) == 3
        assert logged.log.duration == 30
        with pytest.raises(NotLinked):
            await status.status_view(pool, TelegramUser(3005), T0)
        with pytest.raises(NotLinked):
            await nba.add_item(pool, TelegramUser(3005), "cs", 2, "Read", T0)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # still read-only
            async with pool.user_uow(who, single=True) as uow:
                await uow.execute("update theaters set total_progress = 50")
        assert await prepared_on(pool) == []
        assert pipelines == []
    finally:
        await pool.close()
