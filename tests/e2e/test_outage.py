"""Database outages: writes are kept in the outbox, replayed once, never lost or doubled."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator
from services import accounts, sync
from services.db import Database
from services.outbox import Outbox
from tests.harness import Chat, Clock, bot_running, make_settings

pytestmark = pytest.mark.slow


async def count(dsn: str, sql: str) -> list[dict[str, Any]]:
    async with Database(dsn, max_size=1) as db, db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


async def test_log_during_outage_is_kept_and_synced_once(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = make_settings(data_dir=tmp_path / "data", db_connect_timeout_seconds=2)
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()):
        chat = Chat(emulator, 8001)
        await chat.send("/start")
        await chat.send("/log cs 40")  # the conversation asks for the action
        await asyncio.to_thread(pg.halt)
        loop = asyncio.get_running_loop()
        started = loop.time()
        (kept,) = await chat.send("read offline")
        waited = loop.time() - started
        assert "can't reach the database" in kept.plain_text
        assert "will sync" in kept.plain_text
        assert waited < 8, waited  # told within seconds, not after a long timeout
        (status,) = await chat.send("/status")  # a read says so instead of failing silently
        assert "can't reach the database" in status.plain_text

        await asyncio.to_thread(pg.resume)
        (synced,) = await chat._wait(1, 30)
        assert "Synced: your log “read offline” in cs is saved" in synced.plain_text

    logs = await count(dsn, "select action, duration, details from execution_logs")
    assert logs == [{"action": "read offline", "duration": 40, "details": None}]
    queue = await count(dsn, "select operation, table_name, synced from sync_queue")
    assert queue == [{"operation": "INSERT", "table_name": "execution_logs", "synced": True}]


async def test_restart_during_outage_still_syncs(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = make_settings(data_dir=tmp_path / "data", db_connect_timeout_seconds=2)
    chat = Chat(emulator, 8002)
    async with bot_running(emulator, dsn, settings=settings):
        await chat.send("/start")
        await asyncio.to_thread(pg.halt)
        (kept,) = await chat.send("/log ibm 30 review while down")
        assert "will sync" in kept.plain_text

    # The bot restarts while the database is still down: it waits for it instead of crashing.
    async def second_run() -> None:
        async with bot_running(emulator, dsn, settings=settings):
            await chat._wait(1, 40)

    restarted = asyncio.create_task(second_run())
    await asyncio.sleep(1.5)
    assert not restarted.done()
    await asyncio.to_thread(pg.resume)
    await asyncio.wait_for(restarted, 60)
    assert "Synced: your log “review while down” in ibm" in chat.last().plain_text
    logs = await count(dsn, "select action, duration from execution_logs")
    assert logs == [{"action": "review while down", "duration": 30}]


async def test_replay_applies_each_entry_once(db: Database, tmp_path: Path) -> None:
    await accounts.create_local_account(db, 9001, 9001, "A", datetime.now(UTC))
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    when = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    entry = await outbox.add(
        9001, 9001, "INSERT", "execution_logs",
        {"op": "log_time", "args": {"arm": "cs", "minutes": 15, "action": "kept"}}, when,
    )  # fmt: skip
    report = await sync.replay(db, outbox)
    assert [e.id for e in report.synced] == [entry]
    # A crash after the database commit but before the outbox noted it: replay again.
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as conn:
        conn.execute("update sync_queue set synced = 0")
    report = await sync.replay(db, outbox)
    assert [e.id for e in report.skipped] == [entry] and report.synced == []
    async with db.privileged() as uow:
        logs = await uow.fetchall("select action, timestamp from execution_logs")
        sync_time = await uow.fetchone("select last_sync_time from global_metrics")
    assert [dict(r) for r in logs] == [{"action": "kept", "timestamp": when}]
    assert sync_time is not None and sync_time["last_sync_time"] > when
    assert await outbox.count_pending() == 0
    outbox.close()


async def test_entry_that_can_never_apply_is_parked_and_reported_once(
    db: Database, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    await outbox.add(
        424242, 424242, "INSERT", "execution_logs",
        {"op": "log_time", "args": {"arm": "cs", "minutes": 15, "action": "orphan"}},
        datetime.now(UTC),
    )  # fmt: skip
    reports = [await sync.replay(db, outbox) for _ in range(3)]
    assert [len(r.parked) for r in reports] == [1, 0, 0]
    assert "isn't linked to Aelpher" in reports[0].parked[0][1]
    assert await outbox.count_pending() == 0  # parked: never retried, blocks nobody
    assert [reason for _, reason in await outbox.parked()] == [reports[0].parked[0][1]]
    outbox.close()


async def test_during_an_outage_an_abandoned_question_takes_no_answer(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = make_settings(data_dir=tmp_path / "data", db_connect_timeout_seconds=2)
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()):
        chat = Chat(emulator, 8004)
        await chat.send("/start")
        await chat.send("/log cs 40")  # asks for the action
        await chat.send("/status")  # abandons it
        await asyncio.to_thread(pg.halt)
        try:
            (reply,) = await chat.send("read offline")
            assert "can't reach the database" in reply.plain_text
            assert "will sync" not in reply.plain_text  # nothing was kept as a log
        finally:
            await asyncio.to_thread(pg.resume)
    assert await count(dsn, "select 1 from execution_logs") == []
