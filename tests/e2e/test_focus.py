"""Focus sessions end to end through the Application, with the bot's clock moved by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import errors

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import Chat, Clock, bot_running, outage_settings

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def with_item(bot: BotEnv, user_id: int = 2001, title: str = "Read SICP") -> Chat:
    bot.clock.set(T0)
    chat = bot.chat(user_id)
    await chat.send("/start")
    await chat.send(f"/add cs 3 {title}")
    return chat


async def test_start_pause_resume_stop_logs_the_working_minutes(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    (card,) = await chat.send("/nba cs")
    (session,) = await chat.press(card, "▶ Start", replies=1)
    assert "Focus in cs: Read SICP" in session.plain_text
    assert "0 min worked" in session.plain_text

    bot.clock.advance(minutes=20)
    await chat.press(session, "⏸ Pause")
    paused = chat.message(session.message_id)
    assert "20 min worked" in paused.plain_text and "Paused" in paused.plain_text

    bot.clock.advance(minutes=15)  # not counted
    await chat.press(paused, "▶ Resume")
    resumed = chat.message(session.message_id)
    assert "20 min worked" in resumed.plain_text and "Paused" not in resumed.plain_text

    bot.clock.advance(minutes=10, seconds=40)  # 30 min 40 s of work: 31 min
    await chat.press(resumed, "⏹ Stop")
    ended = chat.message(session.message_id)
    assert "Focus ended: Read SICP" in ended.plain_text
    assert "Logged in cs: Read SICP (31 min)" in ended.plain_text
    assert "Overload risk" in ended.plain_text

    logs = await rows(db, "select id, action, duration from execution_logs")
    assert [(r["action"], r["duration"]) for r in logs] == [("Read SICP", 31)]
    (stored,) = await rows(
        db, "select stopped_at, paused_seconds, log_id, paused_at from focus_sessions"
    )
    assert stored["stopped_at"] == bot.clock() and stored["paused_seconds"] == 15 * 60
    assert stored["log_id"] == logs[0]["id"] and stored["paused_at"] is None
    # like the card's Progress: the item's early-progress bonus
    (item,) = await rows(db, "select has_early_progress_bonus from nba_items")
    assert item["has_early_progress_bonus"] is True

    # the ended session's buttons (a double tap, a stale client) only say so, log nothing more
    await chat.press_data(session.message_id, resumed.callback_data("⏹ Stop"))
    assert bot.emu.calls("answerCallbackQuery")[-1].params["text"] == (
        "That focus session has already ended."
    )
    assert "Focus ended: Read SICP" in chat.message(session.message_id).plain_text
    assert len(await rows(db, "select 1 from execution_logs")) == 1


async def test_done_completes_the_item_with_the_minutes(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    await chat.send("/add cs 1 Exercises")
    (session,) = await chat.send("/focus cs 25m")
    assert "25 min left" in session.plain_text
    bot.clock.advance(minutes=26)
    await chat.press(session, "✅ Done")
    done = chat.message(session.message_id)
    assert "Done: Read SICP" in done.plain_text
    assert "Next up in cs: Exercises" in done.plain_text
    assert await rows(db, "select action, duration from execution_logs") == [
        {"action": "Done: Read SICP", "duration": 26}
    ]
    (item,) = await rows(db, "select completed_at from nba_items where title = 'Read SICP'")
    assert item["completed_at"] == bot.clock()


async def test_a_short_session_logs_at_least_a_minute(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs")
    bot.clock.advance(seconds=10)
    await chat.press(session, "⏹ Stop")
    assert await rows(db, "select duration from execution_logs") == [{"duration": 1}]


async def test_a_restart_mid_session_loses_nothing(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    clock = Clock(T0)
    async with bot_running(emulator, database_dsn, clock=clock):
        chat = Chat(emulator, 3001)
        await chat.send("/start")
        await chat.send("/add ibm 2 Write the report")
        (session,) = await chat.send("/focus ibm")
        clock.advance(minutes=40)
        await chat.press(session, "⏸ Pause")
    clock.advance(minutes=30)  # paused while the bot is down
    async with bot_running(emulator, database_dsn, clock=clock):
        (status,) = await chat.send("/status")
        assert "Focus in ibm: Write the report · 40 min worked · ⏸ Paused." in status.plain_text
        await chat.press(chat.message(session.message_id), "▶ Resume")
    clock.advance(minutes=5)
    async with bot_running(emulator, database_dsn, clock=clock):
        await chat.press(chat.message(session.message_id), "⏹ Stop")
        assert "(45 min)" in chat.message(session.message_id).plain_text
    assert await rows(db, "select action, duration from execution_logs") == [
        {"action": "Write the report", "duration": 45}
    ]


async def test_a_second_start_asks_to_stop_and_log_the_first(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    await chat.send("/add ibm 2 Write the report")
    (first,) = await chat.send("/focus cs")
    bot.clock.advance(minutes=30)
    (asked,) = await chat.send("/focus ibm 50m")
    assert "already focusing on “Read SICP”" in asked.plain_text
    assert "(30 min)" in asked.plain_text
    assert len(await rows(db, "select 1 from focus_sessions")) == 1

    logged, second = await chat.press(asked, "⏹ Stop & log it", replies=2)
    assert "Logged in cs: Read SICP (30 min)" in logged.plain_text
    assert "Focus in ibm: Write the report" in second.plain_text
    assert "50 min left" in second.plain_text
    sessions = await rows(
        db, "select arm_type, stopped_at is null as running from focus_sessions order by arm_type"
    )
    assert sessions == [{"arm_type": "cs", "running": False}, {"arm_type": "ibm", "running": True}]
    # the first session's message, pressed later, logs nothing more
    await chat.press(first, "⏹ Stop")
    assert len(await rows(db, "select 1 from execution_logs")) == 1


async def test_keeping_the_first_session(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    await chat.send("/focus cs")
    (asked,) = await chat.send("/focus cs")
    await chat.press(asked, "Keep it going")
    assert "goes on" in chat.message(asked.message_id).plain_text
    assert await rows(db, "select 1 from execution_logs") == []
    assert len(await rows(db, "select 1 from focus_sessions where stopped_at is null")) == 1


async def test_status_shows_a_running_session(bot: BotEnv) -> None:
    chat = await with_item(bot)
    (nothing,) = await chat.send("/status")
    assert "Focus in" not in nothing.plain_text
    await chat.send("/focus cs 1h")
    bot.clock.advance(minutes=12)
    (status,) = await chat.send("/status")
    assert "Focus in cs: Read SICP · 12 min worked · 48 min left" in status.plain_text


async def test_focus_without_arguments_asks(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    (asked,) = await chat.send("/focus")
    assert "Focus on which theater?" in asked.plain_text
    await chat.press(asked, "cs · study")
    length = chat.message(asked.message_id)
    assert "for how long?" in length.plain_text
    (bad,) = await chat.send("forever")
    assert "Try again" in bad.plain_text
    (session,) = await chat.send("1h30")
    assert "1 h 30 min left" in session.plain_text
    await chat.send("/focus")
    (typed,) = await chat.send("cs 25m")  # the theater and the length typed at once
    assert "already focusing" in typed.plain_text


async def test_focus_on_an_empty_theater_says_what_to_do(bot: BotEnv) -> None:
    bot.clock.set(T0)
    chat = bot.chat(2002)
    await chat.send("/start")
    (reply,) = await chat.send("/focus ibm")
    assert "No open Next Best Action in ibm" in reply.plain_text
    await chat.send("/add cs 1 Something")
    await chat.send("/focus cs")
    (again,) = await chat.send("/focus ibm")  # not asked to stop a session for nothing
    assert "No open Next Best Action in ibm" in again.plain_text


async def test_over_twelve_hours_asks_before_logging(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs")
    bot.clock.advance(hours=13)
    (asked,) = await chat.press(session, "⏹ Stop", replies=1)
    assert "more than 12 hours" in asked.plain_text and "780 min" in asked.plain_text
    assert await rows(db, "select 1 from execution_logs") == []
    bot.clock.advance(minutes=5)  # the answer comes later: the minutes asked about are logged
    await chat.press(asked, "Yes, save it")
    assert await rows(db, "select duration from execution_logs") == [{"duration": 780}]


async def test_one_running_session_per_user_in_the_database(db: Database, alice: Any) -> None:
    async with db.privileged() as uow:
        await uow.execute(
            "insert into focus_sessions (user_id, arm_type, started_at) values (%s, 'cs', now())",
            (alice,),
        )
        await uow.commit()
    with pytest.raises(errors.UniqueViolation):
        async with db.privileged() as uow:
            await uow.execute(
                "insert into focus_sessions (user_id, arm_type, started_at)"
                " values (%s, 'ibm', now())",
                (alice,),
            )


async def user_of(db: Database, telegram_user_id: int) -> Any:
    (link,) = await rows(
        db, "select user_id from telegram_links where telegram_user_id = %s", telegram_user_id
    )
    return link["user_id"]


async def as_user(db: Database, user: Any, sql: str, *params: object) -> None:
    """A write of the user's own, as the Data API makes it (their JWT: RLS, their grants)."""
    async with db.user_uow(user) as uow:
        await uow.execute(sql, params or None)
        await uow.commit()


async def test_odd_values_written_through_the_data_api_are_clamped(
    bot: BotEnv, db: Database
) -> None:
    chat = await with_item(bot)
    user = await user_of(db, 2001)
    (session,) = await chat.send("/focus cs")
    # a start in the future, more paused seconds than ever elapsed, a pause before the start
    await as_user(
        db, user,
        "update focus_sessions set started_at = %s, paused_seconds = 300000000,"
        " paused_at = %s",
        datetime(2030, 1, 1, tzinfo=UTC), datetime(2001, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    (status,) = await chat.send("/status")
    assert "0 min worked" in status.plain_text
    resume = session.callback_data("⏸ Pause").replace(":pa:", ":re:")  # drawn before the edit
    await chat.press_data(session.message_id, resume)
    await chat.press(chat.message(session.message_id), "⏹ Stop")
    assert await rows(db, "select duration from execution_logs") == [{"duration": 1}]


async def test_a_session_started_days_ago_never_logs_more_than_log_allows(
    bot: BotEnv, db: Database
) -> None:
    chat = await with_item(bot)
    user = await user_of(db, 2001)
    (session,) = await chat.send("/focus cs")
    await as_user(
        db, user, "update focus_sessions set started_at = %s", datetime(2026, 11, 1, tzinfo=UTC)
    )
    (asked,) = await chat.press(session, "⏹ Stop", replies=1)
    assert "more than 12 hours" in asked.plain_text and "1440 min" in asked.plain_text
    await chat.press(asked, "Yes, save it")
    assert await rows(db, "select duration from execution_logs") == [{"duration": 1440}]


async def test_a_session_on_an_item_that_is_not_the_users_logs_plainly(
    bot: BotEnv, db: Database
) -> None:
    other = await with_item(bot, 2002, "Someone else's secret")
    await other.send("/focus cs")
    chat = await with_item(bot, 2001)
    (session,) = await chat.send("/focus cs")
    user = await user_of(db, 2001)
    (theirs,) = await rows(db, "select id from nba_items where title = 'Someone else''s secret'")
    await as_user(db, user, "update focus_sessions set item_id = %s", theirs["id"])
    bot.clock.advance(minutes=5)
    await chat.press(session, "⏹ Stop")
    ended = chat.message(session.message_id)
    assert "secret" not in ended.plain_text
    assert await rows(db, "select action, duration from execution_logs") == [
        {"action": "Focus session", "duration": 5}
    ]
    (item,) = await rows(db, "select has_early_progress_bonus from nba_items where id = %s",
                         theirs["id"])  # fmt: skip
    assert item["has_early_progress_bonus"] is False


@pytest.mark.slow
async def test_a_stop_during_an_outage_is_kept_with_the_time_of_the_press(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = outage_settings(tmp_path)
    clock = Clock(T0)
    async with bot_running(emulator, dsn, settings=settings, clock=clock):
        chat = Chat(emulator, 8101)
        await chat.send("/start")
        await chat.send("/add cs 3 Read SICP")
        (session,) = await chat.send("/focus cs")
        clock.advance(minutes=42)
        await asyncio.to_thread(pg.halt)
        (kept,) = await chat.press(session, "⏹ Stop", replies=1)
        assert "Your end of the focus session is saved on this server" in kept.plain_text
        clock.advance(minutes=30)  # the database comes back later: the press's time counts
        await asyncio.to_thread(pg.resume)
        (synced,) = await chat._wait(1, 60)
        assert "Synced: your end of the focus session is saved" in synced.plain_text
    async with Database(dsn, max_size=1) as db, db.privileged() as uow:
        logs = await uow.fetchall("select action, duration from execution_logs")
        sessions = await uow.fetchall("select stopped_at from focus_sessions")
    assert [dict(r) for r in logs] == [{"action": "Read SICP", "duration": 42}]
    assert [r["stopped_at"] for r in sessions] == [T0 + timedelta(minutes=42)]


async def test_a_switch_after_the_running_session_ended_starts_the_new_one(
    bot: BotEnv, db: Database
) -> None:
    chat = await with_item(bot)
    await chat.send("/add ibm 3 Write report")
    (session,) = await chat.send("/focus cs")
    bot.clock.advance(minutes=5)
    (asked,) = await chat.send("/focus ibm 25")
    await chat.press(session, "⏹ Stop")  # the question left open, the first one stopped
    (started,) = await chat.press(asked, "⏹ Stop & log it", replies=1)
    assert "Focus in ibm: Write report" in started.plain_text
    assert await rows(db, "select arm_type, duration from execution_logs") == [
        {"arm_type": "cs", "duration": 5}
    ]
    assert await rows(db, "select arm_type from focus_sessions where stopped_at is null") == [
        {"arm_type": "ibm"}
    ]


async def test_a_switch_answered_later_logs_the_minutes_it_showed(
    bot: BotEnv, db: Database
) -> None:
    chat = await with_item(bot)
    await chat.send("/add ibm 3 Write report")
    await chat.send("/focus cs")
    bot.clock.advance(minutes=20)
    (asked,) = await chat.send("/focus ibm")
    assert "Stop and log it (20 min)" in asked.plain_text
    bot.clock.advance(minutes=4)
    await chat.press(asked, "⏹ Stop & log it", replies=2)
    assert await rows(db, "select arm_type, duration from execution_logs") == [
        {"arm_type": "cs", "duration": 20}
    ]


@pytest.mark.slow
async def test_a_switch_during_an_outage_keeps_the_stop_and_the_new_start(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = outage_settings(tmp_path)
    clock = Clock(T0)
    async with bot_running(emulator, dsn, settings=settings, clock=clock):
        chat = Chat(emulator, 8111)
        await chat.send("/start")
        await chat.send("/add cs 3 Read SICP")
        await chat.send("/add ibm 3 Write report")
        await chat.send("/focus cs")
        clock.advance(minutes=30)
        (asked,) = await chat.send("/focus ibm")
        await asyncio.to_thread(pg.halt)
        await chat.press(asked, "⏹ Stop & log it", replies=2)  # both kept: told twice
        await asyncio.to_thread(pg.resume)
        await chat._wait(2, 60)
    async with Database(dsn, max_size=1) as db, db.privileged() as uow:
        logs = await uow.fetchall("select arm_type, duration from execution_logs")
        running = await uow.fetchall(
            "select arm_type from focus_sessions where stopped_at is null"
        )
    assert [dict(r) for r in logs] == [{"arm_type": "cs", "duration": 30}]
    assert [dict(r) for r in running] == [{"arm_type": "ibm"}]


async def test_keeping_a_session_that_ended_meanwhile_says_it_ended(
    bot: BotEnv, db: Database
) -> None:
    chat = await with_item(bot)
    await chat.send("/add ibm 3 Write report")
    (session,) = await chat.send("/focus cs")
    (asked,) = await chat.send("/focus ibm")
    await chat.press(session, "⏹ Stop")  # the question left open, the first one stopped
    await chat.press(asked, "Keep it going")
    answer = chat.message(asked.message_id).plain_text
    assert "already ended: nothing is running now" in answer
    assert await rows(db, "select 1 from focus_sessions where stopped_at is null") == []
