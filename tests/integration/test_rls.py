"""Row-level security confines every unit of work to its user's rows, on every per-user table."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from services.db import Database, DatabaseUnavailable

# For each per-user table a user may write: an insert for a given user, and a column safe to
# update. The bot's own tables (telegram_links, nudges) are read-only to their users:
# tests/integration/test_data_api.py.
Row = Callable[[uuid.UUID], tuple[str, tuple[Any, ...]]]
TABLES: dict[str, tuple[Row, str]] = {
    "theaters": (
        lambda u: ("insert into theaters (user_id, arm_type) values (%s, 'cs')", (u,)),
        "total_progress = 10",
    ),
    "nba_items": (
        lambda u: (
            "insert into nba_items (user_id, arm_type, title) values (%s, 'cs', 'x')",
            (u,),
        ),
        "gap = 3",
    ),
    "execution_logs": (
        lambda u: (
            "insert into execution_logs (user_id, arm_type, action) values (%s, 'cs', 'a')",
            (u,),
        ),
        "duration = 5",
    ),
    "reflections": (
        lambda u: (
            "insert into reflections (user_id, arm_type, evidence) values (%s, 'cs', 'e')",
            (u,),
        ),
        "context = 'c'",
    ),
    "global_metrics": (
        lambda u: ("insert into global_metrics (user_id) values (%s)", (u,)),
        "overload_risk = 1",
    ),
    "sync_queue": (
        lambda u: (
            "insert into sync_queue (user_id, operation, table_name, payload)"
            " values (%s, 'INSERT', 'execution_logs', %s)",
            (u, json.dumps({"a": 1})),
        ),
        "retries = 1",
    ),
    "user_settings": (
        lambda u: ("insert into user_settings (user_id) values (%s)", (u,)),
        "idle_after_hours = 48",
    ),
    "focus_sessions": (
        lambda u: (
            "insert into focus_sessions (user_id, arm_type, started_at) values (%s, 'cs', now())",
            (u,),
        ),
        "paused_seconds = 60",
    ),
}


@pytest.mark.parametrize("table", sorted(TABLES))
async def test_user_sees_and_changes_only_own_rows(
    db: Database, alice: uuid.UUID, bob: uuid.UUID, table: str
) -> None:
    insert, update = TABLES[table]
    for user in (alice, bob):
        async with db.user_uow(user) as uow:
            await uow.execute(*insert(user))  # own insert works
            await uow.commit()

    async with db.user_uow(alice) as uow:
        rows = await uow.fetchall(f"select user_id from {table}")  # no user_id filter
        assert [r["user_id"] for r in rows] == [alice]
        assert await uow.execute(f"update {table} set {update}") == 1
        assert await uow.execute(f"update {table} set {update} where user_id = %s", (bob,)) == 0
        assert await uow.execute(f"delete from {table} where user_id = %s", (bob,)) == 0
        await uow.commit()

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        async with db.user_uow(alice) as uow:
            await uow.execute(*insert(bob))  # forged user_id

    async with db.user_uow(alice) as uow:
        assert await uow.execute(f"delete from {table}") == 1
        await uow.commit()
    async with db.privileged() as uow:
        rows = await uow.fetchall(f"select user_id from {table}")
        assert [r["user_id"] for r in rows] == [bob]


async def test_anon_is_denied(db: Database, alice: uuid.UUID) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with db.privileged() as uow:
            await uow.execute("set local role anon")
            await uow.fetchall("select * from theaters")


async def test_every_public_table_has_rls(db: Database) -> None:
    async with db.privileged() as uow:
        rows = await uow.fetchall(
            "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'public' and c.relkind = 'r' and not c.relrowsecurity"
        )
    assert rows == []


async def test_uncommitted_work_rolls_back(db: Database, alice: uuid.UUID) -> None:
    async with db.user_uow(alice) as uow:
        await uow.execute("insert into global_metrics (user_id) values (%s)", (alice,))
    with pytest.raises(ZeroDivisionError):
        async with db.user_uow(alice) as uow:
            await uow.execute("insert into global_metrics (user_id) values (%s)", (alice,))
            await uow.commit()
            _ = 1 / 0
    async with db.user_uow(alice) as uow:
        assert await uow.fetchall("select * from global_metrics") == []


async def test_role_and_claims_do_not_leak_into_next_transaction(
    database_dsn: str, alice: uuid.UUID
) -> None:
    async with Database(database_dsn, max_size=1, min_size=1) as single:
        async with single.user_uow(alice) as uow:
            row = await uow.fetchone("select current_user as u, auth.uid() as uid")
            assert row == {"u": "authenticated", "uid": alice}
            await uow.commit()
        async with single.privileged() as uow:  # same (only) pooled connection
            row = await uow.fetchone(
                "select current_user = session_user as own_role, auth.uid() as uid,"
                " current_setting('statement_timeout') as t"
            )
            assert row == {"own_role": True, "uid": None, "t": "0"}


async def test_unreachable_database_raises_quickly() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/none", timeout=1.0)
    await db.open(wait=False)
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.privileged():
                pass
    finally:
        await db.close()


async def test_telegram_principal_resolves_in_the_same_transaction(
    db: Database, alice: uuid.UUID, bob: uuid.UUID
) -> None:
    from services.db import TelegramUser
    from services.errors import NotLinked

    async with db.privileged() as uow:
        await uow.execute(
            "insert into telegram_links (telegram_user_id, user_id, chat_id, active)"
            " values (11, %s, 11, false), (22, %s, 22, true)",
            (alice, bob),
        )
        await uow.commit()
    async with db.user_uow(TelegramUser(11)) as uow:
        row = await uow.fetchone("select current_user as u, auth.uid() as uid")
        assert row == {"u": "authenticated", "uid": alice}
        assert uow.user_id == alice  # resolved with the first statement
        assert [
            r["user_id"] for r in await uow.fetchall("select user_id from telegram_links")
        ] == [alice]
        await uow.commit()
    async with db.privileged() as uow:  # writing again switched the link back on
        row = await uow.fetchone("select active from telegram_links where telegram_user_id = 11")
        assert row == {"active": True}
    with pytest.raises(NotLinked):  # the statement ran confined to nobody
        async with db.user_uow(TelegramUser(33)) as uow:
            await uow.fetchone("select count(*) from theaters")
    with pytest.raises(NotLinked):  # a write fails on its null user_id: still NotLinked
        async with db.user_uow(TelegramUser(33)) as uow:
            await uow.execute("insert into theaters (user_id, arm_type) values (auth.uid(), 'cs')")


async def test_one_statement_read_is_confined_read_only_and_leaves_nothing_behind(
    database_dsn: str, db: Database, alice: uuid.UUID, bob: uuid.UUID
) -> None:
    """A one-statement read (impersonation and read in one round trip, no BEGIN/COMMIT)
    confines the read like any unit of work, refuses writes, allows one statement only, and
    leaves neither role nor claims on the connection."""
    from services.db import TelegramUser
    from services.errors import NotLinked

    async with db.privileged() as uow:
        await uow.execute(
            "insert into theaters (user_id, arm_type) values (%s, 'cs'), (%s, 'ibm'), (%s, 'cs')",
            (alice, alice, bob),
        )
        await uow.execute(
            "insert into telegram_links (telegram_user_id, user_id, chat_id) values (51, %s, 51)",
            (alice,),
        )
        await uow.commit()
    probe = (
        "select current_user::text as who, auth.uid() as uid,"
        " (select count(*) from theaters)::int as theaters"
    )
    single = Database(database_dsn, min_size=1, max_size=1)  # one connection: reuse is seen
    await single.open()
    try:
        for who in (alice, TelegramUser(51)):
            async with single.user_uow(who, single=True) as uow:
                row = await uow.fetchone(probe)
                assert uow.user_id == alice
                with pytest.raises(RuntimeError, match="one-statement"):
                    await uow.fetchone("select 1")
            assert row == {"who": "authenticated", "uid": alice, "theaters": 2}
        with pytest.raises(NotLinked):  # no link: the read ran as nobody and saw nothing
            async with single.user_uow(TelegramUser(52), single=True) as uow:
                await uow.fetchone(probe)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            async with single.user_uow(alice, single=True) as uow:
                await uow.execute("update theaters set total_progress = 50")
        async with single.privileged() as uow:  # the same connection, afterwards
            after = await uow.fetchone(
                "select current_user::text as who,"
                " coalesce(current_setting('request.jwt.claims', true), '') as claims,"
                " current_setting('transaction_read_only') as ro,"
                " (select count(*) from theaters where total_progress = 50)::int as changed"
            )
        assert after == {"who": "postgres", "claims": "", "ro": "off", "changed": 0}
    finally:
        await single.close()
