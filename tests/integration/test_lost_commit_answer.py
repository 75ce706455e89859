"""A write whose COMMIT reached the database but whose answer was lost on the way back.

The one-round-trip writes send the opening, the write and COMMIT together, so a connection
that breaks after sending them leaves the client not knowing whether they applied: the
command is kept in the outbox (as in an outage) and replayed. The replay must not apply it
a second time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services import accounts, nba, sync
from services.commands import Command
from services.db import CommitUnknown, Database, TelegramUser
from services.nba import AddItem
from services.outbox import Outbox
from services.tracking import LogTime, Reflect
from tests.harness import CuttingProxy, cutting_proxy

T0 = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
TG = 7101


@contextlib.asynccontextmanager
async def cut_once(
    dsn: str, *, pooler: bool = False
) -> AsyncIterator[tuple[Database, CuttingProxy]]:
    async with cutting_proxy(dsn) as (proxied, proxy):
        db = Database(proxied, max_size=2, transaction_pooler=pooler)
        await db.open()
        try:
            yield db, proxy
        finally:
            await db.close()


async def rows(db: Database, sql: str) -> list[dict[str, object]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


@pytest.mark.parametrize("pooler", [False, True], ids=["direct", "pooler"])
@pytest.mark.parametrize(
    ("command", "table"),
    [
        (LogTime(arm="cs", minutes=30, action="read", dedupe_key="msg:7101:1"), "execution_logs"),
        (AddItem(arm="cs", gap=3, title="Chapter 3"), "nba_items"),
        (Reflect(arm="cs", evidence="mock exam 78%"), "reflections"),
    ],
)
async def test_a_write_whose_answer_was_lost_is_applied_once(
    db: Database,
    database_dsn: str,
    tmp_path: Path,
    command: Command[object],
    table: str,
    pooler: bool,
) -> None:
    await accounts.create_local_account(db, TG, TG, "A", T0)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.remember_linked(TG)
    async with cut_once(database_dsn, pooler=pooler) as (cut_db, proxy):
        await sync.perform(cut_db, outbox, TelegramUser(TG), TG, command, T0)  # warm the pool
        await db_delete(db, table)
        proxy.arm()
        kept = await sync.perform(cut_db, outbox, TelegramUser(TG), TG, command, T0)
        assert proxy.cut.is_set()
    assert isinstance(kept, sync.Queued)
    assert len(await rows(db, f"select id from {table}")) == 1  # the COMMIT went through
    report = await sync.replay(db, outbox)
    assert report.failing == [] and report.parked == []
    assert len(await rows(db, f"select id from {table}")) == 1
    outbox.close()


async def db_delete(db: Database, table: str) -> None:
    async with db.privileged() as uow:
        await uow.execute(f"delete from {table}")
        await uow.commit()


async def test_a_write_not_kept_says_its_fate_is_unknown(db: Database, database_dsn: str) -> None:
    """Lock and Done are not kept in the outbox: the person must hear that the change may
    have been saved, not that nothing was changed."""
    await accounts.create_local_account(db, TG, TG, "A", T0)
    added = await nba.add_item(db, TelegramUser(TG), "cs", 3, "Chapter 3", T0)
    async with cut_once(database_dsn) as (cut_db, proxy):
        await nba.view(cut_db, TelegramUser(TG), ["cs"], T0)  # warm the pool
        proxy.arm(b"commit")
        with pytest.raises(CommitUnknown):
            await nba.lock(cut_db, TelegramUser(TG), added.item.id, T0)
        assert proxy.cut.is_set()
        proxy.cut.clear()
        proxy.arm(b"commit")
        with pytest.raises(CommitUnknown):
            await nba.done(cut_db, TelegramUser(TG), added.item.id, T0, dedupe_key="cb:1")
    assert await rows(db, "select is_locked, completed_at from nba_items") == [
        {"is_locked": False, "completed_at": T0}
    ]
