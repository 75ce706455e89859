"""The outbox under hostile and unlucky use: parked entries, strangers, caps, /delete, the
order of replayed and live changes, and NUL characters.

The outages are real: a PostgreSQL of the test's own is stopped and started again. The replay
job is taken off the schedule and run by the test, so that what happens between the database
coming back and the replay is up to the test.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from telegram.ext import CallbackContext

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator
from handlers.deps import get_deps
from handlers.outbox import replay_job
from services import accounts, sync
from services.db import Database, DatabaseUnavailable
from services.outbox import Outbox
from services.tracking import SetProgress
from tests.conftest import BotEnv
from tests.harness import Chat, Clock, bot_running, make_settings, outage_settings

pytestmark = pytest.mark.slow

KEPT = "will sync"
UNREACHABLE = "nothing was changed"


async def rows(dsn_or_db: str | Database, sql: str, *params: object) -> list[dict[str, Any]]:
    if isinstance(dsn_or_db, Database):
        async with dsn_or_db.privileged() as uow:
            return [dict(r) for r in await uow.fetchall(sql, params or None)]
    async with Database(dsn_or_db, max_size=1) as db, db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


def outbox_of(app: Any) -> Outbox:
    outbox = get_deps(app.bot_data).outbox
    assert outbox is not None
    return outbox


def without_replay_job(app: Any) -> None:
    """The test runs the replay itself (``replay``)."""
    for job in app.job_queue.get_jobs_by_name("outbox-replay"):
        job.schedule_removal()


async def replay(app: Any) -> None:
    await replay_job(CallbackContext(app))


async def until_reachable(app: Any, tries: int = 60) -> None:
    """After a restart of the database: wait until the bot's pool reaches it again (each
    stale pooled connection fails once and is dropped)."""
    db = get_deps(app.bot_data).db
    for _ in range(tries):
        try:
            async with db.privileged(read_only=True) as uow:
                await uow.fetchone("select 1 as one")
            await db.pool.check()
            return
        except DatabaseUnavailable:
            await asyncio.sleep(0.5)
    raise AssertionError("the database did not come back")


def texts(emu: BotApiEmulator, chat_id: int) -> list[str]:
    return [m.plain_text for m in emu.sent(chat_id)]


# --- (b), (c), (f): who may keep writes, how many, and what is refused ------------------------


async def test_outage_keeps_only_linked_users_writes_within_the_caps(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = make_settings(
        data_dir=tmp_path / "data",
        db_connect_timeout_seconds=2,
        outbox_max_per_user=2,
        outbox_max_total=3,
    )
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()) as app:
        without_replay_job(app)
        ann, bea, cid = Chat(emulator, 8101), Chat(emulator, 8102), Chat(emulator, 8103)
        for chat in (ann, bea, cid):
            await chat.send("/start")
        stranger = Chat(emulator, 8109)  # talked to the bot, never linked
        await stranger.send("/help")
        outbox = outbox_of(app)
        await asyncio.to_thread(pg.halt)

        (refused,) = await stranger.send("/log cs 20 filling your disk")
        assert UNREACHABLE in refused.plain_text and KEPT not in refused.plain_text
        (refused,) = await stranger.send("/progress cs 99")
        assert UNREACHABLE in refused.plain_text and KEPT not in refused.plain_text
        assert await outbox.count_pending(8109) == 0

        for action in ("one", "two"):
            (kept,) = await ann.send(f"/log cs 10 {action}")
            assert KEPT in kept.plain_text
        (full,) = await ann.send("/log cs 10 three")
        assert "keeping 2 of your changes" in full.plain_text
        assert "NOT saved" in full.plain_text and KEPT not in full.plain_text

        (nul,) = await bea.send("/log cs 10 bad\x00action")
        assert nul.plain_text == (
            "Action can't contain the NUL character (\\x00): remove it and send it again."
        )
        (kept,) = await bea.send("/log cs 10 bea's")
        assert KEPT in kept.plain_text
        (full,) = await cid.send("/log cs 10 cid's")
        assert "store for offline changes is full" in full.plain_text
        assert [await outbox.count_pending(u) for u in (8101, 8102, 8103, 8109)] == [2, 1, 0, 0]

        await asyncio.to_thread(pg.resume)
        await until_reachable(app)
        await replay(app)
        assert await outbox.count_pending() == 0

    logs = await rows(dsn, "select action from execution_logs order by action")
    assert [r["action"] for r in logs] == ["bea's", "one", "two"]
    assert not any("Synced" in t for t in texts(emulator, 8109))


# --- (a): entries that can never apply are parked and block nobody -----------------------------


async def test_entries_that_cannot_apply_are_parked_told_once_and_block_nobody(
    bot: BotEnv, db: Database
) -> None:
    without_replay_job(bot.app)
    ann = bot.chat(8401)
    await ann.send("/start")
    ghost = bot.chat(8402)  # never linked: 150 entries of theirs come first
    await ghost.send("/help")
    outbox = outbox_of(bot.app)
    when = datetime.now(UTC)

    def log(action: str) -> dict[str, Any]:
        return {"op": "log_time", "args": {"arm": "cs", "minutes": 5, "action": action}}

    for n in range(150):
        await outbox.add(8402, 8402, "INSERT", "execution_logs", log(f"ghost {n}"), when)
    # entries that passed no validation (an older version kept them)
    await outbox.add(8401, 8401, "INSERT", "execution_logs", log("nul\x00byte"), when)
    await outbox.add(8401, 8401, "INSERT", "execution_logs", {"op": "explode"}, when)
    await outbox.add(8401, 8401, "INSERT", "execution_logs", {"op": "log_time", "args": 7}, when)
    await outbox.add(8401, 8401, "INSERT", "execution_logs", log("good"), when)
    with sqlite3.connect(outbox.path) as conn:  # a payload no JSON reader takes
        conn.execute(
            "insert into sync_queue (id, telegram_user_id, chat_id, operation, table_name,"
            " payload, timestamp) values ('00000000-0000-0000-0000-00000000beef', 8401, 8401,"
            " 'INSERT', 'execution_logs', '{not json', ?)",
            (when.isoformat(),),
        )
    seen_ann, seen_ghost = len(bot.emu.sent(8401)), len(bot.emu.sent(8402))

    await replay(bot.app)

    assert await outbox.count_pending() == 0
    assert len(await outbox.parked()) == 154
    told_ann = texts(bot.emu, 8401)[seen_ann:]
    assert told_ann[0] == "✅ Synced: your log “good” in cs is saved."
    (parked,) = told_ann[1:]
    assert "couldn't save what you sent while the database was down" in parked
    assert "Action can't contain the NUL character" in parked
    assert parked.count("its stored payload is unreadable") == 2
    assert "unknown kind of change" in parked
    (told_ghost,) = texts(bot.emu, 8402)[seen_ghost:]  # one notice for 150 entries
    assert "isn't linked to Aelpher" in told_ghost and "…and 140 more." in told_ghost

    await replay(bot.app)  # told once: nothing is retried, nobody hears again
    assert texts(bot.emu, 8401)[seen_ann:] == told_ann
    assert len(texts(bot.emu, 8402)) == seen_ghost + 1
    logs = await rows(db, "select action from execution_logs")
    assert logs == [{"action": "good"}]


async def test_a_failing_entry_holds_back_only_its_authors_later_entries(
    bot: BotEnv, db: Database
) -> None:
    without_replay_job(bot.app)
    ann, bea = bot.chat(8501), bot.chat(8502)
    for chat in (ann, bea):
        await chat.send("/start")
    outbox = outbox_of(bot.app)
    when = datetime.now(UTC)
    for who, action in ((8501, "a1"), (8501, "a2"), (8502, "b1")):
        args = {"arm": "cs", "minutes": 5, "action": action}
        await outbox.add(
            who, who, "INSERT", "execution_logs", {"op": "log_time", "args": args}, when
        )
    # The database refuses "a1" for now (an error that is not a rule of the bot).
    async with db.privileged() as uow:
        await uow.execute(
            "create function pg_temp_refuse_a1() returns trigger language plpgsql as"
            " $$ begin raise exception 'not now'; end $$"
        )
        await uow.execute(
            "create trigger refuse_a1 before insert on execution_logs for each row"
            " when (new.action = 'a1') execute function pg_temp_refuse_a1()"
        )
        await uow.commit()
    try:
        await replay(bot.app)
        assert await outbox.count_pending(8501) == 2  # a2 waits behind a1
        assert await outbox.count_pending(8502) == 0  # bea's went on
        actions = await rows(db, "select action from execution_logs")
        assert actions == [{"action": "b1"}]
    finally:
        async with db.privileged() as uow:
            await uow.execute("drop trigger if exists refuse_a1 on execution_logs")
            await uow.execute("drop function if exists pg_temp_refuse_a1()")
            await uow.commit()
    await replay(bot.app)
    assert await outbox.count_pending() == 0
    synced = [t for t in texts(bot.emu, 8501) if t.startswith("✅ Synced")]
    assert synced == [
        "✅ Synced: your log “a1” in cs is saved.",
        "✅ Synced: your log “a2” in cs is saved.",
    ]


# --- (d): /delete drops the user's kept writes ------------------------------------------------


async def test_delete_drops_kept_writes_and_stops_keeping_new_ones(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = outage_settings(tmp_path)
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()) as app:
        without_replay_job(app)
        chat = Chat(emulator, 8301)
        await chat.send("/start")
        outbox = outbox_of(app)
        await asyncio.to_thread(pg.halt)
        (kept,) = await chat.send("/log cs 20 written offline")
        assert KEPT in kept.plain_text
        await asyncio.to_thread(pg.resume)
        await until_reachable(app)

        (prompt,) = await chat.send("/delete")
        await chat.press(prompt, "Yes, delete everything")
        assert "Deleted" in chat.message(prompt.message_id).plain_text
        assert await outbox.count_pending(8301) == 0
        with sqlite3.connect(outbox.path) as conn:
            left = conn.execute("select count(*) from sync_queue where telegram_user_id = 8301")
            assert left.fetchone() == (0,)

        await asyncio.to_thread(pg.halt)  # no longer linked: nothing of theirs is kept
        (refused,) = await chat.send("/log cs 5 after the delete")
        assert UNREACHABLE in refused.plain_text and KEPT not in refused.plain_text
        assert await outbox.count_pending(8301) == 0
        await asyncio.to_thread(pg.resume)
        await until_reachable(app)
        await replay(app)
    assert await rows(dsn, "select action from execution_logs") == []


# --- (e): a replayed set never overwrites a newer live change ---------------------------------


async def test_live_change_after_the_outage_wins_over_the_replayed_one(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = outage_settings(tmp_path)
    async with bot_running(emulator, dsn, settings=settings, clock=Clock()) as app:
        without_replay_job(app)
        chat = Chat(emulator, 8201)
        await chat.send("/start")
        await chat.send("/progress cs 10")
        await chat.send("/energy 50")
        await asyncio.to_thread(pg.halt)
        for command in (
            "/progress cs 40",
            "/log cs 15 offline reading",
            "/energy 70",
            "/block ibm travelling",
        ):
            (kept,) = await chat.send(command)
            assert KEPT in kept.plain_text, command
        await asyncio.to_thread(pg.resume)
        await until_reachable(app)
        (live,) = await chat.send("/progress cs 50")  # before the replay ran
        assert "progress set to 50%" in live.plain_text
        (live,) = await chat.send("/unblock ibm")
        assert "is unblocked" in live.plain_text
        seen = len(emulator.sent(8201))

        await replay(app)

        told = texts(emulator, 8201)[seen:]
        assert "✅ Synced: your log “offline reading” in cs is saved." in told
        assert "✅ Synced: your energy split ibm 70% is saved." in told
        (skipped,) = [t for t in told if t.startswith("⏭ Skipped")]
        assert "cs progress 40%: you changed the cs progress again" in skipped
        assert "blocking ibm: you changed the ibm block again" in skipped
        assert await outbox_of(app).count_pending() == 0

    theaters = await rows(dsn, "select arm_type, total_progress, status from theaters")
    by_arm = {r["arm_type"]: r for r in theaters}
    assert by_arm["cs"]["total_progress"] == 50
    assert by_arm["ibm"]["status"] != "blocked"
    metrics = await rows(dsn, "select energy_allocation_ibm from global_metrics")
    assert metrics == [{"energy_allocation_ibm": 70}]  # no live change after: the replay applied
    logs = await rows(dsn, "select action from execution_logs")
    assert logs == [{"action": "offline reading"}]


async def test_kept_sets_apply_in_the_order_they_were_sent(db: Database, tmp_path: Path) -> None:
    """Kept writes never supersede each other; only a live change does."""
    await accounts.create_local_account(db, 8601, 8601, "A", datetime(2026, 11, 20, tzinfo=UTC))
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    when = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # the same moment for both (a fixed clock)
    for value in (40, 45):
        payload = sync.payload(SetProgress(arm="cs", value=Decimal(value)))
        await outbox.add(8601, 8601, "UPDATE", "theaters", payload, when)
    report = await sync.replay(db, outbox)
    assert len(report.synced) == 2 and report.superseded == []
    theaters = await rows(db, "select total_progress from theaters where arm_type = 'cs'")
    assert theaters == [{"total_progress": 45}]
    outbox.close()


# --- (f): NUL characters through the running bot ----------------------------------------------


async def test_nul_characters_are_refused_naming_the_field(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(8701, first_name="Ada\x00")  # a name is stored with the account
    (welcome,) = await chat.send("/start")
    assert "Welcome to Aelpher" in welcome.plain_text
    (reply,) = await chat.send("/add cs 3 Read\x00SICP")
    assert reply.plain_text == (
        "Title can't contain the NUL character (\\x00): remove it and send it again."
    )
    (reply,) = await chat.send("/reflect cs passed\x00 the exam")
    assert reply.plain_text.startswith("Evidence can't contain the NUL character")
    (reply,) = await chat.send("/block ibm away\x00")
    assert reply.plain_text.startswith("Reason can't contain the NUL character")
    (reply,) = await chat.send("/progress cs 4\x000")
    assert reply.plain_text.startswith("Progress can't contain the NUL character")
    await chat.send("/log cs 30")  # a guided question: the action, typed
    (reply,) = await chat.send("read\x00chapter")
    assert reply.plain_text.startswith("Action can't contain the NUL character")
    written = await rows(
        db,
        "select (select count(*) from execution_logs) + (select count(*) from nba_items)"
        " + (select count(*) from reflections) as n",
    )
    assert written == [{"n": 0}]
    blocked = await rows(db, "select status from theaters where arm_type = 'ibm'")
    assert blocked != [{"status": "blocked"}]


async def test_a_kept_write_of_a_user_removed_from_the_allow_list_is_not_replayed(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """Removed while their write waited: it is parked, nothing of theirs is written, their
    link stays off (no nudges) and the bot doesn't write to them."""
    pg, dsn = server
    me, other = 8121, 8122
    both = make_settings(
        data_dir=tmp_path / "data",
        db_connect_timeout_seconds=2,
        allowed_telegram_user_ids=f"{me},{other}",
    )
    async with bot_running(emulator, dsn, settings=both, clock=Clock()) as app:
        without_replay_job(app)
        chat = Chat(emulator, me)
        await chat.send("/start")
        await asyncio.to_thread(pg.halt)
        (kept,) = await chat.send("/log cs 30 offline work")
        assert KEPT in kept.plain_text
    await asyncio.to_thread(pg.resume)
    only_other = make_settings(
        data_dir=tmp_path / "data",
        db_connect_timeout_seconds=2,
        allowed_telegram_user_ids=str(other),
    )
    async with bot_running(emulator, dsn, settings=only_other, clock=Clock()) as app:
        without_replay_job(app)
        await until_reachable(app)
        told = len(emulator.sent(me))
        await replay(app)
        assert await outbox_of(app).count_pending(me) == 0  # parked, not waiting
        assert len(emulator.sent(me)) == told  # no "synced", no notice
    async with Database(dsn, max_size=1) as db, db.privileged(read_only=True) as uow:
        logs = await uow.fetchall("select 1 from execution_logs")
        links = await uow.fetchall("select active from telegram_links")
    assert logs == []
    assert [dict(r) for r in links] == [{"active": False}]
