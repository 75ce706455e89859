"""Database outages: writes are kept in the outbox, replayed once, never lost or doubled."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator
from services import accounts, sync
from services.db import Database
from services.outbox import Outbox
from services.tracking import LogTime
from tests.harness import Chat, Clock, bot_running, cutting_proxy, outage_settings

pytestmark = pytest.mark.slow


async def count(dsn_or_db: str | Database, sql: str) -> list[dict[str, Any]]:
    if isinstance(dsn_or_db, Database):
        async with dsn_or_db.privileged() as uow:
            return [dict(r) for r in await uow.fetchall(sql)]
    async with Database(dsn_or_db, max_size=1) as db, db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


async def test_log_during_outage_is_kept_and_synced_once(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = outage_settings(tmp_path)
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
        with sqlite3.connect(tmp_path / "data" / "outbox.sqlite3") as conn:
            ((stored,),) = conn.execute("select payload from sync_queue").fetchall()
        kept_log = json.loads(stored)  # the command's name and fields
        assert kept_log["command"] == "log_time"
        fields = kept_log["fields"]
        assert fields["dedupe_key"].startswith("msg:8001:")
        assert sync.command_of(kept_log) == LogTime(
            arm="cs", minutes=40, action="read offline", dedupe_key=fields["dedupe_key"]
        )

        await asyncio.to_thread(pg.resume)
        (synced,) = await chat._wait(1, 30)
        assert "Synced: your log “read offline” in cs is saved" in synced.plain_text

    logs = await count(dsn, "select action, duration, details from execution_logs")
    assert logs == [{"action": "read offline", "duration": 40, "details": None}]
    queue = await count(dsn, "select operation, table_name, synced from sync_queue")
    assert queue == [{"operation": "INSERT", "table_name": "execution_logs", "synced": True}]


async def test_every_kind_of_write_is_kept_and_synced_through_the_chat(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """Each command a handler may keep: told what was kept, then what synced, by name."""
    pg, dsn = server
    settings = outage_settings(tmp_path)
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()):
        chat = Chat(emulator, 8005)
        await chat.send("/start")
        await chat.send("/block ibm travelling")
        await chat.send("/reflect cs")  # asks for the evidence
        await asyncio.to_thread(pg.halt)
        kept = {}
        for sent, what in (
            ("mock exam 78%", "reflection “mock exam 78%” in cs"),
            ("/add cs 3 Read chapter 4", "new NBA “Read chapter 4” in cs"),
            ("/progress cs 62.5", "cs progress 62.5%"),
            ("/energy 40", "energy split ibm 40%"),
            ("/unblock ibm", "unblocking ibm"),
            ("/block cs exams", "blocking cs"),
            ("/log ibm 30 review", "log “review” in ibm"),
        ):
            (reply,) = await chat.send(sent)
            assert f"Your {what} is saved on this server" in reply.plain_text, sent
            kept[what] = sent
        await asyncio.to_thread(pg.resume)
        synced = await chat._wait(len(kept), 60)
    assert [m.plain_text for m in synced] == [f"✅ Synced: your {what} is saved." for what in kept]
    assert await count(dsn, "select evidence from reflections") == [{"evidence": "mock exam 78%"}]
    assert await count(dsn, "select title, gap from nba_items") == [
        {"title": "Read chapter 4", "gap": 3}
    ]
    theaters = await count(
        dsn, "select arm_type, status, blocked_reason, total_progress from theaters order by 1"
    )
    assert [(t["status"], t["blocked_reason"]) for t in theaters] == [
        ("blocked", "exams"),
        ("active", None),
    ]
    assert theaters[0]["total_progress"] == Decimal("62.5")
    energy = await count(dsn, "select energy_allocation_ibm from global_metrics")
    assert energy == [{"energy_allocation_ibm": 40}]
    logs = await count(dsn, "select action, duration from execution_logs")
    assert logs == [{"action": "review", "duration": 30}]


async def test_restart_during_outage_still_syncs(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = outage_settings(tmp_path)
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
    kept = sync.payload(LogTime(arm="cs", minutes=15, action="kept"))
    entry = await outbox.add(9001, 9001, "INSERT", "execution_logs", kept, when)
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


async def test_entries_kept_in_the_old_format_still_replay(db: Database, tmp_path: Path) -> None:
    """An outbox file written before commands were typed ({"op": …, "args": …}, as the
    handlers of that version wrote each kind) replays through the same commands, in order,
    mixed with an entry in the current format."""
    created = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    await accounts.create_local_account(db, 9003, 9003, "A", created)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    old: list[tuple[str, str, str, dict[str, Any]]] = [
        ("INSERT", "execution_logs", "log_time", {"arm": "cs", "minutes": 15, "action": "read",
         "dedupe_key": "msg:9003:7", "confirmed": False}),
        ("INSERT", "reflections", "reflect", {"arm": "ibm", "evidence": "PR #12 merged"}),
        ("INSERT", "nba_items", "add_item", {"arm": "cs", "gap": 4, "title": "Chapter 3"}),
        ("UPDATE", "theaters", "set_progress", {"arm": "cs", "value": "62.5"}),
        ("UPDATE", "global_metrics", "set_energy", {"ibm_share": 70}),
        ("UPDATE", "theaters", "block", {"arm": "cs", "reason": "exams"}),
        ("UPDATE", "theaters", "block", {"arm": "ibm", "reason": None}),
        ("UPDATE", "theaters", "unblock", {"arm": "ibm"}),
    ]  # fmt: skip
    for n, (operation, table, op, args) in enumerate(old, 1):
        when = created + timedelta(minutes=n)
        await outbox.add(9003, 9003, operation, table, {"op": op, "args": args}, when)
    current = sync.payload(LogTime(arm="ibm", minutes=30, action="review"))
    await outbox.add(9003, 9003, "INSERT", "execution_logs", current, created + timedelta(hours=1))

    report = await sync.replay(db, outbox)

    assert report.parked == [] and report.superseded == [] and report.failing == []
    assert [sync.describe(e) for e in report.synced] == [
        "log “read” in cs",
        "reflection “PR #12 merged” in ibm",
        "new NBA “Chapter 3” in cs",
        "cs progress 62.5%",
        "energy split ibm 70%",
        "blocking cs",
        "blocking ibm",
        "unblocking ibm",
        "log “review” in ibm",
    ]
    logs = await count(db, "select arm_type, action, duration from execution_logs order by 3")
    assert logs == [
        {"arm_type": "cs", "action": "read", "duration": 15},
        {"arm_type": "ibm", "action": "review", "duration": 30},
    ]
    assert await count(db, "select evidence from reflections") == [{"evidence": "PR #12 merged"}]
    assert await count(db, "select title, gap from nba_items") == [
        {"title": "Chapter 3", "gap": 4}
    ]
    theaters = await count(
        db, "select arm_type, total_progress, status, blocked_reason from theaters order by 1"
    )
    assert [(t["arm_type"], t["status"], t["blocked_reason"]) for t in theaters] == [
        ("cs", "blocked", "exams"),
        ("ibm", "active", None),
    ]
    assert theaters[0]["total_progress"] == Decimal("62.5")
    energy = await count(
        db, "select energy_allocation_ibm, energy_allocation_cs from global_metrics"
    )
    assert energy == [{"energy_allocation_ibm": 70, "energy_allocation_cs": 30}]
    # Recorded once each in the database's sync_queue, with the payload as it was kept.
    queue = await count(db, "select payload from sync_queue order by timestamp")
    assert [q["payload"] for q in queue[:2]] == [
        {"op": "log_time", "args": old[0][3]},
        {"op": "reflect", "args": old[1][3]},
    ]
    assert queue[-1]["payload"] == current
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
    settings = outage_settings(tmp_path)
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


async def test_a_press_whose_commit_answer_is_lost_says_it_may_be_saved(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    """Lock is not kept in the outbox: when the connection breaks after its COMMIT was sent,
    the person hears that it may have been saved (it was), not that nothing was changed."""
    async with (
        cutting_proxy(database_dsn) as (dsn, proxy),
        bot_running(emulator, dsn, clock=Clock()),
    ):
        chat = Chat(emulator, 9401)
        await chat.send("/start")
        await chat.send("/add cs 3 Chapter 3")
        (card,) = await chat.send("/nba cs")
        proxy.arm(b"commit")
        await chat.press(card, "🔒 Lock")
        assert proxy.cut.is_set()
        told = emulator.callback_answers[-1].text or ""
        assert "can't tell whether it was saved" in told
        assert "nothing was changed" not in told
    async with db.privileged() as uow:
        locked = await uow.fetchall("select is_locked from nba_items")
    assert [r["is_locked"] for r in locked] == [True]
