"""End-to-end flows: buttons, guided conversations, restarts, isolation, groups, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from bot.local_api import BotApiEmulator
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import Chat, Clock, bot_running


async def rows(db: Database, sql: str, *params: object) -> list[dict[str, Any]]:
    async with db.privileged() as uow:
        return [dict(r) for r in await uow.fetchall(sql, params or None)]


async def started(bot: BotEnv, user_id: int = 2001) -> Chat:
    chat = bot.chat(user_id)
    await chat.send("/start")
    return chat


async def test_ranking_flow_through_nba_buttons(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    await chat.send("/add cs 2 Read chapter 1")
    await chat.send("/add cs 1 Exercises")
    await chat.send("/add cs 0 Notes")
    (view,) = await chat.send("/nba cs")
    assert "➤ Read chapter 1" in view.plain_text

    await chat.press(view, "🔒 Lock")
    assert "🔒 locked" in chat.message(view.message_id).plain_text
    (added,) = await chat.send("/add cs 5 Mock exam")
    assert "➤ Read chapter 1" in added.plain_text  # the locked item stays current

    await chat.press(added, "🔓 Unlock")
    assert "➤ Mock exam" in chat.message(added.message_id).plain_text

    await chat.press(added, "✅ Done")
    done = chat.message(added.message_id)
    assert "Done: Mock exam" in done.plain_text
    assert "Next up in cs: Read chapter 1" in done.plain_text
    await chat.press(done, "25 min")
    assert "25 min logged" in chat.message(added.message_id).plain_text
    logs = await rows(db, "select action, duration from execution_logs")
    assert logs == [{"action": "Done: Mock exam", "duration": 25}]


async def test_choose_another_and_auto(bot: BotEnv) -> None:
    chat = await started(bot)
    await chat.send("/add ibm 5 Top")
    (view,) = await chat.send("/add ibm 1 Low")
    await chat.press(view, "🔀 Choose another")
    listing = chat.message(view.message_id)
    assert "choose the item" in listing.plain_text
    await chat.press(listing, "2. Low")
    picked = chat.message(view.message_id)
    assert "➤ Low ✋ chosen by you" in picked.plain_text
    await chat.press(picked, "🤖 Auto")
    assert "➤ Top" in chat.message(view.message_id).plain_text


async def test_progress_button_double_tap_records_once(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    (view,) = await chat.send("/add cs 3 Read")
    await chat.press(view, "▶ Progress")
    prompt = chat.message(view.message_id)
    data = prompt.callback_data("25 min")
    await chat.press_data(view.message_id, data, strict=True)
    await chat.press_data(view.message_id, data)  # the same button again (stale client)
    logs = await rows(db, "select action, duration from execution_logs")
    assert logs == [{"action": "Read", "duration": 25}]


async def test_guided_log_through_buttons(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    (ask_arm,) = await chat.send("/log")
    assert "which theater" in ask_arm.plain_text
    await chat.press(ask_arm, "cs · study")  # each answer redraws the question as the next
    ask_minutes = chat.message(ask_arm.message_id)
    assert "how long? Tap, or type it: 45, 1h30" in ask_minutes.plain_text
    await chat.press(ask_minutes, "45")
    ask_action = chat.message(ask_arm.message_id)
    assert "what did you do" in ask_action.plain_text and not ask_action.buttons
    (saved,) = await chat.send("read chapter 3")
    assert "Logged in cs: read chapter 3 (45 min)" in saved.plain_text
    (ask_details,) = await chat.press(saved, "➕ Add details", replies=1)
    assert "Send the details" in ask_details.plain_text
    (added,) = await chat.send("pages 120-160")
    assert "Details added to “read chapter 3”" in added.plain_text
    logs = await rows(db, "select arm_type, action, duration, details from execution_logs")
    assert logs == [
        {"arm_type": "cs", "action": "read chapter 3", "duration": 45, "details": "pages 120-160"}
    ]


async def test_guided_log_forgives_bad_input(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    await chat.send("/log ibm")
    (bad,) = await chat.send("lots")
    assert "Minutes must be a duration like 90, 90m, 1h30" in bad.plain_text
    (bad,) = await chat.send("2000")
    assert "between 1 and 1440" in bad.plain_text
    await chat.send("30")
    (bad,) = await chat.send("x" * 201)
    assert "Action is too long: 201 characters, the limit is 200." in bad.plain_text
    (saved,) = await chat.send("standup")
    assert "Logged in ibm: standup (30 min)" in saved.plain_text
    logs = await rows(db, "select action, details from execution_logs")
    assert logs == [{"action": "standup", "details": None}]


async def test_guided_add_through_buttons(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    (ask_arm,) = await chat.send("/add")
    (ask_gap,) = await chat.press(ask_arm, "ibm · job", replies=0) or [chat.last()]
    gap_msg = chat.message(ask_arm.message_id)
    assert "how big is the gap" in gap_msg.plain_text
    await chat.press(gap_msg, "3")
    assert "what's the action" in chat.message(ask_arm.message_id).plain_text
    (saved,) = await chat.send("Write the design doc")
    assert "Added to ibm" in saved.plain_text
    items = await rows(db, "select arm_type, gap, title, is_current from nba_items")
    assert items == [
        {"arm_type": "ibm", "gap": 3, "title": "Write the design doc", "is_current": True}
    ]
    del ask_gap


async def test_cancel_leaves_the_conversation(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    await chat.send("/log cs")
    (cancelled,) = await chat.send("/cancel")
    assert "Cancelled" in cancelled.plain_text
    (after,) = await chat.send("45")
    assert "Save this as" in after.plain_text  # no longer inside /log
    assert await rows(db, "select 1 from execution_logs") == []


async def test_conversation_times_out(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    await chat.send("/log cs")
    await chat.settle()
    (job,) = bot.app.job_queue.get_jobs_by_name(f"question:{chat.user_id}:{chat.user_id}")
    await job.run(bot.app)  # too early: the question is still open
    bot.clock.advance(minutes=10)
    await job.run(bot.app)  # what the job queue does ten minutes later
    (timed_out,) = await chat._wait(1, 10)
    assert "timed out after 10 minutes" in timed_out.plain_text
    await job.run(bot.app)  # told once
    (after,) = await chat.send("45")
    assert "Save this as" in after.plain_text


async def test_conversation_resumes_after_restart(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    clock = Clock()
    async with bot_running(emulator, database_dsn, clock=clock):
        chat = Chat(emulator, 3001)
        await chat.send("/start")
        await chat.send("/log cs 20")
        asked = chat.last()
        assert "what did you do" in asked.plain_text
    async with bot_running(emulator, database_dsn, clock=clock):
        (saved,) = await chat.send("after the restart")
        assert "Logged in cs: after the restart (20 min)" in saved.plain_text
    assert await rows(db, "select action, duration from execution_logs") == [
        {"action": "after the restart", "duration": 20}
    ]


async def test_two_users_never_see_each_other(bot: BotEnv, db: Database) -> None:
    alice = await started(bot, 4001)
    bob = await started(bot, 4002)
    (a_item,) = await alice.send("/add cs 4 Alice's secret plan")
    await alice.send("/log cs 30 alice work")
    (b_nba,) = await bob.send("/nba cs")
    (b_hist,) = await bob.send("/history")
    (b_status,) = await bob.send("/status")
    for message in (b_nba, b_hist, b_status):
        assert "Alice" not in message.plain_text and "alice work" not in message.plain_text
    # Bob forges Alice's lock and done buttons: nothing changes.
    for label in ("🔒 Lock", "✅ Done"):
        data = a_item.callback_data(label)
        bob.emu.send_text(4002, "/nba cs")  # bob needs a bot message to press on
        (own,) = await bob._wait(1, 10)
        await bob.press_data(own.message_id, data)
    items = await rows(db, "select is_locked, completed_at from nba_items")
    assert items == [{"is_locked": False, "completed_at": None}]
    assert len(await rows(db, "select 1 from execution_logs")) == 1


async def test_group_chat_gets_one_polite_line(bot: BotEnv, db: Database) -> None:
    bot.emu.send_text(5001, "/start", chat_id=-100123, chat_type="group")
    (msg,) = await bot.emu.wait_messages(-100123, 1)
    assert msg.plain_text == "I only work in private chats: please message me directly."
    bot.emu.send_text(5001, "/log cs 45 x", chat_id=-100123, chat_type="group")
    await bot.emu.wait_messages(-100123, 2)
    await bot.emu.wait_idle()
    assert len(bot.emu.sent(-100123)) == 2
    assert await rows(db, "select 1 from telegram_links") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/frobnicate", "I don't know that command"),
        ("/add cs 9 Title", "Gap must be between 0 and 5 (got 9)"),
        ("/add xyz 3 Title", "Unknown theater 'xyz': use ibm or cs."),
        ("/add cs four Title", "Gap must be a whole number (got 'four')"),
        ("/log cs 0 nothing", "Minutes must be between 1 and 1440"),
        ("/log cs 99999 a lot", "Minutes must be between 1 and 1440"),
        ("/log cs 45 " + "x" * 201, "Action is too long: 201 characters, the limit is 200."),
        ("/progress cs 140", "Progress must be between 0 and 100"),
        ("/progress cs", "cs: progress in percent? Tap, or type it"),
        ("/energy", "How much of your energy goes to ibm"),
        ("/energy 60 40", "Usage: /energy 0-100"),
        ("/energy 101", "Energy must be between 0 and 100"),
        ("/block", "Block which theater?"),
        ("/unblock cs ibm", "Usage: /unblock ibm|cs"),
        ("/history cs 500", "Count must be between 1 and 50"),
        ("/nba cs ibm", "Usage: /nba"),
        ("/undo", "Nothing to undo: you have no logs yet."),
        ("hello there", "Save this as"),
        ("/reflect cs " + "e" * 2001, "Evidence is too long: 2001 characters, the limit is 2000."),
    ],
)
async def test_bad_input_gets_a_specific_reply(
    bot: BotEnv, db: Database, text: str, expected: str
) -> None:
    chat = await started(bot)
    await chat.send("/cancel")  # no onboarding question open: text is free text
    (reply,) = await chat.send(text)
    assert expected in reply.plain_text
    for table in ("nba_items", "execution_logs", "reflections"):
        assert await rows(db, f"select 1 from {table}") == []


async def test_non_text_message_gets_a_hint(bot: BotEnv) -> None:
    chat = await started(bot)
    bot.emu.send_sticker(chat.user_id)
    (hint,) = await chat._wait(1, 10)
    assert "I can only read text" in hint.plain_text


async def test_button_answer_and_redraw_are_in_flight_together(bot: BotEnv) -> None:
    """Neither the redraw nor the button's answer waits for the other: whichever Telegram
    holds up, the other is done first (one round trip of waiting for the user, not two)."""
    chat = await started(bot)
    (view,) = await chat.send("/add cs 2 Read chapter 1")

    def last_two() -> list[str]:
        wanted = ("answerCallbackQuery", "editMessageText")
        return [c.method for c in bot.emu.calls() if c.method in wanted][-2:]

    bot.emu.slow_next("answerCallbackQuery", 0.5)
    await chat.press(view, "🔒 Lock")
    assert last_two() == ["editMessageText", "answerCallbackQuery"]
    assert "🔒 locked" in chat.message(view.message_id).plain_text
    bot.emu.slow_next("editMessageText", 0.5)
    await chat.press(view, "🔓 Unlock")
    await chat.settle()
    assert last_two() == ["answerCallbackQuery", "editMessageText"]
    assert "🔒 locked" not in chat.message(view.message_id).plain_text


async def test_button_answered_too_late_still_redraws(bot: BotEnv) -> None:
    chat = await started(bot)
    (view,) = await chat.send("/add cs 2 Read chapter 1")
    bot.emu.fail_next(
        "answerCallbackQuery",
        status=400,
        description="Bad Request: query is too old and response timeout expired or query ID"
        " is invalid",
    )
    await chat.press(view, "🔒 Lock")
    assert "🔒 locked" in chat.message(view.message_id).plain_text
    assert chat.emu.sent(chat.user_id)[-1].message_id == view.message_id  # no error reply


async def test_not_started_user_is_told_to_start(bot: BotEnv) -> None:
    chat = bot.chat(6001)
    (reply,) = await chat.send("/nba")
    assert "Send /start to begin" in reply.plain_text


async def test_allowed_ids_refuse_others(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    from tests.harness import make_settings

    settings = make_settings(allowed_telegram_user_ids="7001")
    async with bot_running(emulator, database_dsn, settings=settings):
        stranger = Chat(emulator, 7002)
        (refused,) = await stranger.send("/start")
        assert "this Aelpher bot is private" in refused.plain_text
        owner = Chat(emulator, 7001)
        (welcome,) = await owner.send("/start")
        assert "Welcome" in welcome.plain_text
    assert len(await rows(db, "select 1 from telegram_links")) == 1


async def test_long_history_is_split_at_line_boundaries(bot: BotEnv) -> None:
    chat = await started(bot)
    for n in range(5):  # about 14 000 characters of HTML: several messages
        await chat.send(f"/reflect cs {n:02d} " + "<evidence & more> " * 100)
    before = len(bot.emu.sent(chat.user_id))
    await chat.send("/history cs 5", replies=2)
    await chat.settle(quiet=0.5)
    replies = bot.emu.sent(chat.user_id)[before:]
    assert len(replies) >= 3 and all(len(m.plain_text) <= 4096 for m in replies)
    assert "04 <evidence & more>" in replies[0].plain_text
    assert "00 <evidence & more>" in replies[-1].plain_text


async def test_conversation_that_timed_out_while_down_does_not_come_back(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with bot_running(emulator, database_dsn):
        chat = Chat(emulator, 3002)
        await chat.send("/start")
        await chat.send("/log cs 20")  # asks what was done
    async with db.privileged() as uow:  # the bot stays down for 11 minutes
        await uow.execute("update open_questions set expires_at = now() - interval '1 minute'")
        await uow.commit()
    async with bot_running(emulator, database_dsn):
        (timed_out,) = await chat._wait(1, 10)  # re-armed at start-up, and told once
        assert "timed out after 10 minutes" in timed_out.plain_text
        (reply,) = await chat.send("hello")
        assert "Save this as" in reply.plain_text
    assert await rows(db, "select 1 from execution_logs") == []


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("/log cs abc read", "Usage: /log ibm|cs minutes action"),
        ("/add cs 9 Title", "Usage: /add ibm|cs gap(0-5) title"),
        ("/progress xyz 40", "Usage: /progress ibm|cs 0-100"),
    ],
)
async def test_malformed_one_line_command_shows_its_usage(
    bot: BotEnv, text: str, usage: str
) -> None:
    chat = await started(bot)
    (reply,) = await chat.send(text)
    assert usage in reply.plain_text


async def test_typed_step_errors_do_not_repeat_the_usage(bot: BotEnv) -> None:
    chat = await started(bot)
    await chat.send("/log cs")
    (reply,) = await chat.send("abc")
    assert "Minutes must be a duration like 90, 90m, 1h30" in reply.plain_text
    assert "Usage" not in reply.plain_text


async def test_too_long_details_can_be_sent_again(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    (saved,) = await chat.send("/log cs 20 reading")
    await chat.press(saved, "➕ Add details", replies=1)
    (too_long,) = await chat.send("d" * 2001)
    assert "Details is too long: 2001 characters, the limit is 2000." in too_long.plain_text
    (added,) = await chat.send("chapter 4")
    assert "Details added" in added.plain_text
    assert await rows(db, "select details from execution_logs") == [{"details": "chapter 4"}]


async def test_durations_and_times_as_people_type_them(bot: BotEnv, db: Database) -> None:
    chat = await started(bot)
    (one,) = await chat.send("/log cs 1h30 read the paper")
    assert "Logged in cs: read the paper (90 min)" in one.plain_text
    (two,) = await chat.send("/log ibm 1h 15m standup and review")
    assert "Logged in ibm: standup and review (75 min)" in two.plain_text
    await chat.send("/log cs")
    (asked,) = await chat.send("1.5h")
    assert "90 min: what did you do?" in asked.plain_text
    (three,) = await chat.send("flashcards")
    assert "Logged in cs: flashcards (90 min)" in three.plain_text
    for text, logged in (
        ("/log cs 2 hours deep work", "deep work (120 min)"),
        ("/log cs 90 min reading", "reading (90 min)"),
        ("/log cs 1.5 h spaced", "spaced (90 min)"),
        ("/log cs 1h 30 pages read", "30 pages read (60 min)"),
    ):
        (reply,) = await chat.send(text)
        assert f"Logged in cs: {logged}" in reply.plain_text, text
    (bad,) = await chat.send("/log cs ninety reading")
    assert "Minutes must be a duration like 90, 90m, 1h30, 1h 30m, 1.5h or 1:30" in bad.plain_text
    (brief,) = await chat.send("/settings brief 7:30 pm")
    assert "19:30" in brief.plain_text
    logs = await rows(db, "select action, duration from execution_logs order by timestamp")
    assert logs[:3] == [
        {"action": "read the paper", "duration": 90},
        {"action": "standup and review", "duration": 75},
        {"action": "flashcards", "duration": 90},
    ]
    assert len(logs) == 7
