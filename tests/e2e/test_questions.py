"""One open question per chat: a command abandons the question before it, /cancel closes it,
and an abandoned question never takes a later answer, also across a restart or a /delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.local_api import BotApiEmulator, SentMessage
from handlers.callbacks import encode
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import Chat, bot_running, counting_server_round_trips


async def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    async with db.privileged(read_only=True) as uow:
        return [dict(r) for r in await uow.fetchall(sql)]


async def started(bot: BotEnv, user_id: int) -> Chat:
    chat = bot.chat(user_id)
    await chat.send("/start")
    await chat.send("/cancel")  # no onboarding questions in the way
    return chat


async def test_cancel_closes_every_open_question_and_text_after_it_is_free(
    bot: BotEnv, db: Database
) -> None:
    chat = await started(bot, 6101)
    await chat.send("/add cs 3")  # asks the title
    await chat.send("/log cs 10")  # asks what was done; the title question is gone
    (cancelled,) = await chat.send("/cancel")
    assert "Cancelled. Nothing was saved." in cancelled.plain_text
    (free,) = await chat.send("hello there")
    assert "Save this as" in free.plain_text  # quick capture offers it: a question too
    (dropped,) = await chat.send("/cancel")
    assert "not saved" in dropped.plain_text
    (nothing,) = await chat.send("/cancel")
    assert "Nothing to cancel" in nothing.plain_text
    assert await rows(db, "select 1 from nba_items") == []
    assert await rows(db, "select 1 from execution_logs") == []


async def test_the_latest_question_takes_the_answer_and_the_earlier_one_is_gone(
    bot: BotEnv, db: Database
) -> None:
    chat = await started(bot, 6102)
    await chat.send("/log cs 20")
    await chat.send("/add cs 3")
    (added,) = await chat.send("first answer")
    assert "Added to cs: first answer" in added.plain_text
    (free,) = await chat.send("second answer")  # the /log question was abandoned
    assert "Save this as" in free.plain_text
    assert await rows(db, "select title from nba_items") == [{"title": "first answer"}]
    assert await rows(db, "select 1 from execution_logs") == []


async def test_a_question_left_behind_does_not_capture_text_much_later(
    bot: BotEnv, db: Database
) -> None:
    chat = await started(bot, 6103)
    await chat.send("/add cs 4")  # asks the title
    for command in ("/status", "/nba", "/help", "/history"):
        await chat.send(command)
    await chat.send("/settings")
    (after,) = await chat.send("Europe/Berlin")
    assert "Added" not in after.plain_text
    assert await rows(db, "select 1 from nba_items") == []


async def test_an_abandoned_question_stays_closed_after_a_restart(
    db: Database, database_dsn: str, emulator: BotApiEmulator
) -> None:
    async with bot_running(emulator, database_dsn):
        chat = Chat(emulator, 6104)
        await chat.send("/start")
        await chat.send("/cancel")
        await chat.send("/log cs 20")  # asks what was done
        await chat.send("/status")  # abandons it
    async with bot_running(emulator, database_dsn):  # the conversation state was persisted
        (reply,) = await chat.send("2")
        assert "Save this as" in reply.plain_text
    assert await rows(db, "select 1 from execution_logs") == []


async def test_delete_leaves_no_question_behind(bot: BotEnv, db: Database) -> None:
    chat = await started(bot, 6105)
    await chat.send("/add cs 4")  # asks the title
    (prompt,) = await chat.send("/delete")
    await chat.press(prompt, "Yes, delete everything")
    await chat.send("/start")
    await chat.send("/cancel")
    (reply,) = await chat.send("Read SICP")
    assert "Save this as" in reply.plain_text
    assert await rows(db, "select 1 from nba_items") == []


async def test_a_delete_confirmation_left_behind_deletes_nothing(
    bot: BotEnv, db: Database
) -> None:
    chat = await started(bot, 6106)
    await chat.send("/add cs 3 keep this")
    (prompt,) = await chat.send("/delete")
    (cancelled,) = await chat.send("/cancel")  # the confirmation was the open question
    assert "Cancelled" in cancelled.plain_text
    await chat.send("/status")
    await chat.press(prompt, "Yes, delete everything")
    assert await rows(db, "select title from nba_items") == [{"title": "keep this"}]


async def test_a_day_over_16_hours_in_one_theater_asks_before_saving(
    bot: BotEnv, db: Database
) -> None:
    bot.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    chat = await started(bot, 6107)
    (first,) = await chat.send("/log cs 15h deep work")
    assert "Logged in cs: deep work (900 min)" in first.plain_text
    (asked,) = await chat.send("/log cs 2h more work")
    assert "That would make 17 h logged in cs today (over 16 h). Save it anyway?" in (
        asked.plain_text
    )
    await chat.press(asked, "Yes, save it")  # the question is redrawn as the saved log
    assert "Logged in cs: more work (120 min)" in chat.message(asked.message_id).plain_text
    await chat.press_data(asked.message_id, asked.callback_data("Yes, save it"))  # again
    assert chat.emu.calls("answerCallbackQuery")[-1].params["text"] == "This question is closed."
    (again,) = await chat.send("/log cs 30 evening reading")
    assert "Save it anyway?" in again.plain_text
    (typed_no,) = await chat.send("no")
    assert "not saved" in typed_no.plain_text
    (ibm,) = await chat.send("/log ibm 8h the other theater is its own day")
    assert "Logged in ibm" in ibm.plain_text
    logs = await rows(db, "select action, duration from execution_logs order by action")
    assert logs == [  # the clock stands still: every log has the same time
        {"action": "deep work", "duration": 900},
        {"action": "more work", "duration": 120},
        {"action": "the other theater is its own day", "duration": 480},
    ]


async def test_a_guided_log_confirms_too_and_a_typed_yes_saves(bot: BotEnv, db: Database) -> None:
    bot.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    chat = await started(bot, 6108)
    await chat.send("/log cs 16h marathon")
    await chat.send("/log cs")
    await chat.send("20")
    (asked,) = await chat.send("flashcards")
    assert "Save it anyway?" in asked.plain_text
    (saved,) = await chat.send("yes")
    assert "Logged in cs: flashcards (20 min)" in saved.plain_text
    assert len(await rows(db, "select 1 from execution_logs")) == 2


async def test_a_guided_log_over_16_hours_asks_and_its_yes_button_saves_once(
    bot: BotEnv, db: Database
) -> None:
    """The answer's write goes out with the question's close and COMMIT; the 16-hour check
    writes nothing, so the confirmation is stored after the commit, and its buttons work."""
    bot.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    chat = await started(bot, 6122)
    await chat.send("/log cs 16h marathon")
    await chat.send("/log cs 20")
    with counting_server_round_trips() as trips:
        (asked,) = await chat.send("flashcards")
        await chat.settle()
        asking = trips.count
    assert "Save it anyway?" in asked.plain_text
    assert asking == 2  # the write (nothing written) with the close; the confirmation stored
    yes = asked.callback_data("Yes, save it")
    await chat.press(asked, "Yes, save it")
    assert "Logged in cs: flashcards (20 min)" in chat.message(asked.message_id).plain_text
    await chat.press_data(asked.message_id, yes)  # a double tap
    assert chat.emu.callback_answers[-1].text == "This question is closed."
    assert len(await rows(db, "select 1 from execution_logs")) == 2


async def test_details_for_a_log_undone_meanwhile_close_the_question(
    bot: BotEnv, db: Database
) -> None:
    chat = await started(bot, 6109)
    (saved,) = await chat.send("/log cs 20 reading")
    await chat.press(saved, "➕ Add details", replies=1)
    await chat.press(saved, "➕ Add details", replies=1)  # asked again: the same question
    async with db.privileged() as uow:  # the log is removed (the Aelpher app, say)
        await uow.execute("delete from execution_logs")
        await uow.commit()
    (gone,) = await chat.send("pages 1-20")
    assert "That log no longer exists." in gone.plain_text
    (free,) = await chat.send("pages 1-20")  # the question is closed: quick capture
    assert "Save this as" in free.plain_text


async def test_the_settings_menu_passes_a_sentence_on_to_quick_capture(bot: BotEnv) -> None:
    chat = await started(bot, 6110)
    (menu,) = await chat.send("/settings brief 08:00")
    assert "08:00" in menu.plain_text
    (offer,) = await chat.send("Read chapter 4")
    assert "Save this as" in offer.plain_text
    await chat.send("/settings")
    (sub,) = await chat.send("brief")  # a setting's name opens its sub-menu
    assert "brief" in sub.plain_text.lower()
    (saved,) = await chat.send("7:30 pm")
    assert "19:30" in saved.plain_text


async def test_typed_answers_take_button_labels_and_the_rest_of_the_one_line_form(
    bot: BotEnv, db: Database
) -> None:
    chat = await started(bot, 6111)
    await chat.send("/log")
    (whole,) = await chat.send("cs 45 read the paper")  # the whole log at the theater step
    assert "Logged in cs: read the paper (45 min)" in whole.plain_text
    await chat.send("/log")
    await chat.send("ibm · job")  # the button's label, typed
    (done,) = await chat.send("1h30 standup")  # minutes and action at the minutes step
    assert "Logged in ibm: standup (90 min)" in done.plain_text
    await chat.send("/add cs")
    (added,) = await chat.send("3 Read the book")  # gap and title at the gap step
    assert "Added to cs: Read the book" in added.plain_text
    await chat.send("/energy")
    (split,) = await chat.send("60/40")
    assert "ibm 60% · cs 40%" in split.plain_text
    await chat.send("/energy")
    (wrong,) = await chat.send("60/50")
    assert "must add up to 100%" in wrong.plain_text
    await chat.send("/block")
    await chat.send("cs")
    (blocked,) = await chat.send("No reason")
    assert "cs is blocked. No idle nudges" in blocked.plain_text
    await chat.send("/progress")
    (progress,) = await chat.send("ibm 40")
    assert "ibm progress set to 40%" in progress.plain_text
    assert await rows(db, "select blocked_reason from theaters where arm_type = 'cs'") == [
        {"blocked_reason": None}
    ]


async def test_quick_capture_offers_only_what_the_text_fits(bot: BotEnv, db: Database) -> None:
    chat = await started(bot, 6112)
    (offer,) = await chat.send("x" * 300)
    labels = [label for row in offer.buttons for label, _ in row]
    assert labels == ["💡 Reflection"]
    assert "too long for an NBA title or a log" in offer.plain_text
    (nothing,) = await chat.send("y" * 2500)
    assert "too long to keep" in nothing.plain_text and not nothing.buttons
    await chat.press(offer, "💡 Reflection")  # the earlier offer was replaced: closed
    assert chat.emu.calls("answerCallbackQuery")[-1].params["text"] == "This question is closed."
    (offer,) = await chat.send("<b>kept</b> & exact")
    await chat.press(offer, "💡 Reflection")
    await chat.press(chat.message(offer.message_id), "cs · study")
    assert await rows(db, "select evidence from reflections") == [
        {"evidence": "<b>kept</b> & exact"}
    ]


# --- the NBA buttons and the nudges' log button ask too (a day over 16 h in one theater) -------


async def durations(db: Database) -> list[tuple[str, str, int | None]]:
    found = await rows(
        db, "select arm_type, action, duration from execution_logs order by timestamp, id"
    )
    return [(r["arm_type"], r["action"], r["duration"]) for r in found]


def labels(message: SentMessage) -> list[str]:
    return [label for row in message.buttons for label, _ in row]


async def test_progress_over_16_hours_asks_and_yes_saves_once(bot: BotEnv, db: Database) -> None:
    bot.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    chat = await started(bot, 6120)
    await chat.send("/log ibm 900 long day")
    bot.clock.advance(minutes=5)
    (view,) = await chat.send("/add ibm 3 Task")
    await chat.press(view, "▶ Progress")
    prompt = chat.message(view.message_id)
    ninety = prompt.callback_data("90 min")
    (asked,) = await chat.press(prompt, "90 min", replies=1)  # asked in a new message
    assert (
        asked.plain_text
        == "🤔 That would make 16 h 30 min logged in ibm today (over 16 h). Save it anyway?"
    )
    assert labels(asked) == ["Yes, save it", "No"]
    assert "How long did you work on Task?" in chat.message(view.message_id).plain_text
    assert await durations(db) == [("ibm", "long day", 900)]

    yes = asked.callback_data("Yes, save it")
    await chat.press(asked, "Yes, save it")  # the question becomes the theater, logged
    saved = chat.message(asked.message_id)
    assert "▶ Logged 90 min on “Task”" in saved.plain_text
    assert chat.emu.callback_answers[-1].text == "Progress logged."
    await chat.press_data(asked.message_id, yes)  # a double tap
    assert chat.emu.callback_answers[-1].text == "This question is closed."
    await chat.press_data(view.message_id, ninety)  # the first press again: recorded already
    assert chat.emu.callback_answers[-1].text == "Already recorded."
    assert await durations(db) == [("ibm", "long day", 900), ("ibm", "Task", 90)]
    (item,) = await rows(db, "select has_early_progress_bonus from nba_items")
    assert item["has_early_progress_bonus"] is True


async def test_minutes_after_done_over_16_hours_ask_and_no_saves_nothing(
    bot: BotEnv, db: Database
) -> None:
    bot.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    chat = await started(bot, 6121)
    await chat.send("/log cs 900 study")
    bot.clock.advance(minutes=5)
    (view,) = await chat.send("/add cs 3 Read")
    await chat.press(view, "✅ Done")
    done = chat.message(view.message_id)
    ninety = done.callback_data("90 min")
    (asked,) = await chat.press(done, "90 min", replies=1)
    assert "That would make 16 h 30 min logged in cs today (over 16 h)" in asked.plain_text
    await chat.press(asked, "No")
    assert chat.message(asked.message_id).plain_text == "OK, not saved."
    assert chat.emu.callback_answers[-1].text == "Not saved."
    assert await durations(db) == [("cs", "study", 900), ("cs", "Done: Read", None)]

    await chat.press(done, "60 min")  # exactly 16 h: saved at once, nothing asked
    assert "Done: Read · 60 min logged." in chat.message(view.message_id).plain_text
    assert await durations(db) == [("cs", "study", 900), ("cs", "Done: Read", 60)]

    (asked,) = await chat.press_data(view.message_id, ninety, replies=1)  # 90, not 60: asked
    assert "That would make 16 h 30 min logged in cs today" in asked.plain_text
    (hint,) = await chat.send("maybe")
    assert hint.plain_text == "Tap Yes, save it or No above (or type yes or no)."
    (saved,) = await chat.send("yes")
    assert "Done: Read · 90 min logged." in saved.plain_text
    assert await durations(db) == [("cs", "study", 900), ("cs", "Done: Read", 90)]


async def test_progress_in_another_theater_is_not_asked_about(bot: BotEnv, db: Database) -> None:
    bot.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    chat = await started(bot, 6122)
    await chat.send("/log cs 900 study")
    bot.clock.advance(minutes=5)
    (view,) = await chat.send("/add ibm 3 Task")
    await chat.press(view, "▶ Progress")
    await chat.press(chat.message(view.message_id), "90 min")  # no new message
    assert "▶ Logged 90 min on “Task”" in chat.message(view.message_id).plain_text
    assert await durations(db) == [("cs", "study", 900), ("ibm", "Task", 90)]
    assert await rows(db, "select 1 from open_questions") == []


async def test_the_nudge_log_button_asks_too(bot: BotEnv, db: Database) -> None:
    bot.clock.set(datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    chat = await started(bot, 6123)
    (logged,) = await chat.send("/log ibm 950 long day")
    bot.clock.advance(minutes=5)
    (view,) = await chat.send("/add ibm 3 Task")
    (item,) = await rows(db, "select id from nba_items")
    on_item = encode("nudge", "log", "ibm", item["id"])
    (asked,) = await chat.press_data(view.message_id, on_item, replies=1)  # ▶ Log 25 min
    assert "That would make 16 h 15 min logged in ibm today" in asked.plain_text
    await chat.press(asked, "Yes, save it")
    assert "▶ Logged 25 min on “Task”" in chat.message(asked.message_id).plain_text
    await chat.press_data(view.message_id, on_item)  # pressed again: recorded already
    assert chat.emu.callback_answers[-1].text == "Already recorded."

    bot.clock.advance(minutes=5)
    plain = encode("nudge", "log", "ibm")  # an idle nudge's button when there is no item
    (asked,) = await chat.press_data(logged.message_id, plain, replies=1)
    assert "That would make 16 h 40 min logged in ibm today" in asked.plain_text
    (cancelled,) = await chat.send("/cancel")
    assert "Cancelled. Nothing was saved." in cancelled.plain_text
    (asked,) = await chat.press_data(logged.message_id, plain, replies=1)
    await chat.press(asked, "Yes, save it")
    assert "Logged in ibm: 25 min on ibm (25 min)" in chat.message(asked.message_id).plain_text
    await chat.press_data(logged.message_id, plain)  # pressed again: recorded already
    assert chat.emu.callback_answers[-1].text == "Already recorded."
    assert await durations(db) == [
        ("ibm", "long day", 950),
        ("ibm", "Task", 25),
        ("ibm", "25 min on ibm", 25),
    ]
