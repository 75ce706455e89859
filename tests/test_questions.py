"""One open question per chat: a command abandons the question before it, /cancel closes it,
and an abandoned question never takes a later answer, also across a restart or a /delete."""

from __future__ import annotations

from typing import Any

from bot.local_api import BotApiEmulator
from services.db import Database
from tests.conftest import BotEnv
from tests.harness import Chat, bot_running


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
