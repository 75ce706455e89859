"""Onboarding and /settings as questions of the engine: typed answers at every step with the
one-line forms' specific errors, buttons of a finished or abandoned question that answer
"This question is closed" and change nothing, and a restart in the middle."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from bot.local_api import BotApiEmulator
from handlers.conversation import CLOSED
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import Chat, Clock, bot_running


async def settings_of(db: Database, telegram_user_id: int) -> dict[str, Any]:
    async with db.privileged(read_only=True) as uow:
        (found,) = await uow.fetchall(
            "select s.timezone, s.weekly_capacity_hours, s.brief_time, s.quiet_start,"
            " s.quiet_end, s.review_day, s.review_time from user_settings s"
            " join telegram_links l using (user_id) where l.telegram_user_id = %s",
            (telegram_user_id,),
        )
    return dict(found)


def last_toast(chat: Chat) -> str | None:
    return chat.emu.callback_answers[-1].text


async def press_stale(chat: Chat, message_id: int, data: str) -> str | None:
    """Press a button a client still shows (its data), whatever the message shows now."""
    await chat.press_data(message_id, data)
    return last_toast(chat)


# --- onboarding -----------------------------------------------------------------------------


async def test_onboarding_typed_at_every_step_with_specific_errors(
    bot: BotEnv, db: Database
) -> None:
    chat = bot.chat(8101)
    (welcome,) = await chat.send("/start")
    assert "Welcome to Aelpher" in welcome.plain_text and "1/3 · Time zone" in welcome.plain_text
    (zone,) = await chat.send("Tokyo")
    assert "Unknown time zone 'Tokyo'" in zone.plain_text
    assert "Did you mean Asia/Tokyo?" in zone.plain_text and "Try again" in zone.plain_text
    (capacity,) = await chat.send("Asia/Tokyo")
    assert "✅ Saved: time zone Asia/Tokyo." in capacity.plain_text
    assert "2/3 · Weekly capacity" in capacity.plain_text
    (brief,) = await chat.send("25")
    assert "3/3 · Daily brief" in brief.plain_text
    # each answer is saved as it comes: /cancel now keeps the two given
    (stopped,) = await chat.send("/cancel")
    assert "What you already answered is saved" in stopped.plain_text
    saved = await settings_of(db, 8101)
    assert (saved["timezone"], saved["weekly_capacity_hours"], saved["brief_time"]) == (
        "Asia/Tokyo",
        25,
        None,
    )


async def test_onboarding_capacity_forty_is_an_error_then_40_is_saved(
    bot: BotEnv, db: Database
) -> None:
    chat = bot.chat(8102)
    await chat.send("/start")
    await chat.send("Europe/Berlin")
    (forty,) = await chat.send("forty")
    assert "Weekly capacity must be a whole number (got 'forty')" in forty.plain_text
    assert "Try again, or /cancel." in forty.plain_text
    (zero,) = await chat.send("0 h")
    assert "Weekly capacity must be between 1 and 168 hours (got 0)" in zero.plain_text
    (brief,) = await chat.send("40")
    assert "✅ Saved: weekly capacity 40 h." in brief.plain_text
    assert "3/3 · Daily brief" in brief.plain_text
    (bad,) = await chat.send("seven")
    assert "must be a time like 7, 7am, 07:30, 19:30 or 7:30 pm (got 'seven')" in bad.plain_text
    (done,) = await chat.send("7am")
    assert "✅ Saved: daily brief at 07:00." in done.plain_text and "All set!" in done.plain_text
    assert "Time zone Europe/Berlin · capacity 40 h/week · daily brief 07:00" in done.plain_text
    saved = await settings_of(db, 8102)
    assert (saved["timezone"], saved["weekly_capacity_hours"], saved["brief_time"]) == (
        "Europe/Berlin",
        40,
        time(7),
    )


@pytest.mark.parametrize(
    ("capacity", "hours", "brief", "at"),
    [
        ("35", 35, "7", time(7)),
        ("35 h", 35, "07:30", time(7, 30)),
        ("35h", 35, "19:30", time(19, 30)),
        ("35 hours", 35, "7:30 pm", time(19, 30)),
        ("skip", 40, "off", None),
    ],
)
async def test_onboarding_takes_capacities_and_brief_times_as_typed(
    bot: BotEnv, db: Database, capacity: str, hours: int, brief: str, at: time | None
) -> None:
    chat = bot.chat(8103)
    await chat.send("/start")
    await chat.send("skip")
    await chat.send(capacity)
    (done,) = await chat.send(brief)
    assert "All set!" in done.plain_text
    saved = await settings_of(db, 8103)
    assert (saved["timezone"], saved["weekly_capacity_hours"], saved["brief_time"]) == (
        "UTC",
        hours,
        at,
    )


async def test_buttons_of_a_finished_onboarding_are_closed(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(8104)
    (welcome,) = await chat.send("/start")
    await chat.press(welcome, "Europe/London")
    step = chat.message(welcome.message_id)
    fifty = step.callback_data("50 h")
    await chat.press(step, "30 h")
    assert last_toast(chat) == "Saved."
    await chat.press(chat.message(welcome.message_id), "Off")
    done = chat.message(welcome.message_id)
    assert "All set!" in done.plain_text and done.buttons == []

    assert await press_stale(chat, welcome.message_id, fifty) == CLOSED
    assert chat.message(welcome.message_id).plain_text == done.plain_text
    assert (await settings_of(db, 8104))["weekly_capacity_hours"] == 30
    (free,) = await chat.send("2")  # quick capture, not an answer
    assert "Save this as" in free.plain_text
    assert (await settings_of(db, 8104))["weekly_capacity_hours"] == 30


async def test_buttons_of_an_abandoned_onboarding_are_closed(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(8105)
    (welcome,) = await chat.send("/start")
    berlin = welcome.callback_data("Europe/Berlin")
    await chat.send("/status")  # abandons the question
    assert await press_stale(chat, welcome.message_id, berlin) == CLOSED
    assert (await settings_of(db, 8105))["timezone"] == "UTC"
    assert "1/3 · Time zone" in chat.message(welcome.message_id).plain_text  # unchanged
    (free,) = await chat.send("2")
    assert "Save this as" in free.plain_text


async def test_cancel_during_onboarding_has_its_own_reply_and_closes_the_buttons(
    bot: BotEnv, db: Database
) -> None:
    chat = bot.chat(8106)
    (welcome,) = await chat.send("/start")
    await chat.press(welcome, "Asia/Tokyo")
    step = chat.message(welcome.message_id)
    (stopped,) = await chat.send("/cancel")
    assert "OK, no more questions. What you already answered is saved" in stopped.plain_text
    assert "/add cs 4 Read SICP chapter 3" in stopped.plain_text
    await chat.press(step, "60 h")
    assert last_toast(chat) == CLOSED
    assert (await settings_of(db, 8106))["weekly_capacity_hours"] == 40


async def test_onboarding_expires_silently(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(8107)
    (welcome,) = await chat.send("/start")
    await chat.settle()
    (job,) = bot.app.job_queue.get_jobs_by_name(f"question:{chat.user_id}:{chat.user_id}")
    bot.clock.advance(minutes=10)
    before = len(bot.emu.sent(chat.user_id))
    await job.run(bot.app)
    await chat.settle()
    assert len(bot.emu.sent(chat.user_id)) == before  # nothing said
    await chat.press(welcome, "UTC")
    assert last_toast(chat) == CLOSED
    (free,) = await chat.send("Europe/Berlin")
    assert "Save this as" in free.plain_text


async def test_onboarding_continues_at_the_same_step_after_a_restart(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    clock = Clock()
    async with bot_running(emulator, database_dsn, clock=clock):
        chat = Chat(emulator, 8108)
        (welcome,) = await chat.send("/start")
        await chat.press(welcome, "Asia/Tokyo")
        assert "2/3 · Weekly capacity" in chat.message(welcome.message_id).plain_text
    async with bot_running(emulator, database_dsn, clock=clock):
        (forty,) = await chat.send("forty")  # still the capacity question
        assert "Weekly capacity must be a whole number" in forty.plain_text
        await chat.press(chat.message(welcome.message_id), "50 h")  # the button from before
        brief = chat.message(welcome.message_id)
        assert "✅ Saved: weekly capacity 50 h." in brief.plain_text
        assert "3/3 · Daily brief" in brief.plain_text
    async with bot_running(emulator, database_dsn, clock=clock):
        (done,) = await chat.send("7:30 pm")
        assert "All set!" in done.plain_text
    saved = await settings_of(db, 8108)
    assert (saved["timezone"], saved["weekly_capacity_hours"], saved["brief_time"]) == (
        "Asia/Tokyo",
        50,
        time(19, 30),
    )


async def test_a_second_start_asks_nothing(bot: BotEnv) -> None:
    chat = bot.chat(8109)
    await chat.send("/start")
    (back,) = await chat.send("/start")
    assert "Welcome back" in back.plain_text and back.buttons == []
    (free,) = await chat.send("Europe/Berlin")  # the onboarding question was abandoned
    assert "Save this as" in free.plain_text


# --- /settings ------------------------------------------------------------------------------


async def started(bot: BotEnv, user_id: int) -> Chat:
    chat = bot.chat(user_id)
    await chat.send("/start")
    await chat.send("/cancel")
    return chat


async def test_settings_sub_menus_take_typed_values(bot: BotEnv, db: Database) -> None:
    chat = await started(bot, 8201)
    (menu,) = await chat.send("/settings")
    assert "⚙️ Settings" in menu.plain_text and "Daily brief: off" in menu.plain_text
    await chat.press(menu, "⏱ Capacity")
    sub = chat.message(menu.message_id)
    assert "Weekly capacity: 40 h" in sub.plain_text and "Pick, or type 1-168" in sub.plain_text
    (forty,) = await chat.send("forty")
    assert "Weekly capacity must be a whole number (got 'forty')" in forty.plain_text
    assert "Try again, or /cancel." in forty.plain_text
    (saved,) = await chat.send("45")  # the question stayed open
    assert "✅ Weekly capacity 45 h." in saved.plain_text and "⚙️ Settings" in saved.plain_text

    await chat.press(saved, "☀️ Daily brief")
    (bad,) = await chat.send("25:00")
    assert "must be a time like 7, 7am, 07:30" in bad.plain_text
    (brief,) = await chat.send("7:30 pm")
    assert "✅ Daily brief at 19:30." in brief.plain_text

    await chat.press(brief, "📅 Weekly review")
    await chat.press(chat.message(brief.message_id), "Sun")
    (review,) = await chat.send("6 pm")
    assert "✅ Weekly review on Sunday at 18:00." in review.plain_text

    await chat.press(review, "🌍 Time zone")
    (hint,) = await chat.send("Kolkata")
    assert "Did you mean Asia/Kolkata?" in hint.plain_text
    (zone,) = await chat.send("asia/kolkata")
    assert "✅ Time zone set to Asia/Kolkata." in zone.plain_text

    (on_menu,) = await chat.send("quiet 22:00-07:00")  # typed on the menu: setting and value
    assert "✅ Quiet hours 22:00–07:00." in on_menu.plain_text
    (not_one,) = await chat.send("hello")  # not a setting: offered for quick capture
    assert "Save this as" in not_one.plain_text

    stored = await settings_of(db, 8201)
    assert stored == {
        "timezone": "Asia/Kolkata",
        "weekly_capacity_hours": 45,
        "brief_time": time(19, 30),
        "quiet_start": time(22),
        "quiet_end": time(7),
        "review_day": 6,
        "review_time": time(18),
    }


async def test_settings_buttons_back_and_done(bot: BotEnv, db: Database) -> None:
    chat = await started(bot, 8202)
    (menu,) = await chat.send("/settings")
    await chat.press(menu, "💤 Idle after")
    assert "Pick, or type 1-720 hours" in chat.message(menu.message_id).plain_text
    await chat.press(chat.message(menu.message_id), "↩ Back")
    assert "⚙️ Settings" in chat.message(menu.message_id).plain_text
    await chat.press(chat.message(menu.message_id), "⚠️ Overload at")
    await chat.press(chat.message(menu.message_id), "70%")
    assert last_toast(chat) == "Saved."
    shown = chat.message(menu.message_id)
    assert "✅ Overload reminder at 70%." in shown.plain_text
    capacity = shown.callback_data("⏱ Capacity")
    await chat.press(shown, "✔ Done")
    assert "Settings saved" in chat.message(menu.message_id).plain_text
    assert chat.message(menu.message_id).buttons == []
    assert await press_stale(chat, menu.message_id, capacity) == CLOSED
    assert "Settings saved" in chat.message(menu.message_id).plain_text
    (free,) = await chat.send("45")  # the settings question is closed: quick capture
    assert "Save this as" in free.plain_text
    async with db.privileged(read_only=True) as uow:
        (row,) = await uow.fetchall("select overload_threshold from user_settings")
    assert row["overload_threshold"] == 70


async def test_settings_buttons_after_another_command_are_closed(
    bot: BotEnv, db: Database
) -> None:
    chat = await started(bot, 8203)
    (menu,) = await chat.send("/settings")
    await chat.press(menu, "☀️ Daily brief")
    sub = chat.message(menu.message_id)
    await chat.send("/status")
    await chat.press(sub, "08:00")
    assert last_toast(chat) == CLOSED
    assert chat.message(menu.message_id).plain_text == sub.plain_text
    assert (await settings_of(db, 8203))["brief_time"] is None
    (free,) = await chat.send("08:00")  # no longer a value for the brief
    assert "Save this as" in free.plain_text
    assert (await settings_of(db, 8203))["brief_time"] is None


async def test_settings_one_line_form_and_its_menu(bot: BotEnv, db: Database) -> None:
    chat = await started(bot, 8204)
    (brief,) = await chat.send("/settings brief 7:30 pm")
    assert "✅ Daily brief at 19:30." in brief.plain_text
    (review,) = await chat.send("/settings review sun 7:30 pm")
    assert "✅ Weekly review on Sunday at 19:30." in review.plain_text
    await chat.press(brief, "⏱ Capacity")  # the menu of an earlier command
    assert last_toast(chat) == CLOSED
    await chat.press(review, "⏱ Capacity")  # the latest menu is the open question
    (saved,) = await chat.send("50")
    assert "✅ Weekly capacity 50 h." in saved.plain_text
    (cancelled,) = await chat.send("/cancel")
    assert "Settings closed" in cancelled.plain_text
    (usage,) = await chat.send("/settings brief")
    assert "/settings brief 08:00" in usage.plain_text
    stored = await settings_of(db, 8204)
    assert (stored["brief_time"], stored["review_day"], stored["weekly_capacity_hours"]) == (
        time(19, 30),
        6,
        50,
    )


async def test_buttons_from_before_the_engine_answer_closed(bot: BotEnv, db: Database) -> None:
    chat = await started(bot, 8205)
    (menu,) = await chat.send("/help")
    for data in ("set:cv:60", "ob:cap:60"):
        assert await press_stale(chat, menu.message_id, data) == CLOSED
    assert (await settings_of(db, 8205))["weekly_capacity_hours"] == 40


async def test_settings_take_hours_as_people_type_them(bot: BotEnv, db: Database) -> None:
    chat = bot.chat(8290)
    await chat.send("/start")
    await chat.send("/cancel")
    (capacity,) = await chat.send("/settings capacity 30 h")
    assert "✅ Weekly capacity 30 h." in capacity.plain_text
    (idle,) = await chat.send("idle 48h")  # on the menu the command left open
    assert "✅ Idle reminder after 48 h." in idle.plain_text
    (bad,) = await chat.send("capacity thirty")
    assert "Weekly capacity must be a whole number (got 'thirty')" in bad.plain_text
    stored = await settings_of(db, 8290)
    assert stored["weekly_capacity_hours"] == 30
