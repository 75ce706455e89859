"""A focus session's message redrawn once a minute, its "Time's up" and "Still working?",
the default length from /settings: end to end through the Application, with the bot's clock
moved by hand and the jobs run by the test (as the JobQueue would run them when due).

The start, pause, resume and stop themselves are in test_focus.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.embedded_db import EmbeddedPostgres
from bot.local_api import BotApiEmulator, SentMessage
from handlers.focus import arm_running
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import (
    Chat,
    Clock,
    bot_running,
    data_api,
    outage_settings,
    two_instances,
)

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def with_item(bot: BotEnv, user_id: int = 2101) -> Chat:
    bot.clock.set(T0)
    chat = bot.chat(user_id)
    await chat.send("/start")
    await chat.send("/add cs 3 Read SICP")
    return chat


def jobs(app: Any, kind: str) -> list[Any]:
    """The app's jobs of ``kind`` (``focus-tick``, ``focus-alarm``)."""
    return [j for j in app.job_queue.jobs() if j.name and j.name.startswith(f"{kind}:")]


async def armed(app: Any, kind: str) -> list[Any]:
    """The app's jobs of ``kind``, once there are some (a session's jobs are armed just after
    its message is sent, which is when the test sees the reply)."""
    for _ in range(100):
        found = jobs(app, kind)
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} job")


async def run(app: Any, kind: str, chat: Chat) -> None:
    """Run the app's jobs of ``kind`` now, as the JobQueue does when they are due."""
    found = await armed(app, kind)
    for job in found:
        await job.run(app)
    await chat.settle()


def sent_like(emu: BotApiEmulator, chat: Chat, text: str) -> list[SentMessage]:
    """The messages sent to ``chat`` that show ``text`` now."""
    return [m for m in emu.sent(chat.user_id) if text in m.plain_text]


def times_sent(emu: BotApiEmulator, text: str) -> int:
    """How many messages were sent with ``text`` (whatever they show now)."""
    return len([c for c in emu.calls("sendMessage") if text in str(c.params.get("text"))])


async def test_the_session_message_is_redrawn_once_a_minute(bot: BotEnv) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs 25m")
    assert "0 min worked · 25 min left" in session.plain_text
    edits = len(bot.emu.calls("editMessageText"))

    bot.clock.advance(minutes=1, seconds=5)
    await run(bot.app, "focus-tick", chat)
    shown = chat.message(session.message_id)
    assert "1 min worked · 24 min left" in shown.plain_text
    assert [b for row in shown.buttons for b, _ in row] == ["⏸ Pause", "⏹ Stop", "✅ Done"]
    assert len(bot.emu.calls("editMessageText")) == edits + 1

    await run(bot.app, "focus-tick", chat)  # nothing changed: no edit
    bot.clock.advance(seconds=30)
    await run(bot.app, "focus-tick", chat)  # still "1 min": no edit
    assert len(bot.emu.calls("editMessageText")) == edits + 1

    await chat.press(shown, "⏸ Pause")
    bot.clock.advance(minutes=10)  # paused: what it shows does not change
    edits = len(bot.emu.calls("editMessageText"))
    await run(bot.app, "focus-tick", chat)
    assert len(bot.emu.calls("editMessageText")) <= edits + 1  # at most the pause's own text
    assert "1 min worked · 24 min left" in chat.message(session.message_id).plain_text


async def test_redraws_stop_quietly_once_telegram_refuses_an_edit(bot: BotEnv) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs")
    bot.clock.advance(minutes=2)
    bot.emu.fail_next(
        "editMessageText", status=400, description="Bad Request: message to edit not found"
    )
    await run(bot.app, "focus-tick", chat)
    edits = len(bot.emu.calls("editMessageText"))
    bot.clock.advance(minutes=3)
    for job in jobs(bot.app, "focus-tick"):  # a job already due runs once more
        await job.run(bot.app)
    await chat.settle()
    assert len(bot.emu.calls("editMessageText")) == edits  # no more tries
    assert jobs(bot.app, "focus-tick") == []
    assert "0 min worked" in chat.message(session.message_id).plain_text
    # the session itself goes on
    await chat.press(chat.message(session.message_id), "⏹ Stop")
    assert "(5 min)" in chat.message(session.message_id).plain_text


async def test_a_moments_refusal_only_skips_that_minute(bot: BotEnv) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs")
    bot.clock.advance(minutes=2)
    bot.emu.fail_next("editMessageText", status=429, retry_after=1)
    await run(bot.app, "focus-tick", chat)
    bot.clock.advance(minutes=1)
    await run(bot.app, "focus-tick", chat)
    assert "3 min worked" in chat.message(session.message_id).plain_text


async def test_times_up_once_then_plus_ten_then_again(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    await chat.send("/settings quiet 08:00-10:00")  # 09:00 is quiet: time's up rings anyway
    (session,) = await chat.send("/focus cs 25m")
    bot.clock.advance(minutes=25)
    await run(bot.app, "focus-alarm", chat)
    (up,) = sent_like(bot.emu, chat, "Time's up")
    assert "Time's up: Read SICP" in up.plain_text and "25 min planned · 25 min worked" in (
        up.plain_text
    )
    assert [b for row in up.buttons for b, _ in row] == ["+10 min", "⏹ Stop & log", "✅ Done"]
    assert not bot.emu.calls("sendMessage")[-1].params.get("disable_notification")
    assert "time's up" in chat.message(session.message_id).plain_text  # redrawn with it

    await run(bot.app, "focus-alarm", chat) if jobs(bot.app, "focus-alarm") else None
    assert times_sent(bot.emu, "Time's up") == 1  # once

    bot.clock.advance(minutes=2)  # pressed two minutes late: 10 more minutes from now
    await chat.press(up, "+10 min")
    assert "time's up at 37 min worked" in chat.message(up.message_id).plain_text
    assert await rows(db, "select planned_minutes from focus_sessions") == [
        {"planned_minutes": 37}
    ]
    assert "10 min left" in chat.message(session.message_id).plain_text
    bot.clock.advance(minutes=10)
    await run(bot.app, "focus-alarm", chat)
    assert times_sent(bot.emu, "Time's up") == 2

    second = sent_like(bot.emu, chat, "Time's up")[-1]
    await chat.press(second, "⏹ Stop & log")
    assert "Logged in cs: Read SICP (37 min)" in chat.message(second.message_id).plain_text
    ended = chat.message(session.message_id)  # the session message shows it ended
    assert "⏹ Ended." in ended.plain_text and ended.buttons == []
    assert await rows(db, "select duration from execution_logs") == [{"duration": 37}]


async def test_a_double_tap_on_plus_ten_adds_ten_minutes_once(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    await chat.send("/focus cs 25m")
    bot.clock.advance(minutes=26)
    await run(bot.app, "focus-alarm", chat)
    (up,) = sent_like(bot.emu, chat, "Time's up")
    extend = up.callback_data("+10 min")
    await chat.press_data(up.message_id, extend)
    await chat.press_data(up.message_id, extend)  # the second tap, sent before the first's edit
    assert "time's up at 36 min worked" in chat.message(up.message_id).plain_text
    assert await rows(db, "select planned_minutes from focus_sessions") == [
        {"planned_minutes": 36}
    ]


async def test_times_up_goes_out_once_with_two_instances(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    clock = Clock(T0)
    async with two_instances(emulator, database_dsn, clock) as balancer:
        chat = Chat(emulator, 8201)
        await balancer.to(0)
        await chat.send("/start")
        await chat.send("/add cs 3 Read SICP")
        await chat.send("/focus cs 25m")  # instance 0 armed the reminder
        await armed(balancer.apps[0], "focus-alarm")
        await arm_running(balancer.apps[1])  # as instance 1 does at its start-up
        clock.advance(minutes=26)
        due = [(app, job) for app in balancer.apps for job in jobs(app, "focus-alarm")]
        assert len(due) == 2
        await asyncio.gather(*(job.run(app) for app, job in due))
        await chat.settle(quiet=0.5)
        assert len([m for m in emulator.sent(chat.user_id) if "Time's up" in m.plain_text]) == 1
        # and the minute's redraw: once between them
        edits = len(emulator.calls("editMessageText"))
        ticks = [(app, job) for app in balancer.apps for job in jobs(app, "focus-tick")]
        assert len(ticks) == 2
        clock.advance(minutes=1)
        await asyncio.gather(*(job.run(app) for app, job in ticks))
        await chat.settle(quiet=0.5)
        assert len(emulator.calls("editMessageText")) == edits + 1


async def test_still_working_after_four_hours_once(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    await chat.send("/focus cs")
    assert len(await armed(bot.app, "focus-alarm")) == 1
    bot.clock.advance(hours=3, minutes=59)
    await run(bot.app, "focus-alarm", chat)
    assert sent_like(bot.emu, chat, "Still working") == []  # not yet
    bot.clock.advance(minutes=1)
    await run(bot.app, "focus-alarm", chat)
    (still,) = sent_like(bot.emu, chat, "Still working")
    assert "Still working on “Read SICP”? 4 h 00 min worked in cs so far." in still.plain_text
    assert [b for row in still.buttons for b, _ in row] == ["⏹ Stop & log", "Keep going"]
    assert jobs(bot.app, "focus-alarm") == []  # nothing more to remind of

    await chat.press(still, "Keep going")
    assert "OK, “Read SICP” goes on." in chat.message(still.message_id).plain_text
    bot.clock.advance(hours=1)
    await chat.press_data(still.message_id, still.callback_data("⏹ Stop & log"))
    assert "Logged in cs: Read SICP (300 min)" in chat.message(still.message_id).plain_text
    assert await rows(db, "select duration from execution_logs") == [{"duration": 300}]
    # Keep going on an ended session says so
    await chat.press_data(still.message_id, still.callback_data("Keep going"))
    assert bot.emu.calls("answerCallbackQuery")[-1].params["text"] == (
        "That focus session has already ended."
    )


async def test_still_working_comes_silently_in_quiet_hours(bot: BotEnv) -> None:
    chat = await with_item(bot)
    await chat.send("/settings quiet 12:00-14:00")
    await chat.send("/focus cs")
    bot.clock.advance(hours=4)  # 13:00: quiet
    await run(bot.app, "focus-alarm", chat)
    assert sent_like(bot.emu, chat, "Still working")
    assert bot.emu.calls("sendMessage")[-1].params.get("disable_notification") is True


async def test_keep_going_on_an_ended_session_says_it_ended(bot: BotEnv) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs")
    bot.clock.advance(hours=4, minutes=1)
    await run(bot.app, "focus-alarm", chat)
    still = chat.last()
    assert "Still working" in still.plain_text
    await chat.press(session, "⏹ Stop")
    await chat.press(still, "Keep going")
    assert "goes on" not in chat.message(still.message_id).plain_text
    toast = bot.emu.calls("answerCallbackQuery")[-1].params.get("text")
    assert toast == "That focus session has already ended."


async def test_a_paused_session_is_not_reminded(bot: BotEnv) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs 25m")
    await armed(bot.app, "focus-alarm")
    bot.clock.advance(minutes=10)
    await chat.press(session, "⏸ Pause")
    assert jobs(bot.app, "focus-alarm") == []  # the pause disarmed it
    bot.clock.advance(hours=5)
    await chat.press(chat.message(session.message_id), "▶ Resume")
    (alarm,) = jobs(bot.app, "focus-alarm")  # armed again, 15 minutes of work away
    bot.clock.advance(minutes=14)
    await alarm.run(bot.app)
    await chat.settle()
    assert sent_like(bot.emu, chat, "Time's up") == []
    bot.clock.advance(minutes=1)
    await run(bot.app, "focus-alarm", chat)
    assert len(sent_like(bot.emu, chat, "Time's up")) == 1
    assert sent_like(bot.emu, chat, "Still working") == []


async def test_a_resume_written_through_the_data_api_is_reminded(
    bot: BotEnv, db: Database, database_dsn: str
) -> None:
    chat = await with_item(bot)
    (session,) = await chat.send("/focus cs 25m")
    await chat.press(session, "⏸ Pause")
    assert jobs(bot.app, "focus-alarm") == []
    bot.clock.advance(minutes=5)
    (link,) = await rows(db, "select user_id from telegram_links where telegram_user_id = 2101")
    # an app of the user's resumes the session through the Data API
    assert await data_api(
        database_dsn, link["user_id"],
        "update focus_sessions set paused_at = null, paused_seconds = 300",
    )  # fmt: skip
    await run(bot.app, "focus-tick", chat)  # the minute's redraw sees it running
    bot.clock.advance(minutes=25)
    await run(bot.app, "focus-alarm", chat)
    assert len(sent_like(bot.emu, chat, "Time's up")) == 1


async def test_a_session_planned_for_hours_is_not_asked_at_four(bot: BotEnv) -> None:
    chat = await with_item(bot)
    await chat.send("/focus cs 5h")
    await armed(bot.app, "focus-tick")
    bot.clock.advance(hours=4, minutes=30)
    await run(bot.app, "focus-alarm", chat) if jobs(bot.app, "focus-alarm") else None
    assert sent_like(bot.emu, chat, "Still working") == []
    bot.clock.advance(minutes=30)
    await run(bot.app, "focus-alarm", chat)
    assert len(sent_like(bot.emu, chat, "Time's up")) == 1


async def test_the_default_length_from_settings(bot: BotEnv, db: Database) -> None:
    chat = await with_item(bot)
    (menu,) = await chat.send("/settings")
    assert "Focus length: none" in menu.plain_text
    (saved,) = await chat.send("/settings focus 40m")
    assert "Focus sessions last 40 min by default." in saved.plain_text
    (card,) = await chat.send("/nba cs")
    (session,) = await chat.press(card, "▶ Start", replies=1)
    assert "40 min left" in session.plain_text
    await chat.press(session, "⏹ Stop")
    (again,) = await chat.send("/focus cs no limit")  # a length given: none
    assert "left" not in again.plain_text
    await chat.press(again, "⏹ Stop")
    await chat.send("/settings focus off")
    (plain,) = await chat.send("/focus cs")
    assert "left" not in plain.plain_text
    assert await rows(db, "select focus_minutes from user_settings") == [{"focus_minutes": None}]
    (bad,) = await chat.send("/settings focus forever")
    assert "focus length" in bad.plain_text.lower()


async def test_a_restart_rearms_the_reminder_and_the_redraw(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    clock = Clock(T0)
    async with bot_running(emulator, database_dsn, clock=clock):
        chat = Chat(emulator, 3101)
        await chat.send("/start")
        await chat.send("/add ibm 2 Write the report")
        (session,) = await chat.send("/focus ibm 25m")
    clock.advance(minutes=30)  # the bot was down when the time was up
    async with bot_running(emulator, database_dsn, clock=clock) as app:
        assert len(jobs(app, "focus-tick")) == 1
        await run(app, "focus-alarm", chat)
        (up,) = sent_like(emulator, chat, "Time's up")
        assert "30 min worked" in up.plain_text
        await run(app, "focus-tick", chat)
        assert "30 min worked · time's up" in chat.message(session.message_id).plain_text


async def test_no_limit_typed_in_settings_clears_the_default_length(
    bot: BotEnv, db: Database
) -> None:
    chat = await with_item(bot)
    for typed in ("no limit", "0", "off"):  # as /focus cs takes them
        await chat.send("/settings focus 25m")
        (reply,) = await chat.send(f"/settings focus {typed}")
        assert "Focus sessions have no default length" in reply.plain_text
        assert await rows(db, "select focus_minutes from user_settings") == [
            {"focus_minutes": None}
        ]


@pytest.mark.slow
async def test_a_start_kept_during_an_outage_gets_its_message_and_reminder_once_synced(
    server: tuple[EmbeddedPostgres, str], emulator: BotApiEmulator, tmp_path: Path
) -> None:
    pg, dsn = server
    settings = outage_settings(tmp_path)
    clock = Clock(T0)
    async with bot_running(emulator, dsn, settings=settings, clock=clock) as app:
        chat = Chat(emulator, 8201)
        await chat.send("/start")
        await chat.send("/add cs 3 Read SICP")
        await asyncio.to_thread(pg.halt)
        (kept,) = await chat.send("/focus cs 25m")
        assert "Your focus session in cs is saved on this server" in kept.plain_text
        clock.advance(minutes=3)  # the database comes back later: the start's time counts
        await asyncio.to_thread(pg.resume)
        synced, session = await chat._wait(2, 60)
        assert "Synced: your focus session in cs is saved" in synced.plain_text
        assert "Focus in cs: Read SICP" in session.plain_text
        assert "3 min worked · 22 min left" in session.plain_text
        assert [b for row in session.buttons for b, _ in row] == ["⏸ Pause", "⏹ Stop", "✅ Done"]
        clock.advance(minutes=22)
        await run(app, "focus-alarm", chat)
        assert times_sent(emulator, "Time's up") == 1
